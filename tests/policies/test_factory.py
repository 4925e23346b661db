"""The policy factory: every option it accepts is a PolicyConfig field, typos are errors, and the
replay policy re-runs a recorded episode to the same outcome."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from uio2_robot.config_schema import PolicyConfig
from uio2_robot.envs import make_env, oracle_action
from uio2_robot.eval.rollout import run_episode
from uio2_robot.policies.factory import POLICY_OPTIONS, make_policy
from uio2_robot.trajectories import record_episodes


def test_the_known_options_are_exactly_the_policy_config() -> None:
    fields = {f.name for f in dataclasses.fields(PolicyConfig)} - {"name"}
    assert set(POLICY_OPTIONS) == fields


def test_an_unknown_option_is_an_error_naming_the_known_ones() -> None:
    with pytest.raises(
        ValueError, match=r"unknown policy option\(s\) \['tempreature'\].*'temperature'"
    ):
        make_policy("random", tempreature=0.5)
    make_policy("random", temperature=0.5, bundle=None)  # another policy's option: ignored


def test_replay_reruns_a_recorded_oracle_episode_to_the_same_outcome(tmp_path: Path) -> None:
    store = tmp_path / "demo.zarr"
    env = make_env("visual_manipulation", "L1", action_mode="primitive", image_size=32)
    try:
        summary = record_episodes(
            env,
            lambda obs, info: oracle_action(env, obs),
            1,
            store,
            seeds=[77],
            meta={"task": "visual_manipulation", "level": "L1", "action_mode": "primitive"},
        )
        assert summary["stored"] == 1 and summary["success_rate"] == 1.0
        policy = make_policy("replay", store=str(store), episode=0)
        result, _info = run_episode(env, policy, 77)
    finally:
        env.close()
    assert result.success and result.steps == len(policy.actions)
    with pytest.raises(ValueError, match="episode 3 is not in"):
        make_policy("replay", store=str(store), episode=3)
    with pytest.raises(ValueError, match="needs store=STORE"):
        make_policy("replay")
    assert np.all(np.isfinite(policy.actions))
