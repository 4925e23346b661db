"""Scene-guided placement: the place point of a primitive action is read from the goal scene.

In tasks whose prompt shows a scene (rearrange's goal arrangement, scene_understanding's layout)
the decoder alone places poorly: on held-out demonstrations it finds the right place patch ~69%
of the time, while the encoder's *scene match* (``UIO2Model.scene_point_logits``: the picked
observation patch scored against the scene's patches, trained by ``mixture.scene_point_weight``)
finds the goal 79-92% of the time. Guidance combines the two at decode time, with no new weights:

1. decode the action as usual; the pick (x0, y0) names an observation patch;
2. that patch's best-scoring scene patch is the goal (the scene camera is the observed one, so a
   scene patch is the same table region as the observation patch with its index);
3. decode again with the pick tokens fixed and the place tokens (x1, y1) restricted to the value
   bins whose centres fall in that patch, widened by ``margin`` bins on each side; the decoder
   still chooses where inside the patch, and every other token.

Greedy decoding is causal, so step 3 equals decoding once with the place rows restricted after
the first ``GUIDE_AFTER`` tokens (the pick) were emitted. The torch policy decodes twice with
``guided_allowed``'s rows; the ONNX policy decodes once, the rule turned into lookup tables
(``pick_patch_table``, ``place_rows_table``, ``step_place_rows``) that its ``decoder_guided``
graph applies between tokens (or its step loop, ``BundleRunner.decode_guided``). Numpy only:
both policies share it and so agree (tested token for token).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from uio2_robot.tokenize.processor import Processor

PICK_DIMS = (0, 1)  # x0, y0 of a primitive action
PLACE_DIMS = (3, 4)  # x1, y1
GUIDE_AFTER = 3
"""Tokens of the first decode that guidance keeps (x0, y0 and the pick angle): the place rows are
decided once these are known."""


def recommended_guidance(config: Mapping[str, Any], requested: bool | None) -> bool:
    """Whether to guide: ``requested`` when given, else the checkpoint's (or bundle manifest's)
    ``inference.guide_place``, which training runs leave unset (False) and a shipped policy sets
    to how it was evaluated."""
    if requested is not None:
        return bool(requested)
    value = (config.get("inference") or {}).get("guide_place", False)
    if not isinstance(value, bool):
        raise ValueError(f"inference.guide_place must be true or false, got {value!r}")
    return value


def check_margin(margin: int) -> None:
    """A guide margin is a whole number of value bins, 0 or more."""
    if not isinstance(margin, int) or margin < 0:
        raise ValueError(f"guide_margin must be >= 0 bins, got {margin!r}")


def grid_hw_of(model_config: Mapping[str, Any]) -> tuple[int, int]:
    """``ModelConfig.grid_hw`` from a config dict (a bundle manifest's ``model_config``), without
    importing the torch model package."""
    height = int(model_config["image_size"])
    width = int(model_config.get("image_width") or height)
    patch = int(model_config["patch_size"])
    return height // patch, width // patch


def scene_match(scene_states: np.ndarray, query_states: np.ndarray) -> np.ndarray:
    """Numpy twin of ``uio2_robot.model.uio2.scene_match``: scene patch states (Np, D) scored
    against observation-patch states (..., D) -> (..., Np), dot products over sqrt(D)."""
    scene = np.asarray(scene_states, dtype=np.float64)
    return np.asarray(query_states, dtype=np.float64) @ scene.T / np.sqrt(scene.shape[-1])


def _view0_mapped(processor: Processor) -> bool:
    """Whether view 0 has a point map (scene scores are over view 0's patches)."""
    mapped = [i for i, k in enumerate(processor.camera_keys) if k in processor.point_maps]
    return bool(mapped) and mapped[0] == 0


def _bin_centres(processor: Processor) -> np.ndarray:
    """(n_bins, D) float32: every primitive value bin's centre in every dimension."""
    tok = processor.action_tokenizer("primitive")
    return tok.decode(tok.first_bin_id + np.arange(tok.n_bins)[:, None].repeat(tok.dim, axis=1))


def _patch_index(
    processor: Processor, x: np.ndarray, y: np.ndarray, grid_hw: tuple[int, int]
) -> np.ndarray:
    """View 0's patch under action points (x, y) (broadcast), -1 outside the view:
    ``Processor.point_targets``' arithmetic, vectorised, in float64 like it."""
    a, b, c, d, e, f = processor.point_maps[processor.camera_keys[0]]
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    row, col = a * x + b * y + c, d * x + e * y + f
    rows, cols = grid_hw
    inside = (row >= 0.0) & (row < 1.0) & (col >= 0.0) & (col < 1.0)
    return np.where(inside, np.floor(row * rows) * cols + np.floor(col * cols), -1).astype(np.int64)


def pick_patch(processor: Processor, tokens: np.ndarray, grid_hw: tuple[int, int]) -> int:
    """The view-0 observation patch under the first action's pick point, or -1 where it has
    none (outside the view, or no point map for view 0)."""
    if not _view0_mapped(processor):
        return -1
    action = processor.decode_actions(tokens, "primitive")[0]
    return int(processor.point_targets(action, "primitive", grid_hw)[0])


def patch_bins(
    processor: Processor, patch: int, grid_hw: tuple[int, int], margin: int
) -> tuple[np.ndarray, np.ndarray]:
    """Bool masks over the value bins of x and y (n_bins,) whose centres map into view 0's
    ``patch``, each widened by ``margin`` bins on both sides (a patch's edge bins straddle it)."""
    centres = _bin_centres(processor)
    x, y = centres[:, PLACE_DIMS[0], None], centres[None, :, PLACE_DIMS[1]]
    hit = _patch_index(processor, x, y, grid_hw) == patch  # (x bin, y bin)
    return _widen(hit.any(axis=1), margin), _widen(hit.any(axis=0), margin)


def _widen(mask: np.ndarray, margin: int) -> np.ndarray:
    out = mask.copy()
    for _ in range(margin):
        grown = out.copy()
        grown[1:] |= out[:-1]
        grown[:-1] |= out[1:]
        out = grown
    return out


def guided_allowed(
    processor: Processor,
    tokens: np.ndarray,
    grid_hw: tuple[int, int],
    vocab_size: int,
    scene_scores: Callable[[int], np.ndarray],
    margin: int = 1,
) -> np.ndarray | None:
    """Per-token allowed ids (n_tokens, vocab_size) for the guided second decode of ``tokens``
    (a primitive chunk from the first decode), or None where guidance does not apply: no pick patch, or the goal patch holds no bin centre.

    ``scene_scores(pick)`` returns the scene patches' scores (Np,) for observation patch
    ``pick``; the caller checks that the prompt has a scene.
    """
    check_margin(margin)
    tokens = np.asarray(tokens).reshape(-1)
    pick = pick_patch(processor, tokens, grid_hw)
    if pick < 0:
        return None
    scores = np.asarray(scene_scores(pick), dtype=np.float64).reshape(-1)
    if scores.shape != (grid_hw[0] * grid_hw[1],) or not np.isfinite(scores).all():
        raise ValueError(
            f"scene scores must be {grid_hw[0] * grid_hw[1]} finite values (one per scene "
            f"patch), got shape {scores.shape}"
        )
    x_bins, y_bins = patch_bins(processor, int(scores.argmax()), grid_hw, margin)
    if not x_bins.any() or not y_bins.any():
        return None
    tok = processor.action_tokenizer("primitive")
    allowed = np.zeros((tokens.size, vocab_size), dtype=bool)
    allowed[:, processor.allowed_action_ids("primitive")] = True
    for dim in range(GUIDE_AFTER):  # the pick (and its angle) stay what the first decode chose
        allowed[dim] = False
        allowed[dim, tokens[dim]] = True
    for dim, bins in zip(PLACE_DIMS, (x_bins, y_bins), strict=True):
        allowed[dim] = False
        allowed[dim, tok.first_bin_id + np.flatnonzero(bins)] = True
    return allowed


# ---------------------------------------------------------------------------- in-graph guidance
# The same rule as ``guided_allowed``, as lookup tables a fused decoder graph can apply between
# tokens (``UIO2Model.greedy_decode``'s ``guide``): the pick tokens (x0, y0) index a table of
# observation patches, the patch a set of place rows, so guidance costs no extra decoder call.


def pick_patch_table(
    processor: Processor, grid_hw: tuple[int, int], ids: tuple[int, int]
) -> np.ndarray:
    """(K, K) int64, K = hi - lo of ``ids``: entry [i, j] is the view-0 patch under the pick of
    tokens x0 = lo + i, y0 = lo + j (``pick_patch``), or Np (no patch: outside the view, not a
    primitive bin, or no point map for view 0), the row of ``place_rows_table`` that guides
    nothing."""
    lo, hi = ids
    n_patches = grid_hw[0] * grid_hw[1]
    table = np.full((hi - lo, hi - lo), n_patches, dtype=np.int64)
    if not _view0_mapped(processor):
        return table
    centres = _bin_centres(processor)
    x, y = centres[:, PICK_DIMS[0], None], centres[None, :, PICK_DIMS[1]]
    patch = _patch_index(processor, x, y, grid_hw)  # (x0 bin, y0 bin)
    start = processor.action_tokenizer("primitive").first_bin_id - lo
    end = start + len(centres)
    table[start:end, start:end] = np.where(patch < 0, n_patches, patch)
    return table


def place_rows_table(
    processor: Processor, grid_hw: tuple[int, int], ids: tuple[int, int], margin: int = 1
) -> np.ndarray:
    """(Np + 1, 2, K) bool: for each scene patch taken as the goal, the x1 and y1 ids (less lo)
    guidance allows (``patch_bins``); all True where it stands aside (a goal whose bins are
    empty, and the last row: no pick patch)."""
    check_margin(margin)
    lo, hi = ids
    n_patches = grid_hw[0] * grid_hw[1]
    table = np.ones((n_patches + 1, 2, hi - lo), dtype=bool)
    start = processor.action_tokenizer("primitive").first_bin_id - lo
    for goal in range(n_patches):
        x_bins, y_bins = patch_bins(processor, goal, grid_hw, margin)
        if x_bins.any() and y_bins.any():
            table[goal] = False
            table[goal, 0, start + np.flatnonzero(x_bins)] = True
            table[goal, 1, start + np.flatnonzero(y_bins)] = True
    return table


def step_place_rows(
    place_rows: np.ndarray, scene_states: np.ndarray, obs_states: np.ndarray
) -> np.ndarray:
    """This step's guide rows (1, Np + 1, 2, K): for each observation patch (the pick), the
    place rows of its best-matching scene patch (``scene_match`` for every patch at once); the
    last row stands aside. ``scene_states``, ``obs_states``: (Np, D) of view 0."""
    scores = scene_match(scene_states, obs_states)  # (obs patch, scene patch)
    if not np.isfinite(scores).all():
        raise ValueError("scene scores must be finite: the scene or observation states hold NaN")
    goals = np.append(scores.argmax(axis=1), len(place_rows) - 1)
    return place_rows[goals][None]
