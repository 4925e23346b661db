"""Fixtures of the training tests: a tiny synthetic trajectory store whose action is learnable."""

from __future__ import annotations

import numpy as np
import pytest

from uio2_robot.envs.spaces import PRIMITIVE_ACTION_NAMES, PRIMITIVE_HIGH, PRIMITIVE_LOW
from uio2_robot.trajectories.episode import Episode
from uio2_robot.trajectories.schema import StoreSchema
from uio2_robot.trajectories.store import EpisodeStore


def _episode(rng: np.random.Generator, seed: int, task: str = "synthetic") -> Episode:
    """A one-step episode whose action is a function of the image colour (so it is learnable)."""
    colour = int(rng.integers(0, 4))
    img = np.zeros((32, 32, 3), np.uint8)
    img[..., colour % 3] = 60 + 60 * colour
    target = PRIMITIVE_LOW + (PRIMITIVE_HIGH - PRIMITIVE_LOW) * (0.2 + 0.2 * colour)
    return Episode(
        steps={
            "front": img[None],
            "top": img[None],
            "proprio": rng.normal(size=(1, 6)).astype(np.float32),
            "action": target[None].astype(np.float32),
        },
        prompt=["go ", img[:8, :8].copy()],
        task=task,
        level="L1",
        seed=seed,
        success=True,
        action_mode="primitive",
    )


def write_store(path, seeds: range, task: str = "synthetic") -> str:
    """A synthetic store at ``path`` with one episode per seed."""
    rng = np.random.default_rng(seeds.start)
    episodes = [_episode(rng, s, task) for s in seeds]
    schema = StoreSchema.from_episode(
        episodes[0], PRIMITIVE_ACTION_NAMES, PRIMITIVE_LOW, PRIMITIVE_HIGH
    )
    store = EpisodeStore.create(path, schema)
    for ep in episodes:
        store.append_episode(ep)
    store.close()
    return str(path)


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    return write_store(tmp_path_factory.mktemp("data") / "synthetic.zarr", range(24))


@pytest.fixture(scope="module")
def make_store(tmp_path_factory):
    """Another synthetic store: ``make_store(seeds, task)``."""

    def make(seeds: range, task: str) -> str:
        return write_store(tmp_path_factory.mktemp("data") / f"{task}.zarr", seeds, task)

    return make
