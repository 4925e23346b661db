"""Window samples (from `WindowDataset`) -> the numpy arrays the objectives take.

Runs inside DataLoader workers: resizing images and tokenizing prompts happen in parallel with
the training step. Prompts repeat for every window of an episode, so their arrays are cached.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from uio2_robot.tokenize.processor import Processor
from uio2_robot.train.batching import ACTION_MASK, ACTION_TOKENS, POINT_TARGETS

_PROMPT_CACHE = 2048


class TrainingTransform:
    """Turns one window (history of n frames, chunk of m actions, prompt) into model arrays."""

    def __init__(
        self, processor: Processor, action_mode: str, point_grid: tuple[int, int] | None = None
    ) -> None:
        self.processor = processor
        self.action_mode = action_mode
        self.point_grid = point_grid  # the model's patch grid: emit point targets (pointing)
        self._prompts: dict[tuple[Any, ...], dict[str, np.ndarray]] = {}

    def __call__(self, sample: Mapping[str, Any]) -> dict[str, Any]:
        p = self.processor
        meta = sample["meta"]
        obs_mask = np.asarray(sample["obs_mask"], dtype=bool)  # (n,) oldest first
        n = len(obs_mask)
        frames = [{k: sample[k][i] for k in (*p.camera_keys, p.proprio_key)} for i in range(n)]
        history = [frames[i] for i in range(n - 1) if obs_mask[i]]
        out: dict[str, Any] = {
            **self._prompt(meta, sample["prompt"]),
            **p.encode_observation(frames[-1], history),
        }
        actions = np.asarray(sample["action"], dtype=np.float32)  # (m, D)
        horizon = p.action_horizon
        if actions.shape[0] < horizon:
            raise ValueError(
                f"window has {actions.shape[0]} actions but the processor's action_horizon is "
                f"{horizon}; build the dataset with action_chunk >= action_horizon"
            )
        actions = actions[:horizon]
        mask = np.asarray(sample["action_mask"], dtype=bool)[:horizon]
        dim = p.action_tokenizer(self.action_mode).dim
        out[ACTION_TOKENS] = p.action_target_tokens(actions, self.action_mode)
        out[ACTION_MASK] = np.repeat(mask, dim)
        if self.point_grid is not None:
            out[POINT_TARGETS] = p.point_targets(actions[0], self.action_mode, self.point_grid)
        out["episode_key"] = np.array(
            [int(meta.get("store", 0)), int(meta.get("episode", 0))], dtype=np.int64
        )
        return out

    def _prompt(self, meta: Mapping[str, Any], segments: list[Any]) -> dict[str, np.ndarray]:
        key = (meta.get("store"), meta.get("episode"))
        if key not in self._prompts:
            if len(self._prompts) >= _PROMPT_CACHE:
                self._prompts.clear()
            self._prompts[key] = self.processor.encode_prompt(segments)
        return self._prompts[key]


def collate_arrays(batch: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Stack transformed samples (numpy) into a batch; `compute_losses` takes numpy or tensors."""
    return Processor.collate(batch)
