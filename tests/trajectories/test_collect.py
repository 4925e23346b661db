"""collect(): parallel workers, one writer, deterministic content, resume, only_success, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from traj_toy_env import assert_episode_equal, make_toy_env, make_toy_policy

from uio2_robot import seeding
from uio2_robot.trajectories import EpisodeStore, StoreError, collect, episode_seed

TOY = {
    "make_env_fn": make_toy_env,
    "make_policy_fn": make_toy_policy,
    "progress": False,
    "image_size": 16,
}


def test_same_content_for_any_worker_count_and_resume(tmp_path: Path) -> None:
    args = (["pick", "push"], ["L1", "L2"], 3)
    one = collect(*args, workers=0, out=tmp_path / "w0.zarr", seed=4, **TOY)
    two = collect(*args, workers=2, out=tmp_path / "w2.zarr", seed=4, **TOY)
    assert one["stored"] == two["stored"] == 12 and one["errors"] == two["errors"] == []
    assert one["per_task"]["push/L2"]["attempted"] == 3
    a, b = EpisodeStore.open(tmp_path / "w0.zarr"), EpisodeStore.open(tmp_path / "w2.zarr")
    for i in range(12):
        assert_episode_equal(a.episode(i), b.episode(i))
    metas = a.all_meta()
    expected = [
        (t, lv, episode_seed(4, t, lv, i)) for t in args[0] for lv in args[1] for i in range(3)
    ]
    assert [(m["task"], m["level"], m["seed"]) for m in metas] == expected
    assert (
        metas[0]["extra"] == {"policy": "oracle", "index": 0}
        and metas[0]["action_mode"] == "primitive"
    )
    assert a.schema.action_names == ("x0", "y0", "yaw0", "x1", "y1", "yaw1")
    assert a.stats()["action"].count == a.n_frames

    more = collect(*args[:2], 4, workers=0, out=tmp_path / "w0.zarr", seed=4, **TOY)
    assert (more["stored"], more["skipped"]) == (4, 12)
    assert EpisodeStore.open(tmp_path / "w0.zarr").validate() == []
    # A delta-mode action (5 dims) does not fit a primitive-mode store: refused, store intact.
    with pytest.raises(
        StoreError, match=r"cannot append pick/L1 .*per-step shape \(5,\), expected \(6,\)"
    ):
        collect(
            ["pick"], ["L1"], 2, workers=0, out=tmp_path / "w0.zarr", action_mode="delta", **TOY
        )
    assert EpisodeStore.open(tmp_path / "w0.zarr").n_episodes == 16


_built: list[str] = []


def make_env_interrupted_at_third_task(task: str, level: str, **kwargs: object):
    """The toy env, until the third task's env is built: then Ctrl-C."""
    _built.append(task)
    if len(set(_built)) > 2:
        raise KeyboardInterrupt
    return make_toy_env(task, level, **kwargs)


def test_interrupted_collection_keeps_every_finished_episode(tmp_path: Path) -> None:
    # episodes are written in batches; Ctrl-C must still store the ones that finished
    _built.clear()
    args = {**TOY, "make_env_fn": make_env_interrupted_at_third_task}
    with pytest.raises(KeyboardInterrupt):
        collect(["pick", "push", "place"], ["L1"], 2, workers=0, out=tmp_path / "s.zarr", **args)
    store = EpisodeStore.open(tmp_path / "s.zarr")
    assert [m["task"] for m in store.all_meta()] == ["pick", "pick", "push", "push"]
    assert store.validate(deep=True) == []


def test_delta_mode_store(tmp_path: Path) -> None:
    summary = collect(
        ["pick"], ["L1"], 2, workers=0, out=tmp_path / "d.zarr", action_mode="delta", **TOY
    )
    store = EpisodeStore.open(tmp_path / "d.zarr")
    assert summary["stored"] == 2
    assert store.schema.action_names == ("dx", "dy", "dz", "dyaw", "tool")
    assert (
        store.episode_meta(0)["control_hz"] == 10.0
        and store.episode_meta(0)["action_mode"] == "delta"
    )


def test_only_success_and_errors(tmp_path: Path) -> None:
    with pytest.warns(RuntimeWarning, match="episodes raised"):
        summary = collect(
            ["pick", "broken"],
            ["L1"],
            6,
            workers=0,
            out=tmp_path / "s.zarr",
            only_success=True,
            **TOY,
        )
    store = EpisodeStore.open(tmp_path / "s.zarr")
    failures = sum(episode_seed(0, "pick", "L1", i) % 3 == 0 for i in range(6))
    assert (
        summary["discarded"] == failures and summary["stored"] == 6 - failures == store.n_episodes
    )
    assert all(m["success"] for m in store.all_meta())
    assert len(summary["errors"]) == 6 and "no such task: broken" in summary["errors"][0]["error"]


def test_episode_seed_is_the_shared_collection_derivation() -> None:
    seeds = {
        episode_seed(0, t, lv, i) for t in ("a", "b") for lv in ("L1", "L2") for i in range(50)
    }
    assert len(seeds) == 200 and all(s >= 0 for s in seeds)
    assert episode_seed(1, "a", "L1", 0) != episode_seed(0, "a", "L1", 0)
    assert episode_seed(3, "a", "L1", 7) == seeding.episode_seed(3, "a", "L1", 7)
    # Collection may never draw evaluation episodes.
    assert not any(seeding.is_eval_base(s) for s in seeds)
    with pytest.raises(StoreError, match="evaluation range"):
        episode_seed(seeding.EVAL_SEED_BASE, "a", "L1", 0)
    with pytest.raises(StoreError, match="index must be"):
        episode_seed(0, "a", "L1", -1)


def test_policy_that_cannot_be_built_fails_fast(tmp_path: Path) -> None:
    # workers=1 exercises the process pool: a failing worker setup must raise, not hang.
    for workers in (0, 1):
        with pytest.raises(
            StoreError, match="worker setup failed: ValueError: unknown policy 'nope'"
        ):
            collect(
                ["pick"], ["L1"], 3, workers=workers, out=tmp_path / "x.zarr", policy="nope", **TOY
            )
    assert not (tmp_path / "x.zarr").exists()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(StoreError, match="not a trajectory store"):
        collect(["pick"], ["L1"], 1, workers=0, out=tmp_path / "mine", **TOY)


def test_a_base_near_another_warns_that_it_replays_its_episodes(tmp_path: Path) -> None:
    """Base 3's episode i is base 0's episode i + 3: collect says so instead of silently
    collecting old layouts as new data; a multiple of 100000 draws new ones without a warning."""
    with pytest.warns(RuntimeWarning, match=r"episodes 3\.\.4 of base 0.*seed=100000"):
        collect(["pick"], ["L1"], 2, workers=0, out=tmp_path / "near.zarr", seed=3, **TOY)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        collect(["pick"], ["L1"], 2, workers=0, out=tmp_path / "far.zarr", seed=100000, **TOY)
    near = {m["seed"] for m in EpisodeStore.open(tmp_path / "near.zarr").all_meta()}
    base0 = {episode_seed(0, "pick", "L1", i) for i in range(5)}
    far = {m["seed"] for m in EpisodeStore.open(tmp_path / "far.zarr").all_meta()}
    assert near <= base0 and far.isdisjoint(base0)
