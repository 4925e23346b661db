"""The shipped default policy: what `uio2-robot rollout` runs with no arguments."""

from __future__ import annotations

import numpy as np

from uio2_robot.envs import make_env
from uio2_robot.envs.spaces import PRIMITIVE_HIGH, PRIMITIVE_LOW
from uio2_robot.policies.factory import DEFAULT_POLICY_DIR, make_policy
from uio2_robot.seeding import EVAL_SEED_BASE


def test_shipped_policy_loads_and_acts_in_bounds_with_its_workspace_crop() -> None:
    assert (DEFAULT_POLICY_DIR / "model.safetensors").stat().st_size < 40 * 2**20
    policy = make_policy("default", threads=1)
    processor = policy.processor
    assert processor.camera_keys == ("top",) and "top" in processor.crops
    env = make_env("visual_manipulation", "L1", image_size=128)
    obs, info = env.reset(seed=EVAL_SEED_BASE + 7)
    policy.reset(info["prompt"], env.action_space)
    first = policy.act(obs)
    assert (
        first.shape == (6,) and np.all(first >= PRIMITIVE_LOW) and np.all(first <= PRIMITIVE_HIGH)
    )
    # greedy decoding is deterministic: the same observation gives the same action
    policy.reset(info["prompt"], env.action_space)
    np.testing.assert_array_equal(policy.act(obs), first)
    env.close()
