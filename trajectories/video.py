"""Render a stored episode to an H.264 mp4: camera views side by side under its prompt.

The prompt panel shows text and prompt images in reading order, because VIMA-style prompts are
interleaved ("Put the <image> into the <image>") and a video that dropped the images would not
say what the episode was asked to do.
"""

from __future__ import annotations

import os
from typing import Any

import cv2
import numpy as np

from uio2_robot.trajectories.episode import ACTION_KEY, PromptSegment
from uio2_robot.trajectories.errors import StoreError
from uio2_robot.trajectories.mp4 import write_mp4
from uio2_robot.trajectories.store import EpisodeStore

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_SCALE = 0.5
_LINE = 20  # pixels per text line
_PAD = 6
_WHITE = (255, 255, 255)


def episode_video(
    path: str | os.PathLike[str],
    episode: int,
    out_mp4: str | os.PathLike[str],
    fps: float = 4.0,
    keys: list[str] | None = None,
    min_height: int = 256,
) -> dict[str, Any]:
    """Write episode ``episode`` of the store at ``path`` to ``out_mp4`` (H.264, plays in browsers).

    ``keys`` are the image keys to show (default: every (H, W, C) uint8 key); small views are
    scaled up to ``min_height`` so the overlaid text stays readable.
    Returns ``{"path", "frames", "width", "height", "fps"}``.
    """
    if fps <= 0:
        raise StoreError(f"fps is {fps}, expected > 0")
    with EpisodeStore.open(path, mode="r") as store:
        image_keys = (
            [k for k, s in store.schema.keys.items() if s.is_image] if keys is None else keys
        )
        bad = [
            k for k in image_keys if k not in store.schema.keys or not store.schema.keys[k].is_image
        ]
        if bad or not image_keys:
            raise StoreError(
                f"cannot make a video from keys {bad or image_keys}; expected (H, W, C) uint8 "
                f"image keys, the store has {store.data_keys}"
            )
        ep = store.episode(episode, keys=[*image_keys, ACTION_KEY])
    height = max(min_height, max(ep.steps[k].shape[1] for k in image_keys))
    first = _views_row([ep.steps[k][0] for k in image_keys], height)
    width = first.shape[1] + first.shape[1] % 2
    header = _prompt_panel(ep.prompt, width, thumb_height=max(48, height // 3))
    title = f"{ep.task} {ep.level} seed={ep.seed} {'success' if ep.success else 'failure'}"
    frames = []
    for t in range(ep.length):
        row = _views_row([ep.steps[k][t] for k in image_keys], height)
        footer = _text_strip(
            [
                title,
                f"step {t + 1}/{ep.length}  action {np.round(ep.steps[ACTION_KEY][t], 3).tolist()}",
            ],
            width,
        )
        frames.append(np.concatenate([header, _fit_width(row, width), footer], axis=0))
    width, h = write_mp4(frames, out_mp4, fps)
    return {"path": str(out_mp4), "frames": len(frames), "width": width, "height": h, "fps": fps}


def _fmt(action: np.ndarray) -> str:
    return "[" + ", ".join(f"{float(v):.3g}" for v in np.ravel(action)) + "]"


def _rgb(img: np.ndarray) -> np.ndarray:
    """Any (H, W[, C]) image as (H, W, 3) uint8 RGB."""
    img = np.asarray(img)
    if img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    if img.ndim == 2:
        img = img[..., None]
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    return np.ascontiguousarray(img[..., :3])


def _resize_to_height(img: np.ndarray, height: int) -> np.ndarray:
    img = _rgb(img)
    width = max(1, round(img.shape[1] * height / img.shape[0]))
    return cv2.resize(img, (width, height), interpolation=cv2.INTER_NEAREST)


def _views_row(views: list[np.ndarray], height: int) -> np.ndarray:
    return np.concatenate([_resize_to_height(v, height) for v in views], axis=1)  # (H, sum W, 3)


def _fit_width(img: np.ndarray, width: int) -> np.ndarray:
    return np.pad(img, ((0, 0), (0, width - img.shape[1]), (0, 0)))


def _text_strip(lines: list[str], width: int) -> np.ndarray:
    strip = np.zeros((_LINE * len(lines) + _PAD, width, 3), dtype=np.uint8)
    for i, line in enumerate(lines):
        cv2.putText(strip, line, (_PAD, _LINE * (i + 1) - 5), _FONT, _SCALE, _WHITE, 1, cv2.LINE_AA)
    return strip


def _prompt_panel(prompt: list[PromptSegment], width: int, thumb_height: int) -> np.ndarray:
    """Lay out words and image thumbnails left to right, wrapping at ``width``."""
    items: list[str | np.ndarray] = []
    for seg in prompt:
        if isinstance(seg, str):
            items += seg.split()
        else:
            items.append(_resize_to_height(seg, thumb_height))
    placed: list[tuple[int, int, str | np.ndarray]] = []  # (x, y_top, item)
    x, y, row_h = _PAD, _PAD, _LINE
    for item in items:
        if isinstance(item, str):
            (w, _), _ = cv2.getTextSize(item, _FONT, _SCALE, 1)
            h = _LINE
        else:
            item = item[:, : width - 2 * _PAD]
            h, w = item.shape[:2]
        if x + w > width - _PAD and x > _PAD:
            x, y, row_h = _PAD, y + row_h + _PAD, _LINE
        placed.append((x, y, item))
        x += w + 8
        row_h = max(row_h, h)
    panel = np.zeros((y + row_h + _PAD, width, 3), dtype=np.uint8)
    for x, y, item in placed:
        if isinstance(item, str):
            cv2.putText(panel, item, (x, y + _LINE - 6), _FONT, _SCALE, _WHITE, 1, cv2.LINE_AA)
        else:
            h, w = item.shape[:2]
            panel[y : y + h, x : x + w] = item  # fits: wrapping keeps x + w <= width
    return panel
