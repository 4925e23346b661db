"""One example in the official UIO2 batch layout, built without TensorFlow.

The keys are the official preprocessor's (``inputs/text/tokens``, ``inputs/image/input``,
``inputs/image_history/input``, ``targets/text/inputs`` ...) with a leading batch dimension of
1, so ``OfficialInputs.from_official`` takes either this or a batch the official code made.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from uio2_robot.tokenize.official_images import history_input, image_input
from uio2_robot.tokenize.official_vocab import BOS_ID, PAD_ID, OfficialTokenizer


def official_example(
    tokenizer: OfficialTokenizer,
    prompt: str,
    image: np.ndarray,
    history: Sequence[np.ndarray],
    image_size: tuple[int, int],
    history_size: tuple[int, int],
    n_frames: int,
    target: str | None = None,
    patch: int = 16,
) -> dict[str, np.ndarray]:
    """The flattened batch (B = 1) for a text prompt, the current image and history frames
    (which the prompt references as ``<image_history_k>``), optionally a text target."""
    tokens = np.asarray(tokenizer.encode_input(prompt), dtype=np.int32)
    batch: dict[str, np.ndarray] = {
        "inputs/text/tokens": tokens,
        "inputs/text/mask": (tokens != PAD_ID).astype(np.int32),
        "inputs/text/pos_ids": np.arange(tokens.shape[0], dtype=np.int32),
    }
    for key, value in image_input(image, image_size, patch).items():
        batch[f"inputs/image/{key}"] = value
    for key, value in history_input(history, history_size, n_frames, patch).items():
        batch[f"inputs/image_history/{key}"] = value
    if target is not None:
        targets = np.asarray(tokenizer.encode_target(target), dtype=np.int32)
        batch["targets/text/targets"] = targets
        batch["targets/text/inputs"] = np.concatenate([[BOS_ID], targets[:-1]]).astype(np.int32)
        batch["targets/text/mask"] = (targets > PAD_ID).astype(np.int32)
        batch["targets/text/pos_ids"] = np.arange(targets.shape[0], dtype=np.int32)
        batch["targets/text/segment_ids"] = np.ones(targets.shape[0], dtype=np.int32)
    return {k: v[None] for k, v in batch.items()}
