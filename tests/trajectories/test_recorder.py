"""Recorder and record_episodes: any gymnasium env and any expert into the same store format."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from traj_toy_env import ToyTabletopEnv

from uio2_robot.trajectories import EpisodeStore, Recorder, StoreError, record_episodes


def test_recorder_builds_episode_and_copies_inputs() -> None:
    rec = Recorder()
    img = np.zeros((4, 4, 3), np.uint8)
    rec.start(["go", img], {"task": "t", "level": "L2", "seed": 7, "robot": "ur5"})
    obs = {"cam": np.zeros((2, 2, 3), np.uint8), "state": {"q": np.zeros(3, np.float32)}}
    for t in range(3):
        obs["cam"][:] = t  # the env reuses its buffer
        rec.add(obs, np.full(2, t, np.float32))
    img[:] = 9
    ep = rec.finish(success=True)
    assert not rec.active
    assert ep.length == 3 and set(ep.steps) == {"cam", "state.q", "action"}
    assert ep.steps["cam"][:, 0, 0, 0].tolist() == [0, 1, 2]
    assert ep.prompt[1].max() == 0  # copied at start
    assert (ep.task, ep.level, ep.seed, ep.success) == ("t", "L2", 7, True)
    assert ep.extra == {"robot": "ur5"}


def test_recorder_refuses_inconsistent_steps() -> None:
    rec = Recorder()
    with pytest.raises(StoreError, match="before start"):
        rec.add({"a": np.zeros(2)}, np.zeros(1))
    rec.start()
    rec.add({"a": np.zeros(2, np.float32)}, np.zeros(1, np.float32))
    with pytest.raises(StoreError, match="step 1: 'a' is float32\\[3\\], expected float32\\[2\\]"):
        rec.add({"a": np.zeros(3, np.float32)}, np.zeros(1, np.float32))
    with pytest.raises(StoreError, match="step 1 has keys"):
        rec.add({"b": np.zeros(2, np.float32)}, np.zeros(1, np.float32))
    with pytest.raises(StoreError, match="reserved"):
        rec.add({"action": np.zeros(2, np.float32)}, np.zeros(1, np.float32))
    rec.start()
    with pytest.raises(StoreError, match="0 steps"):
        rec.finish(False)
    rec.start()
    with pytest.raises(StoreError, match="tuple observations"):
        rec.add((np.zeros(1), np.zeros(1)), np.zeros(1))


def test_record_pendulum_box_actions_and_resume(tmp_path: Path) -> None:
    env = gym.make("Pendulum-v1", max_episode_steps=20)

    def expert(obs: np.ndarray, info: dict) -> list[float]:  # a plain damping controller
        return [float(np.clip(-2.0 * obs[2], -2, 2))]

    path = tmp_path / "pendulum.zarr"
    summary = record_episodes(
        env, expert, 3, path, seeds=[5, 6, 7], meta={"level": "L1", "operator": "me"}
    )
    assert summary["stored"] == 3 and summary["skipped"] == 0 and summary["frames"] == 60
    store = EpisodeStore.open(path)
    assert store.schema.keys["obs"].shape == (3,) and store.schema.keys["action"].shape == (1,)
    assert store.schema.action_low == (-2.0,) and store.schema.action_names == ("a0",)
    ep = store.episode(1)
    assert ep.task == "Pendulum-v1" and ep.seed == 6 and ep.extra == {"operator": "me"}
    # The stored obs/action pairs are the real trajectory: replaying the actions reproduces it.
    obs, _ = env.reset(seed=6)
    for t in range(ep.length):
        np.testing.assert_allclose(ep.steps["obs"][t], obs, rtol=1e-6)
        obs, reward, *_ = env.step(ep.steps["action"][t])
        assert ep.steps["reward"][t] == pytest.approx(reward, rel=1e-6)
    np.testing.assert_allclose(
        ep.steps["action"][:, 0], np.clip(-2 * ep.steps["obs"][:, 2], -2, 2), rtol=1e-6
    )
    # Same call again: nothing recorded twice; a longer seed list only adds the new ones.
    assert record_episodes(env, expert, 3, path, seeds=[5, 6, 7])["skipped"] == 3
    again = record_episodes(env, expert, 4, path, seeds=[5, 6, 7, 8])
    assert (again["stored"], again["skipped"]) == (1, 3)
    fresh = EpisodeStore.open(path)
    assert fresh.n_episodes == 4 and fresh.stats()["obs"].count == 80
    assert store.stats()["obs"].count == 60  # an old reader keeps its snapshot


def test_record_cartpole_discrete_only_success(tmp_path: Path) -> None:
    env = gym.make("CartPole-v1", max_episode_steps=30)

    def expert(obs: np.ndarray, info: dict) -> int:
        return int(obs[2] + 0.5 * obs[3] > 0)

    def survived(info: dict, terminated: bool, truncated: bool) -> bool:
        return truncated and not terminated

    summary = record_episodes(
        env, expert, 4, tmp_path / "cp.zarr", success_fn=survived, only_success=True
    )
    store = EpisodeStore.open(tmp_path / "cp.zarr")
    assert store.schema.keys["action"].shape == () and store.schema.keys["action"].dtype == "int64"
    assert store.schema.action_high == (1.0,)
    assert summary["stored"] == store.n_episodes == 4 - summary["discarded"]
    assert all(m["success"] and m["length"] == 30 for m in store.all_meta())


def test_record_dict_env_with_prompt_and_render(tmp_path: Path) -> None:
    env = ToyTabletopEnv()
    summary = record_episodes(
        env,
        lambda obs, info: env.target,
        2,
        tmp_path / "toy.zarr",
        meta={"task": "toy"},
        render=True,
    )
    store = EpisodeStore.open(tmp_path / "toy.zarr")
    assert summary["success_rate"] == 0.5  # seed 0 is unsolvable by construction
    assert set(store.schema.keys) == {"front", "top", "proprio", "render", "action", "reward"}
    assert store.schema.keys["front"].is_image
    ep = store.episode(1)
    np.testing.assert_array_equal(ep.steps["render"], ep.steps["front"])
    assert isinstance(ep.prompt[1], np.ndarray) and ep.prompt[0] == "toy: put the"


def test_record_bad_arguments(tmp_path: Path) -> None:
    env = ToyTabletopEnv()
    with pytest.raises(StoreError, match="2 seeds given for n_episodes=3"):
        record_episodes(env, lambda o, i: env.target, 3, tmp_path / "x.zarr", seeds=[1, 2])
    with pytest.raises(StoreError, match="action has shape"):
        record_episodes(env, lambda o, i: np.zeros(5), 1, tmp_path / "x.zarr")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(StoreError, match="not empty"):
        record_episodes(env, lambda o, i: env.target, 1, tmp_path / "other")
    (tmp_path / "other" / "zarr.json").write_text("{}")
    with pytest.raises(StoreError, match="not a trajectory store"):
        record_episodes(env, lambda o, i: env.target, 1, tmp_path / "other")


class SuccessAs(gym.Wrapper):
    """Reports success under ``key`` as Meta-World does (a float): even seeds succeed."""

    def __init__(self, env: gym.Env, key: str) -> None:
        super().__init__(env)
        self.key, self.won = key, 0.0

    def reset(self, *, seed: int | None = None, options: dict | None = None):  # type: ignore[override]
        self.won = float((seed or 0) % 2 == 0)
        return self.env.reset(seed=seed, options=options)

    def step(self, action):  # type: ignore[override]
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated, truncated, {**info, self.key: self.won}


def test_record_reads_metaworld_success_and_keeps_the_task_per_recording(tmp_path: Path) -> None:
    env = SuccessAs(gym.make("Pendulum-v1", max_episode_steps=5), "success")
    path = tmp_path / "two_tasks.zarr"

    def expert(obs: np.ndarray, info: dict) -> list[float]:
        return [0.0]

    first = record_episodes(env, expert, 4, path, task="reach-v3")
    assert first["stored"] == 4 and first["success_rate"] == 0.5  # info["success"] was read
    second = record_episodes(env, expert, 4, path, task="push-v3")  # same seeds, another task
    assert (second["stored"], second["skipped"]) == (4, 0)
    again = record_episodes(env, expert, 4, path, task="push-v3")
    assert (again["stored"], again["skipped"]) == (0, 4)
    metas = EpisodeStore.open(path).all_meta()
    assert [m["task"] for m in metas] == ["reach-v3"] * 4 + ["push-v3"] * 4
    assert [m["success"] for m in metas[:4]] == [True, False, True, False]
    # a configured key the env does not report is an error, not 0% success
    with pytest.raises(StoreError, match="no success key 'is_success'"):
        record_episodes(env, expert, 1, tmp_path / "k.zarr", success_key="is_success")
    both = SuccessAs(SuccessAs(gym.make("Pendulum-v1", max_episode_steps=5), "success"), "x")
    summary = record_episodes(both, expert, 2, tmp_path / "k2.zarr", success_key="x")
    assert summary["success_rate"] == 0.5
