"""H.264 mp4 writing for rollout videos: camera views side by side with the prompt written above."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np


def tile_views(obs: dict[str, np.ndarray], cameras: Sequence[str]) -> np.ndarray:
    """Place the RGB views of one observation side by side (H, sum W, 3) uint8."""
    views = [obs[c] for c in cameras if c in obs]
    if not views:
        raise ValueError(f"observation has none of the cameras {list(cameras)}; keys: {list(obs)}")
    height = max(v.shape[0] for v in views)
    padded = [np.pad(v, ((0, height - v.shape[0]), (0, 0), (0, 0))) for v in views]
    return np.concatenate(padded, axis=1)


def caption(frame: np.ndarray, text: str, height: int = 28) -> np.ndarray:
    """Add a black band with ``text`` above ``frame`` (the text is cut to the frame width)."""
    band = np.zeros((height, frame.shape[1], 3), dtype=np.uint8)
    scale = 0.35
    max_chars = max(8, int(frame.shape[1] / (scale * 20)))
    lines = [text[i : i + max_chars] for i in range(0, min(len(text), 2 * max_chars), max_chars)]
    for row, line in enumerate(lines):
        cv2.putText(
            band, line, (3, 11 + 12 * row), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1
        )
    return np.concatenate([band, frame], axis=0)


def write_mp4(frames: Sequence[np.ndarray], path: str | Path, fps: float = 10.0) -> Path:
    """Write RGB uint8 frames to an H.264 mp4 (browsers play it), creating the folder; the
    package's one writer (:mod:`uio2_robot.trajectories.mp4`) does the work."""
    from uio2_robot.trajectories.mp4 import write_mp4 as write_frames

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_frames(list(frames), path, fps)
    return path
