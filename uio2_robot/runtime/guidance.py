"""Scene-guided placement: the place point of a primitive action is read from the goal scene.

In tasks whose prompt shows a scene (rearrange's goal arrangement, scene_understanding's layout)
the decoder alone places poorly: on held-out demonstrations it finds the right place patch ~69%
of the time, while the encoder's *scene match* (``UIO2Model.scene_point_logits``: the picked
observation patch scored against the scene's patches, trained by ``mixture.scene_point_weight``)
finds the goal 79-92% of the time. Guidance combines the two at decode time, with no new weights.
The rule:

1. decode the action greedily; once the pick (x0, y0) is emitted it names an observation patch;
2. that patch's best-scoring scene patch is the goal (the scene camera is the observed one, so a
   scene patch is the same table region as the observation patch with its index);
3. the place tokens (x1, y1) may then only be the value bins whose centres fall in that patch,
   widened by ``margin`` bins on each side; the decoder still chooses where inside the patch,
   and every other token.

One executor runs it: ``UIO2Model.greedy_decode``'s ``guide``, between tokens, from two lookup
tables built here once per policy (`GuideTables`: pick tokens -> observation patch, goal patch ->
allowed place ids) and one per step (`GuideTables.step_rows`: each observation patch's goal, from
the scene match). The torch policy calls ``greedy_decode`` itself; the ONNX policy calls the
``decoder_guided`` graph exported from it. So both decode the same tokens (tested token for
token). Numpy only: the ONNX runtime's process never imports torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from uio2_robot.contracts import PRIMITIVE_ACTION_NAMES
from uio2_robot.tokenize.processor import Processor

PICK_DIMS = (PRIMITIVE_ACTION_NAMES.index("x0"), PRIMITIVE_ACTION_NAMES.index("y0"))
PLACE_DIMS = (PRIMITIVE_ACTION_NAMES.index("x1"), PRIMITIVE_ACTION_NAMES.index("y1"))
"""Token positions of the pick and the place point in a primitive action (its first action of a
chunk): named once, by the action contract."""


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
    empty, view 0 without a point map, and the last row: no pick patch)."""
    check_margin(margin)
    lo, hi = ids
    n_patches = grid_hw[0] * grid_hw[1]
    table = np.ones((n_patches + 1, 2, hi - lo), dtype=bool)
    if not _view0_mapped(processor):  # no patch maps to a place: guidance stands aside
        return table
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


@dataclass(frozen=True)
class GuideTables:
    """The rule as tables over the greedy ids lo..hi-1 (K of them), built once per policy:
    ``pick_patch`` (K, K) int64 (`pick_patch_table`) and ``place_rows`` (Np + 1, 2, K) bool
    (`place_rows_table`); `step_rows` adds this step's scene match."""

    pick_patch: np.ndarray
    place_rows: np.ndarray

    @classmethod
    def build(
        cls,
        processor: Processor,
        grid_hw: tuple[int, int],
        ids: tuple[int, int],
        margin: int = 1,
    ) -> GuideTables:
        return cls(
            pick_patch_table(processor, grid_hw, ids),
            place_rows_table(processor, grid_hw, ids, margin),
        )

    def step_rows(self, scene_states: np.ndarray, obs_states: np.ndarray) -> np.ndarray:
        """``greedy_decode``'s ``guide`` rows for this step (1, Np + 1, 2, K): scene states and
        view 0's observation-patch states, both (Np, D) (`step_place_rows`)."""
        return step_place_rows(self.place_rows, scene_states, obs_states)
