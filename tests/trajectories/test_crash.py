"""Crash safety and concurrent reading, with real processes.

A writer killed with SIGKILL at any point of an append loses at most that episode; the store
reopens, validates and takes appends again. A reader polling a store that another process is
appending to only ever sees complete, exact episodes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from traj_toy_env import (
    ToyTabletopEnv,
    assert_episode_equal,
    make_toy_env,
    make_toy_policy,
    synthetic_episode,
)

from uio2_robot.trajectories import EpisodeStore, StoreError, StoreSchema, collect

HERE = Path(__file__).resolve().parent


def _python(code: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


# (array, method): the writer dies right after this call inside append_episode
KILL_POINTS = [
    ("meta/prompt_images", "__setitem__"),  # prompt bytes written, nothing else
    ("front", "resize"),  # a data array grown, not written
    ("front", "__setitem__"),  # one key written, the others not
    ("meta/episodes", "__setitem__"),  # all data and the record written, no commit
    ("meta/episode_ends", "resize"),  # commit array grown, its value not yet written
]


@pytest.mark.parametrize(("array", "method"), KILL_POINTS)
def test_sigkill_inside_append_loses_only_that_episode(
    tmp_path: Path, schema: StoreSchema, array: str, method: str
) -> None:
    path = tmp_path / "s.zarr"
    with EpisodeStore.create(path, schema) as store:
        for i in range(3):
            store.append_episode(synthetic_episode(i))
    child = _python(f"""
        import os, signal
        from traj_toy_env import synthetic_episode
        from uio2_robot.trajectories import EpisodeStore

        class DieAfter:
            def __init__(self, arr): self.arr = arr
            def __getattr__(self, name): return getattr(self.arr, name)
            def __getitem__(self, k): return self.arr[k]
            def resize(self, shape):
                self.arr.resize(shape)
                if {method!r} == "resize": os.kill(os.getpid(), signal.SIGKILL)
            def __setitem__(self, k, v):
                self.arr[k] = v
                if {method!r} == "__setitem__": os.kill(os.getpid(), signal.SIGKILL)

        store = EpisodeStore.open({str(path)!r}, mode="a")
        store._arrays[{array!r}] = DieAfter(store._arrays[{array!r}])
        store.append_episode(synthetic_episode(3))
        print("not killed")
    """)
    out, err = child.communicate(timeout=120)
    assert child.returncode == -signal.SIGKILL, (out, err)

    reader = EpisodeStore.open(path)
    assert reader.n_episodes == 3 and reader.validate() == []
    with EpisodeStore.open(path, mode="a") as store:  # the lock died with the writer
        assert store.recovered  # something was left behind and removed
        store.append_episode(synthetic_episode(3))
    store = EpisodeStore.open(path)
    assert store.validate(deep=True) == []
    for i in range(4):
        assert_episode_equal(store.episode(i), synthetic_episode(i))


def _wait_for_episodes(path: Path, n: int, child: subprocess.Popen, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert child.poll() is None, child.communicate()
        try:
            count = EpisodeStore.open(path).n_episodes
        except StoreError:  # the child is still creating the store
            count = 0
        if count >= n:
            return count
        time.sleep(0.01)
    raise TimeoutError(f"collector did not commit {n} episodes in {timeout} s")


@pytest.mark.parametrize("delay", [0.0, 0.013])
def test_collector_killed_mid_run_then_resumed(tmp_path: Path, delay: float) -> None:
    path = tmp_path / "c.zarr"
    toy = "make_env_fn=make_toy_env, make_policy_fn=make_toy_policy, progress=False"
    child = _python(f"""
        from traj_toy_env import make_toy_env, make_toy_policy
        from uio2_robot.trajectories import collect
        collect(["pick"], ["L1"], 100000, workers=0, out={str(path)!r}, image_size=48, {toy})
    """)
    try:
        _wait_for_episodes(path, 4, child)
        time.sleep(delay)
    finally:
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=60)
    store = EpisodeStore.open(path)
    assert store.validate(deep=True) == []
    n = store.n_episodes
    assert n >= 4
    # Every stored episode is the complete episode of its seed: replay the toy env to check.
    env = ToyTabletopEnv(image_size=48)
    for i in range(n):
        ep = store.episode(i)
        obs, _ = env.reset(seed=ep.seed)
        assert ep.length == env.horizon
        np.testing.assert_array_equal(ep.steps["front"][0], obs["front"])
    summary = collect(
        ["pick"],
        ["L1"],
        n + 2,
        workers=0,
        out=path,
        image_size=48,
        make_env_fn=make_toy_env,
        make_policy_fn=make_toy_policy,
        progress=False,
    )
    assert (summary["skipped"], summary["stored"]) == (n, 2)
    assert EpisodeStore.open(path).validate() == []


def test_reader_polling_a_writer_sees_only_complete_episodes(
    tmp_path: Path, schema: StoreSchema
) -> None:
    path = tmp_path / "live.zarr"
    big = StoreSchema.from_episode(
        synthetic_episode(0, image=64), action_low=schema.action_low, action_high=schema.action_high
    )
    EpisodeStore.create(path, big).close()
    n_total = 40
    child = _python(f"""
        from traj_toy_env import synthetic_episode
        from uio2_robot.trajectories import EpisodeStore
        with EpisodeStore.open({str(path)!r}, mode="a") as store:
            for i in range({n_total}):
                store.append_episode(synthetic_episode(i, image=64))
    """)
    polled, checked, fresh_opens = 0, 0, 0
    reader = EpisodeStore.open(path)
    while True:
        running = child.poll() is None
        # Alternate between refreshing a long-lived reader and opening a new one.
        if polled % 2:
            reader = EpisodeStore.open(path)
            fresh_opens += 1
        else:
            reader.refresh()
        polled += 1
        assert reader.n_frames == sum(1 + i % 5 for i in range(reader.n_episodes))
        for i in range(checked, reader.n_episodes):
            assert_episode_equal(reader.episode(i), synthetic_episode(i, image=64))
        checked = reader.n_episodes
        if not running:
            break
    assert child.returncode == 0, child.communicate()
    assert checked == n_total and polled > 5 and fresh_opens > 2
