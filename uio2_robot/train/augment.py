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

The geometric counterpart, a reflection across the workspace's centre line, is
train/mirror.py (it reads the processor's bins and point maps; this module stays free of the
model so the robot PC's config can import its checks).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

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
