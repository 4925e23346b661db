"""Mirror augmentation (train/mirror.py), checked against the shipped policy's processor: labels,
pointing targets, proprio and a marker pixel under the pick move to the reflected points."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from uio2_robot.model.inputs import ACTION_TOKENS, POINT_TARGETS
from uio2_robot.policies.factory import DEFAULT_POLICY_DIR
from uio2_robot.tokenize.processor import Processor
from uio2_robot.train.mirror import Mirror

GRID = (4, 8)  # the shipped policy's patch grid: a 64 x 128 view in 16 px patches


@pytest.fixture(scope="module")
def shipped() -> Processor:
    return Processor.load(DEFAULT_POLICY_DIR / "processor.json")


def _primitive_batch(processor: Processor, n: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """n samples of random pick-and-place actions inside the view, tokenised by ``processor``."""
    rng = np.random.default_rng(3)
    actions = np.stack(
        [
            rng.uniform(0.3, 0.7, n),
            rng.uniform(-0.45, 0.45, n),
            rng.uniform(-3.0, 3.0, n),
            rng.uniform(0.3, 0.7, n),
            rng.uniform(-0.45, 0.45, n),
            rng.uniform(-3.0, 3.0, n),
        ],
        axis=1,
    )
    batch = {
        "obs_images": rng.uniform(-1, 1, (n, 1, 3, 64, 128)).astype(np.float32),
        "prompt_images": rng.uniform(-1, 1, (n, 2, 3, 64, 64)).astype(np.float32),
        ACTION_TOKENS: np.stack([processor.action_target_tokens(a, "primitive") for a in actions]),
        POINT_TARGETS: np.stack([processor.point_targets(a, "primitive", GRID) for a in actions]),
        "tokens": np.arange(n * 4).reshape(n, 4),
        # the arm where it last placed: (ee_x, ee_y, ee_z, ee_yaw, tool_on, tool_contact)
        "proprio": (
            (actions[:, [3, 4, 4, 5, 5, 5]] - processor.proprio_mean) / processor.proprio_std
        ).astype(np.float32)[:, None],
    }
    return batch, actions


def test_the_mirror_moves_labels_and_points_with_the_flipped_images(shipped):
    mirror = Mirror.for_processor(shipped, "primitive", GRID)
    batch, actions = _primitive_batch(shipped, 16)
    out = mirror(batch, 1.0, np.random.default_rng(0))
    for key in ("obs_images", "prompt_images"):
        np.testing.assert_array_equal(out[key], batch[key][..., ::-1])
    reflected = actions * np.array([1, -1, -1, 1, -1, -1])
    tok = shipped.action_tokenizer("primitive")
    decoded = shipped.decode_actions(out[ACTION_TOKENS], "primitive").reshape(-1, 6)
    assert np.all(np.abs(decoded - reflected) <= tok.bin_width / 2 + 1e-6)
    # proprio: the arm's y and yaw change sign, the rest stays
    raw = out["proprio"] * shipped.proprio_std + shipped.proprio_mean
    before = batch["proprio"] * shipped.proprio_std + shipped.proprio_mean
    np.testing.assert_allclose(raw, before * np.array([1, -1, 1, -1, 1, 1]), atol=1e-5)
    # the pointing targets are where the processor puts the reflected points
    expected = np.stack([shipped.point_targets(a, "primitive", GRID) for a in reflected])
    np.testing.assert_array_equal(out[POINT_TARGETS], expected)
    assert (expected >= 0).all()
    # a marker drawn under each pick point lands, flipped, under the reflected pick point
    a, _, c, _, e, f = shipped.point_maps["top"]

    def pixel(x: float, y: float) -> tuple[int, int]:
        return int((a * x + c) * 64), int((e * y + f) * 128)

    marked = {**batch, "obs_images": np.zeros_like(batch["obs_images"])}
    for k in range(16):
        marked["obs_images"][(k, 0, 0, *pixel(actions[k, 0], actions[k, 1]))] = 1.0
    flipped = mirror(marked, 1.0, np.random.default_rng(0))["obs_images"]
    for k in range(16):
        row, col = np.argwhere(flipped[k, 0, 0] == 1.0)[0]
        want_row, want_col = pixel(reflected[k, 0], reflected[k, 1])
        assert row == want_row and abs(col - want_col) <= 1
    # twice is the identity; other arrays pass through; the input is left as it was
    twice = mirror(out, 1.0, np.random.default_rng(0))
    for key in ("obs_images", ACTION_TOKENS, POINT_TARGETS):
        np.testing.assert_array_equal(twice[key], batch[key])
    np.testing.assert_allclose(twice["proprio"], batch["proprio"], atol=1e-5)
    assert out["tokens"] is batch["tokens"]
    np.testing.assert_array_equal(
        batch[ACTION_TOKENS], _primitive_batch(shipped, 16)[0][ACTION_TOKENS]
    )


def test_the_mirror_reflects_the_drawn_samples_only(shipped):
    mirror = Mirror.for_processor(shipped, "primitive", GRID)
    batch, _ = _primitive_batch(shipped, 64)
    out = mirror(batch, 0.5, np.random.default_rng(7))
    flipped = np.any(out[ACTION_TOKENS] != batch[ACTION_TOKENS], axis=1)
    assert 10 < flipped.sum() < 54
    same_images = np.all(out["obs_images"] == batch["obs_images"], axis=(1, 2, 3, 4))
    np.testing.assert_array_equal(same_images, ~flipped)
    off = mirror(batch, 0.0, np.random.default_rng(7))
    assert off[ACTION_TOKENS] is batch[ACTION_TOKENS]


def test_the_mirror_refuses_a_geometry_it_would_not_fit(shipped):
    with pytest.raises(ValueError, match="reflects primitive actions"):
        Mirror.for_processor(shipped, "delta", GRID)
    off_centre = dataclasses.replace(
        shipped, point_maps={"top": (-1.79, 0.0, 1.39, 0.0, -0.94, 0.4)}
    )
    with pytest.raises(ValueError, match="columns to be y with y = 0 at the centre"):
        Mirror.for_processor(off_centre, "primitive", GRID)
    unmapped = dataclasses.replace(shipped, point_maps={})
    with pytest.raises(ValueError, match=r"cameras without one: \['top'\]"):
        Mirror.for_processor(unmapped, "primitive", GRID)
    tok = shipped.action_tokenizer("primitive")
    lopsided = dataclasses.replace(tok, low=tok.low + np.array([0, 0.1, 0, 0, 0, 0]))
    asym = dataclasses.replace(
        shipped, action_tokenizers={**shipped.action_tokenizers, "primitive": lopsided}
    )
    with pytest.raises(ValueError, match="'y0' bins symmetric about 0"):
        Mirror.for_processor(asym, "primitive", GRID)
    arm7 = dataclasses.replace(shipped, proprio_mean=np.zeros(7), proprio_std=np.ones(7))
    with pytest.raises(ValueError, match="proprio has 7 values"):
        Mirror.for_processor(arm7, "primitive", GRID)
    mirror = Mirror.for_processor(shipped, "primitive", GRID)
    with pytest.raises(ValueError, match=r"must be \(B, H\*6\) action ids"):
        mirror({ACTION_TOKENS: np.zeros((2, 5), np.int64)}, 1.0, np.random.default_rng(0))
