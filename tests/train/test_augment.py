"""Colour augmentation (train/augment.py): one hue turn per sample, the same on all its images."""

from __future__ import annotations

import numpy as np
import pytest

from uio2_robot.train.augment import IMAGE_KEYS, augment_colours, hue_matrix
from uio2_robot.train.config import TrainConfig


def _batch(n: int = 3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    obs = rng.uniform(-1, 1, (n, 1, 3, 4, 6)).astype(np.float32)
    prompt = np.zeros((n, 2, 3, 4, 4), np.float32)
    prompt[:, 0] = obs[:, 0, :, :, :4]  # the prompt shows a patch of the scene, as a look-alike
    return {"obs_images": obs, "prompt_images": prompt, "tokens": np.arange(n * 5).reshape(n, 5)}


def test_a_third_of_a_turn_permutes_the_channels_and_grey_stays_grey():
    np.testing.assert_allclose(hue_matrix(1 / 3) @ [0.9, -0.2, 0.1], [0.1, 0.9, -0.2], atol=1e-9)
    for turns in (0.1, 0.25, -0.4):
        m = hue_matrix(turns)
        np.testing.assert_allclose(m @ m.T, np.eye(3), atol=1e-9)  # a rotation: no colour lost
        np.testing.assert_allclose(m @ [0.3, 0.3, 0.3], [0.3, 0.3, 0.3], atol=1e-9)


def test_every_image_of_a_sample_gets_the_same_turn_and_samples_differ():
    batch = _batch()
    out = augment_colours(batch, 0.5, 0.5, np.random.default_rng(1))
    # the prompt's look-alike patch still equals the scene's pixels (both clipped alike)
    scene, look = out["obs_images"][:, 0, :, :, :4], out["prompt_images"][:, 0]
    np.testing.assert_allclose(look, scene, atol=1e-6)
    assert not np.allclose(out["obs_images"], batch["obs_images"])
    first = out["obs_images"][0] - batch["obs_images"][0]
    second = out["obs_images"][1] - batch["obs_images"][1]
    assert not np.allclose(first, second)
    assert out["tokens"] is batch["tokens"] and out["obs_images"].dtype == np.float32
    assert np.abs(out["obs_images"]).max() <= 1.0
    # the input is left as it was; the same generator seed gives the same batch
    np.testing.assert_array_equal(batch["obs_images"], _batch()["obs_images"])
    again = augment_colours(_batch(), 0.5, 0.5, np.random.default_rng(1))
    for key in ("obs_images", "prompt_images"):
        np.testing.assert_array_equal(again[key], out[key])


def test_off_is_the_identity_and_bad_input_is_named():
    batch = _batch()
    out = augment_colours(batch, 0.0, 0.0, np.random.default_rng(0))
    for key in IMAGE_KEYS:
        if key in batch:
            assert out[key] is batch[key]
    with pytest.raises(ValueError, match=r"prompt_images.*\(B, \.\.\., 3, H, W\) with B=3"):
        augment_colours({**batch, "prompt_images": np.zeros((2, 3, 4, 4))}, 0.1, 0, None)
    with pytest.raises(ValueError, match=r"augment_hue must be in \[0, 0.5\]"):
        TrainConfig(augment_hue=0.7)
    with pytest.raises(ValueError, match="augment_swap must be a probability"):
        TrainConfig(augment_swap=-0.1)
    with pytest.raises(ValueError, match="augment_mirror must be a probability"):
        TrainConfig(augment_mirror=1.5)
