"""mp4 writing for rollout videos: camera views side by side with the prompt written above."""

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
    """Write RGB uint8 frames of one size to an mp4 (codec mp4v, available in opencv-headless)."""
    if not frames:
        raise ValueError("no frames to write")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"could not open a video writer for {path}")
    try:
        for frame in frames:
            if frame.shape[:2] != (height, width):
                frame = cv2.resize(frame, (width, height), interpolation=cv2.INTER_NEAREST)
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    return path
