"""Fixtures of the trajectory tests. This folder goes on sys.path so spawned collector workers
and writer subprocesses can import the toy env by module name."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from traj_toy_env import synthetic_episode  # noqa: E402

from uio2_robot.trajectories import EpisodeStore, StoreSchema  # noqa: E402


@pytest.fixture
def schema() -> StoreSchema:
    return StoreSchema.from_episode(
        synthetic_episode(0), action_low=[-1.0] * 6, action_high=[1.0] * 6
    )


@pytest.fixture
def filled_store(tmp_path: Path, schema: StoreSchema) -> Path:
    """A store with 12 synthetic episodes (lengths 1..5)."""
    path = tmp_path / "filled.zarr"
    with EpisodeStore.create(path, schema) as store:
        for i in range(12):
            store.append_episode(synthetic_episode(i))
    return path
