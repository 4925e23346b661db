"""Colour augmentation that keeps "same colour" the same: one hue turn per training sample.

Few demonstrations of a matching task (same_texture: "put all objects with the same texture as
{base} into it") teach a small model which textures went with which, not the rule: fine-tuned
on 400 of them, the shipped policy picked the distractor in 14 of 50 held-out episodes, often
one of plainly different colours (docs/finetuning.md). Rotating the hue of *every* image of a
sample by the same random angle (prompt images, prompt scenes, the observation and its history)
makes new texture pairs out of the same episodes while the relation the prompt asks about
(this object looks like that one) still holds, and the action labels do not move.

The turn is a rotation of RGB about the grey axis (Rodrigues' formula on the [-1, 1] pixel
values): grey stays grey, so the table, the floor and black/white patterns keep their look, and
a third of a turn permutes the channels exactly. ``swap`` adds a reflection (red <-> green with
the same probability), which a rotation alone cannot make. Off by default: a prompt that *names*
a colour ("the red block") would no longer match its images.

Randomness comes from the training loop's per-micro-step generator seed, so a resumed run draws
the same turns (train/loop.py).

:class:`Mirror` is the geometric counterpart: a sample reflected across the workspace's centre
line (y -> -y), images flipped left to right and the action labels and pointing targets moved
with them, so one demonstration is also a second layout. Only for tasks whose rules do not
depend on the side (a prompt that says "left" would be wrong after it) and only where the
geometry allows it exactly (checked: symmetric y and yaw bins, a view whose columns are y).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from uio2_robot.contracts import PROPRIO_NAMES
from uio2_robot.model.inputs import ACTION_TOKENS, POINT_TARGETS
from uio2_robot.tokenize.processor import Processor

IMAGE_KEYS = ("obs_images", "history_images", "prompt_images", "scene_images")
"""The batch arrays that hold images, (B, ..., 3, H, W) floats in [-1, 1] (tokenize/processor.py)."""

_GREY = np.full(3, 1.0 / np.sqrt(3.0))
_SWAP_RG = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])


def hue_matrix(turns: float) -> np.ndarray:
    """3x3 rotation of RGB by ``turns`` of a full turn about the grey axis (1, 1, 1)."""
    theta = 2.0 * np.pi * turns
    k = np.array(
        [[0.0, -_GREY[2], _GREY[1]], [_GREY[2], 0.0, -_GREY[0]], [-_GREY[1], _GREY[0], 0.0]]
    )
    return np.eye(3) + np.sin(theta) * k + (1.0 - np.cos(theta)) * (k @ k)


def check_augment(hue: float, swap: float, mirror: float = 0.0) -> None:
    """Clear errors for out-of-range settings (train config ``augment_hue``, ``augment_swap``,
    ``augment_mirror``)."""
    if not 0.0 <= hue <= 0.5:
        raise ValueError(f"augment_hue must be in [0, 0.5] turns (0.5: any hue), got {hue}")
    if not 0.0 <= swap <= 1.0:
        raise ValueError(f"augment_swap must be a probability in [0, 1], got {swap}")
    if not 0.0 <= mirror <= 1.0:
        raise ValueError(f"augment_mirror must be a probability in [0, 1], got {mirror}")


def augment_colours(
    batch: Mapping[str, Any], hue: float, swap: float, rng: np.random.Generator
) -> dict[str, Any]:
    """``batch`` with each sample's images turned by one hue angle in [-hue, hue] turns (and
    reflected red<->green with probability ``swap``); other arrays are passed through. Returns a
    new dict; the input arrays are not modified."""
    out = dict(batch)
    keys = [k for k in IMAGE_KEYS if k in batch]
    if (hue == 0.0 and swap == 0.0) or not keys:
        return out
    images = {key: np.asarray(batch[key], dtype=np.float32) for key in keys}
    n = len(images[keys[0]])
    for key, arr in images.items():
        if arr.shape[0] != n or arr.ndim < 4 or arr.shape[-3] != 3:
            raise ValueError(
                f"batch[{key!r}] must be (B, ..., 3, H, W) with B={n}, got shape {arr.shape}"
            )
    mats = np.empty((n, 3, 3), dtype=np.float32)
    for i in range(n):
        m = hue_matrix(rng.uniform(-hue, hue))
        mats[i] = m @ _SWAP_RG if rng.random() < swap else m
    for key, arr in images.items():
        turned = np.einsum("bij,b...jhw->b...ihw", mats, arr, optimize=True)
        out[key] = np.clip(turned, -1.0, 1.0).astype(np.float32)
    return out


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
        centres = tok.low + (bins[:, None] + 0.5) * tok.bin_width  # (n_bins, D)
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
