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


PROMPT_SUFFIX = " Predict the next action."
"""Appended to every VIMA prompt (the form of the shared official fixture's prompt)."""


def prompt_to_text(
    prompt: Sequence[str | np.ndarray], max_images: int
) -> tuple[str, list[np.ndarray]]:
    """The env's interleaved prompt as UIO2 text with ``<image_history_k>`` markers, and the
    prompt images (k = 1..) in order."""
    parts, images = [], []
    for seg in prompt:
        if isinstance(seg, str):
            parts.append(seg)
        elif isinstance(seg, np.ndarray):
            images.append(seg)
            parts.append(f" <image_history_{len(images)}> ")
        else:
            raise ValueError(f"prompt segment must be str or an image array, got {type(seg)}")
    if len(images) > max_images:
        raise ValueError(f"the prompt has {len(images)} images; the model takes {max_images}")
    text = " ".join("".join(parts).split())
    return text + PROMPT_SUFFIX, images


def pad_official_batch(
    batch: dict[str, np.ndarray], text_len: int, n_frames: int
) -> dict[str, np.ndarray]:
    """The encoder inputs of ``batch`` padded to static sizes (a graph exported with them):
    text to ``text_len`` tokens (id 0, mask 0), history to ``n_frames`` empty frames. Padding
    is masked, so valid positions encode exactly as before."""
    out = {k: v for k, v in batch.items() if k.startswith("inputs/")}
    length = out["inputs/text/tokens"].shape[1]
    if length > text_len:
        raise ValueError(f"prompt has {length} tokens; the exported encoder takes {text_len}")
    for key in ("tokens", "mask", "pos_ids"):
        v = out[f"inputs/text/{key}"]
        pad = np.zeros((v.shape[0], text_len - length), dtype=v.dtype)
        if key == "pos_ids":
            pad = pad + np.arange(length, text_len, dtype=v.dtype)
        out[f"inputs/text/{key}"] = np.concatenate([v, pad], axis=1)
    frames = out["inputs/image_history/input"].shape[1]
    if frames > n_frames:
        raise ValueError(f"{frames} history frames; the exported encoder takes {n_frames}")
    for key in ("input", "mask", "pos_ids"):
        v = out[f"inputs/image_history/{key}"]
        extra = np.zeros((v.shape[0], n_frames - frames, *v.shape[2:]), dtype=v.dtype)
        if key == "pos_ids":
            extra = extra + np.arange(v.shape[2], dtype=v.dtype)
        out[f"inputs/image_history/{key}"] = np.concatenate([v, extra], axis=1)
    return out
