"""The trajectory stack against the real MuJoCo suite and the oracle policy (no toy stand-ins)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from traj_toy_env import assert_episode_equal

from uio2_robot.envs.spaces import DELTA_ACTION_NAMES, PRIMITIVE_ACTION_NAMES
from uio2_robot.policies.factory import make_policy
from uio2_robot.trajectories import (
    EpisodeStore,
    WindowDataset,
    collect,
    episode_video,
    store_info,
)


def test_collect_suite_primitive_same_for_any_worker_count(tmp_path: Path) -> None:
    args = (["visual_manipulation"], ["L1"], 2)
    kw = {"image_size": 32, "progress": False, "make_policy_fn": make_policy}
    one = collect(*args, workers=0, out=tmp_path / "a.zarr", **kw)
    two = collect(*args, workers=2, out=tmp_path / "b.zarr", **kw)
    assert one["errors"] == two["errors"] == [] and one["stored"] == two["stored"] == 2
    assert one["success_rate"] == 1.0  # the oracle solves its own suite
    a, b = EpisodeStore.open(tmp_path / "a.zarr"), EpisodeStore.open(tmp_path / "b.zarr")
    for i in range(2):
        assert_episode_equal(a.episode(i), b.episode(i))
    assert a.schema.action_names == PRIMITIVE_ACTION_NAMES
    assert a.schema.keys["front"].shape == (32, 32, 3) and a.schema.keys["proprio"].shape == (6,)
    ep = a.episode(0)
    assert any(isinstance(s, np.ndarray) for s in ep.prompt) and isinstance(ep.prompt[0], str)
    assert a.validate(deep=True) == []


def test_delta_mode_windows_and_video(tmp_path: Path) -> None:
    path = tmp_path / "delta.zarr"
    summary = collect(
        ["visual_manipulation"],
        ["L1"],
        1,
        workers=0,
        out=path,
        image_size=32,
        action_mode="delta",
        progress=False,
        make_policy_fn=make_policy,
    )
    store = EpisodeStore.open(path)
    assert summary["stored"] == 1 and store.n_frames > 10  # delta episodes are many control steps
    assert store.schema.action_names == DELTA_ACTION_NAMES
    assert store.episode_meta(0)["control_hz"] == 10.0
    assert store_info(path)["per_task"]["visual_manipulation"]["L1"]["success_rate"] == 1.0
    ds = WindowDataset(
        [path], n_obs_history=2, action_chunk=4, split="all", keys=["front", "top", "proprio"]
    )
    last = ds[len(ds) - 1]
    assert last["action_mask"].tolist() == [True, False, False, False]
    assert ds[0]["obs_mask"].tolist() == [False, True]
    video = episode_video(path, 0, tmp_path / "delta.mp4", fps=10)
    assert video["frames"] == store.n_frames
