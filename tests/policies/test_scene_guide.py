"""Scene-guided placement's rule, numpy half: which bins a goal patch allows, and its tables."""

from __future__ import annotations

import json

import numpy as np
import pytest

from uio2_robot.policies.factory import DEFAULT_POLICY_DIR
from uio2_robot.runtime.guidance import (
    PICK_DIMS,
    PLACE_DIMS,
    GuideTables,
    grid_hw_of,
    patch_bins,
    pick_patch_table,
    place_rows_table,
    recommended_guidance,
    scene_match,
    step_place_rows,
)
from uio2_robot.tokenize.processor import Processor


@pytest.fixture(scope="module")
def processor() -> Processor:
    """The shipped policy's processor: a cropped top view with a point map, 128 bins."""
    return Processor.from_dict(json.loads((DEFAULT_POLICY_DIR / "processor.json").read_text()))


@pytest.fixture(scope="module")
def grid_hw() -> tuple[int, int]:
    return grid_hw_of(json.loads((DEFAULT_POLICY_DIR / "config.json").read_text())["model"])


def _centres(processor: Processor, dim: int) -> np.ndarray:
    tok = processor.action_tokenizer("primitive")
    ids = tok.first_bin_id + np.arange(tok.n_bins)[:, None].repeat(tok.dim, axis=1)
    return tok.decode(ids)[:, dim]


def _patch_of(processor: Processor, x: float, y: float, grid_hw: tuple[int, int]) -> int:
    action = np.array([x, y, 0.0, x, y, 0.0])
    return int(processor.point_targets(action, "primitive", grid_hw)[0])


def test_a_patch_allows_exactly_the_bins_whose_centres_fall_in_it(processor, grid_hw) -> None:
    xs, ys = _centres(processor, 3), _centres(processor, 4)
    rows, cols = grid_hw
    for patch in (0, cols + 3, rows * cols // 2, rows * cols - 1):
        x_bins, y_bins = patch_bins(processor, patch, grid_hw, margin=0)
        assert x_bins.any() and y_bins.any()
        # every allowed (x, y) centre pair lies in the patch; the first bin outside does not
        for x in xs[x_bins]:
            for y in ys[y_bins]:
                assert _patch_of(processor, x, y, grid_hw) == patch
        y_mid = ys[y_bins][len(ys[y_bins]) // 2]
        for i in (np.flatnonzero(x_bins)[0] - 1, np.flatnonzero(x_bins)[-1] + 1):
            if 0 <= i < len(xs):
                assert _patch_of(processor, xs[i], y_mid, grid_hw) != patch
        # a margin of 1 adds one bin on each side that exists
        wide_x, _ = patch_bins(processor, patch, grid_hw, margin=1)
        first, last = np.flatnonzero(x_bins)[[0, -1]]
        assert wide_x.sum() == x_bins.sum() + (first > 0) + (last < len(xs) - 1)


def test_the_pick_and_place_positions_are_the_action_contracts() -> None:
    from uio2_robot.contracts import PRIMITIVE_ACTION_NAMES

    assert [PRIMITIVE_ACTION_NAMES[i] for i in PICK_DIMS + PLACE_DIMS] == ["x0", "y0", "x1", "y1"]


def test_guidance_stands_aside_or_refuses_clearly(processor, grid_hw) -> None:
    """No point map for view 0: every pick maps to the row that guides nothing."""
    n = grid_hw[0] * grid_hw[1]
    ids = processor.action_id_range()
    no_map = Processor.from_dict({**processor.to_dict(), "point_maps": {}})
    tables = GuideTables.build(no_map, grid_hw, ids)
    assert (tables.pick_patch == n).all() and tables.place_rows[n].all()
    with pytest.raises(ValueError, match="margin"):
        GuideTables.build(processor, grid_hw, ids, margin=-1)
    with pytest.raises(ValueError, match="finite"):
        tables.step_rows(np.zeros((n, 4)), np.full((n, 4), np.nan))


def test_recommendation_and_scores() -> None:
    assert recommended_guidance({}, None) is False
    assert recommended_guidance({"inference": {"guide_place": True}}, None) is True
    assert recommended_guidance({"inference": {"guide_place": True}}, False) is False
    with pytest.raises(ValueError, match="true or false"):
        recommended_guidance({"inference": {"guide_place": "yes"}}, None)
    scene = np.array([[1.0, 0.0, 0.0, 0.0], [0.0, 2.0, 0.0, 0.0]])
    np.testing.assert_allclose(scene_match(scene, np.array([0.0, 1.0, 0.0, 0.0])), [0.0, 1.0])


def test_the_lookup_tables_are_the_same_rule(processor, grid_hw) -> None:
    """The tables a fused decoder applies (pick patch per bin pair, place rows per goal) give
    the patch under the pick (``Processor.point_targets``) and the bins whose centres fall in
    the goal patch (``patch_bins``)."""
    tok = processor.action_tokenizer("primitive")
    lo, hi = tok.first_bin_id - 2, tok.first_bin_id + tok.n_bins  # a wider id range, as a
    # bundle whose other modes have other bins would have
    n_patches = grid_hw[0] * grid_hw[1]
    picks = pick_patch_table(processor, grid_hw, (lo, hi))
    assert picks.shape == (hi - lo, hi - lo) and (picks[:2] == n_patches).all()
    rng = np.random.default_rng(0)
    for i, j in rng.integers(0, tok.n_bins, (400, 2)):
        tokens = tok.encode(np.zeros((1, 6)))[0]
        tokens[0], tokens[1] = tok.first_bin_id + i, tok.first_bin_id + j
        action = processor.decode_actions(tokens, "primitive")[0]
        want = int(processor.point_targets(action, "primitive", grid_hw)[0])
        assert picks[tokens[0] - lo, tokens[1] - lo] == (n_patches if want < 0 else want)
    assert (picks < n_patches).any() and (picks == n_patches).any()  # the crop leaves some out
    place = place_rows_table(processor, grid_hw, (lo, hi), margin=1)
    assert place.shape == (n_patches + 1, 2, hi - lo) and place[-1].all()
    for goal in (0, 5, n_patches - 1):
        x_bins, y_bins = patch_bins(processor, goal, grid_hw, margin=1)
        np.testing.assert_array_equal(place[goal, 0, 2:], x_bins)
        np.testing.assert_array_equal(place[goal, 1, 2:], y_bins)
        assert not place[goal, :, :2].any()
    # per step: each observation patch gets its best scene patch's rows (the last stands aside)
    d = 8
    scene = rng.normal(size=(n_patches, d))
    obs = rng.normal(size=(n_patches, d))
    rows = step_place_rows(place, scene, obs)
    assert rows.shape == (1, n_patches + 1, 2, hi - lo) and rows[0, -1].all()
    for p in (0, 7):
        np.testing.assert_array_equal(rows[0, p], place[scene_match(scene, obs[p]).argmax()])
    np.testing.assert_allclose(scene_match(scene, obs)[7], scene_match(scene, obs[7]))
    with pytest.raises(ValueError, match="finite"):
        step_place_rows(place, scene, np.full_like(obs, np.nan))
