"""Image preprocessing shared by prompts and observations: resize, scale to [-1, 1], CHW.

One function so training, sim rollout, the ONNX runtime and the robot loop produce bit-identical
model inputs from the same frame. ``cv2.INTER_AREA`` averages source pixels when shrinking
(camera frames are usually larger than the model's input), which avoids the aliasing that
nearest/bilinear would give. The aspect ratio is not preserved: frames are stretched to the
model's size, so the same camera always maps the same way.
"""

from __future__ import annotations

import cv2
import numpy as np


def check_rgb_image(image: object, what: str) -> np.ndarray:
    """Raise a ValueError naming ``what`` unless ``image`` is an (h, w, 3) uint8 array."""
    if not isinstance(image, np.ndarray):
        raise ValueError(
            f"{what} must be a numpy array (h, w, 3) uint8, got {type(image).__name__}"
        )
    if image.dtype != np.uint8:
        raise ValueError(f"{what} must have dtype uint8, got {image.dtype} (shape {image.shape})")
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"{what} must have shape (h, w, 3) with h, w > 0, got {image.shape}")
    return image


def preprocess_image(image: np.ndarray, size: tuple[int, int], what: str = "image") -> np.ndarray:
    """(h, w, 3) uint8 RGB -> (3, H, W) float32 in [-1, 1], with ``size = (H, W)``."""
    img = check_rgb_image(image, what)
    height, width = size
    if img.shape[:2] != (height, width):
        img = cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA)  # cv2 takes (w, h)
    out = img.astype(np.float32) * (2.0 / 255.0) - 1.0  # (H, W, 3)
    return np.ascontiguousarray(out.transpose(2, 0, 1))  # (3, H, W)


def deprocess_image(chw: np.ndarray) -> np.ndarray:
    """(3, H, W) float in [-1, 1] -> (H, W, 3) uint8; for visualising reconstructions."""
    arr = np.asarray(chw, dtype=np.float32)
    if arr.ndim != 3 or arr.shape[0] != 3:
        raise ValueError(f"expected a (3, H, W) image, got shape {arr.shape}")
    hwc = (np.clip(arr, -1.0, 1.0) + 1.0) * 127.5
    return np.round(hwc.transpose(1, 2, 0)).astype(np.uint8)
