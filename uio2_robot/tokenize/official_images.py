"""The released UIO2's image preprocessing, in numpy (no TensorFlow).

The official preprocessor (``resize_and_pad_default`` at inference) keeps the aspect ratio:
it scales the image by ``min(H / h, W / w)`` (sizes truncated to ints, in float32 as TF does),
resizes with TF's antialiased bilinear filter (``tf.image.resize(..., antialias=True)``, a
triangle kernel widened by the shrink factor), clips to [0, 1] and centre-pads to H x W
(384 for the input image, 256 for history frames). The padding is marked per pixel and then
per patch (nearest-neighbour onto the patch grid); pixels are CLIP mean/std normalised after
padding (so padding is ``-mean / std``, as in the official batch) and cut into 16 x 16 patches
in (row, column, channel) order.

``resize_antialias`` re-implements TF's ``ScaleAndTranslate`` spans (kernel support, clamping
at the borders, weight normalisation): on the shared fixture it matches the TF-made batch to
the float32 rounding of the two implementations (tests/official states the tolerance).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from uio2_robot.tokenize.images import check_rgb_image

CLIP_MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
CLIP_STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)


def _spans(in_size: int, out_size: int) -> np.ndarray:
    """(out_size, in_size) float32 weights of TF's antialiased triangle filter along one axis."""
    scale = np.float32(out_size) / np.float32(in_size)
    inv_scale = np.float32(1.0) / scale
    kernel_scale = max(inv_scale, np.float32(1.0))  # antialias: widen the kernel when shrinking
    radius = np.float32(1.0) * kernel_scale  # the triangle kernel's radius is 1
    weights = np.zeros((out_size, in_size), dtype=np.float32)
    for x in range(out_size):
        sample = (np.float32(x) + np.float32(0.5)) * inv_scale
        if sample < 0 or sample > in_size:
            continue
        start = int(np.ceil(sample - radius - np.float32(0.5)))
        end = int(np.floor(sample + radius - np.float32(0.5)))
        start, end = min(max(start, 0), in_size - 1), min(max(end, 0), in_size - 1) + 1
        src = np.arange(start, end, dtype=np.float32)
        w = np.maximum(
            np.float32(0.0),
            np.float32(1.0) - np.abs((src + np.float32(0.5) - sample) / kernel_scale),
        ).astype(np.float32)
        total = w.sum(dtype=np.float32)
        if total > 1000 * np.finfo(np.float32).eps:
            w = w / total
        weights[x, start:end] = w
    return weights


def resize_antialias(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """(h, w, C) float32 -> (height, width, C) float32, TF bilinear with antialiasing
    (columns first, then rows, as TF's ``GatherSpans``)."""
    img = np.asarray(image, dtype=np.float32)
    cols = _spans(img.shape[1], width)  # (width, w)
    rows = _spans(img.shape[0], height)  # (height, h)
    tmp = np.einsum("xw,hwc->hxc", cols, img, dtype=np.float32)
    return np.einsum("yh,hxc->yxc", rows, tmp, dtype=np.float32)


def resize_and_pad(image: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (h, w, 3) -> (H, W, 3) float32 in [0, 1] centre-padded with zeros, and the
    (H, W) int32 mask of real pixels (the official inference path, no augmentation)."""
    img = check_rgb_image(image, "image").astype(np.float32) * np.float32(1.0 / 255.0)
    h, w = img.shape[:2]
    out_h, out_w = size
    scale = min(np.float32(out_h) / np.float32(h), np.float32(out_w) / np.float32(w))
    new_h, new_w = int(np.float32(h) * scale), int(np.float32(w) * scale)
    resized = np.clip(resize_antialias(img, new_h, new_w), 0.0, 1.0)
    top, left = (out_h - new_h) // 2, (out_w - new_w) // 2
    out = np.zeros((out_h, out_w, 3), dtype=np.float32)
    out[top : top + new_h, left : left + new_w] = resized
    mask = np.zeros((out_h, out_w), dtype=np.int32)
    mask[top : top + new_h, left : left + new_w] = 1
    return out, mask


def patch_mask(pixel_mask: np.ndarray, patch: int) -> np.ndarray:
    """(H, W) pixel mask -> (H/p * W/p,) patch mask: TF's nearest-neighbour resize onto the
    patch grid (half-pixel centres: the pixel at (i + 0.5) * p of each patch)."""
    h, w = pixel_mask.shape
    rows = ((np.arange(h // patch) + 0.5) * patch).astype(np.int64)
    cols = ((np.arange(w // patch) + 0.5) * patch).astype(np.int64)
    return pixel_mask[np.ix_(rows, cols)].reshape(-1).astype(np.int32)


def to_patches(image: np.ndarray, patch: int) -> np.ndarray:
    """(H, W, 3) -> (H/p * W/p, p * p * 3), patches row-major, pixels (row, col, channel)."""
    h, w, c = image.shape
    x = image.reshape(h // patch, patch, w // patch, patch, c).transpose(0, 2, 1, 3, 4)
    return x.reshape((h // patch) * (w // patch), patch * patch * c)


def image_input(image: np.ndarray, size: tuple[int, int], patch: int = 16) -> dict[str, np.ndarray]:
    """One image as the official encoder input: ``input`` (P, p*p*3) float32 (CLIP-normalised),
    ``mask`` (P,) int32 (0 = padding patch), ``pos_ids`` (P,) int32."""
    pixels, mask = resize_and_pad(image, size)
    pixels = (pixels - CLIP_MEAN) / CLIP_STD
    patches = to_patches(pixels, patch).astype(np.float32)
    return {
        "input": patches,
        "mask": patch_mask(mask, patch),
        "pos_ids": np.arange(patches.shape[0], dtype=np.int32),
    }


def history_input(
    frames: Sequence[np.ndarray], size: tuple[int, int], n_frames: int, patch: int = 16
) -> dict[str, np.ndarray]:
    """History frames (oldest first) padded with empty frames to ``n_frames``: ``input``
    (T, Ph, p*p*3), ``mask`` (T, Ph), ``pos_ids`` (T, Ph); a padding frame is all zeros."""
    if len(frames) > n_frames:
        raise ValueError(f"{len(frames)} history frames, at most {n_frames} fit")
    n_patches = (size[0] // patch) * (size[1] // patch)
    out = {
        "input": np.zeros((n_frames, n_patches, patch * patch * 3), dtype=np.float32),
        "mask": np.zeros((n_frames, n_patches), dtype=np.int32),
        # every frame, padding too, has the grid ids (the official code tiles them to T)
        "pos_ids": np.tile(np.arange(n_patches, dtype=np.int32), (n_frames, 1)),
    }
    for t, frame in enumerate(frames):
        one = image_input(frame, size, patch)
        for key in out:
            out[key][t] = one[key]
    return out
