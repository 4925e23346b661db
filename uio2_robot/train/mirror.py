"""Mirror augmentation: a training sample reflected across the workspace's centre line (y -> -y).

Images flipped left to right and the action labels, pointing targets and the arm's proprio moved
with them, so one demonstration is also a second layout. Only for tasks whose rules do not
depend on the side (a prompt that says "left" would be wrong after it) and only where the
geometry allows it exactly (checked: symmetric y and yaw bins, every view's columns are y with
y = 0 at the centre, the suite's proprio). On same_texture from 400 demonstrations it gained
nothing (docs/finetuning.md). Randomness comes from the training loop's per-micro-step
generator, as for the colour turns (train/augment.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from uio2_robot.contracts import PROPRIO_NAMES
from uio2_robot.model.inputs import ACTION_TOKENS, POINT_TARGETS
from uio2_robot.tokenize.processor import Processor
from uio2_robot.train.augment import IMAGE_KEYS

MIRRORED_DIMS = ("y0", "yaw0", "y1", "yaw1")
"""The primitive action's dimensions that change sign under the reflection y -> -y."""
MIRRORED_PROPRIO = ("ee_y", "ee_yaw")
"""The proprio values (``contracts.PROPRIO_NAMES``) that change sign under it."""


@dataclass(frozen=True)
class Mirror:
    """Reflect training samples across the workspace's centre line (y -> -y).

    Built once per run from the processor (:meth:`for_processor`), which refuses a geometry
    where the reflection is not exact. ``bin_maps`` holds, per action dimension, the bin that
    each bin becomes (identity for x), ``grid`` the model's patch grid (rows, cols) per view.
    ``proprio_sign`` and ``proprio_shift`` reflect the normalised proprio (``ee_y`` and
    ``ee_yaw`` change sign: the arm rests where it last placed, so it tells a side too).
    """

    first_bin_id: int
    bin_maps: np.ndarray  # (D, n_bins) int64
    grid: tuple[int, int]
    proprio_sign: np.ndarray  # (P,) float32: -1 for ee_y and ee_yaw, else 1
    proprio_shift: np.ndarray  # (P,) float32: what the normalisation adds after the sign change

    @classmethod
    def for_processor(cls, processor: Processor, mode: str, grid: tuple[int, int]) -> Mirror:
        """The mirror for ``processor``'s ``mode`` actions, or ValueError naming what breaks
        the symmetry (not the primitive mode, y or yaw bins not symmetric about 0, a view whose
        columns are not y with y = 0 at the centre)."""
        if mode != "primitive":
            raise ValueError(
                f"augment_mirror reflects primitive actions (pick and place points); the run "
                f"trains action_mode {mode!r}"
            )
        tok = processor.action_tokenizer(mode)
        missing = [n for n in MIRRORED_DIMS if n not in tok.names]
        if missing:
            raise ValueError(
                f"augment_mirror needs action dimensions {MIRRORED_DIMS}, the tokenizer has "
                f"{tok.names}"
            )
        bins = np.arange(tok.n_bins)
        centres = tok.decode(np.repeat(bins[:, None], tok.dim, axis=1) + tok.first_bin_id)
        maps = []
        for j, name in enumerate(tok.names):
            if name not in MIRRORED_DIMS:
                maps.append(bins)
                continue
            flipped = centres.copy()
            flipped[:, j] = -flipped[:, j]
            mapped = tok.bin_indices(flipped)[:, j]
            if not np.array_equal(mapped[mapped], bins):
                raise ValueError(
                    f"augment_mirror needs {name!r} bins symmetric about 0, got "
                    f"[{tok.low[j]}, {tok.high[j]}) in {tok.n_bins} bins"
                )
            maps.append(mapped)
        for camera, (a, b, c, d, e, f) in processor.point_maps.items():
            if abs(b) > 1e-9 or abs(d) > 1e-9 or abs(f - 0.5) > 1e-9:
                raise ValueError(
                    f"augment_mirror needs camera {camera!r}'s columns to be y with y = 0 at "
                    f"the centre (point map row = a*x + c, column = e*y + 0.5), got "
                    f"{(a, b, c, d, e, f)}"
                )
        unmapped = [k for k in processor.camera_keys if k not in processor.point_maps]
        if unmapped:
            raise ValueError(
                f"augment_mirror flips every view, so each needs a point map (the workspace's "
                f"top view, crop_workspace=true) to show that its columns are y; cameras "
                f"without one: {unmapped}"
            )
        if processor.proprio_dim != len(PROPRIO_NAMES):
            raise ValueError(
                f"augment_mirror reflects the suite's proprio {PROPRIO_NAMES}; the processor's "
                f"proprio has {processor.proprio_dim} values"
            )
        # normalised n = (v - mean) / std; v -> -v gives n -> -n - 2 mean / std
        sign = np.array([-1.0 if n in MIRRORED_PROPRIO else 1.0 for n in PROPRIO_NAMES])
        shift = np.where(sign < 0, -2.0 * processor.proprio_mean / processor.proprio_std, 0.0)
        return cls(
            tok.first_bin_id,
            np.stack(maps).astype(np.int64),
            tuple(grid),
            sign.astype(np.float32),
            shift.astype(np.float32),
        )

    def __call__(
        self, batch: Mapping[str, Any], p: float, rng: np.random.Generator
    ) -> dict[str, Any]:
        """``batch`` with each sample reflected with probability ``p``: its images flipped left
        to right, its action tokens and pointing targets moved to the reflected points. Returns
        a new dict; the input arrays are not modified."""
        out = dict(batch)
        if p == 0.0 or ACTION_TOKENS not in batch:
            return out
        tokens = np.asarray(batch[ACTION_TOKENS])
        n, (dim, n_bins) = len(tokens), self.bin_maps.shape
        if tokens.ndim != 2 or tokens.shape[1] % dim:
            raise ValueError(
                f"batch[{ACTION_TOKENS!r}] must be (B, H*{dim}) action ids, got {tokens.shape}"
            )
        flip = rng.random(n) < p
        if not flip.any():
            return out
        for key in IMAGE_KEYS:
            if key in batch:
                arr = np.array(batch[key], dtype=np.float32)
                arr[flip] = arr[flip][..., ::-1]
                out[key] = arr
        idx = tokens - self.first_bin_id
        column = np.arange(tokens.shape[1]) % dim
        mapped = np.where(
            (idx >= 0) & (idx < n_bins),
            self.bin_maps[column, np.clip(idx, 0, n_bins - 1)] + self.first_bin_id,
            tokens,
        )
        out[ACTION_TOKENS] = np.where(flip[:, None], mapped, tokens).astype(tokens.dtype)
        if "proprio" in batch:
            proprio = np.asarray(batch["proprio"], dtype=np.float32)
            reflected = proprio * self.proprio_sign + self.proprio_shift
            out["proprio"] = np.where(
                flip.reshape(-1, *[1] * (proprio.ndim - 1)), reflected, proprio
            )
        if POINT_TARGETS in batch:
            points = np.asarray(batch[POINT_TARGETS])
            cols = self.grid[1]
            reflected = points - points % cols + (cols - 1 - points % cols)
            out[POINT_TARGETS] = np.where(flip[:, None] & (points >= 0), reflected, points)
        return out
