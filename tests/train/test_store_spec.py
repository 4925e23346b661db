"""StoreSpec: cameras, proprio and the action space come from a store's schema, and actions the
bins cannot represent are counted (train warns with the counts)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from uio2_robot.tokenize.actions import ActionTokenizer
from uio2_robot.tokenize.vocab import Vocabulary
from uio2_robot.train.store_spec import clipped_actions, store_spec, warn_clipped
from uio2_robot.trajectories import Episode, EpisodeStore, StoreSchema


def make_store(
    path: Path,
    obs: dict[str, tuple[tuple[int, ...], str]],
    actions: np.ndarray,
    low: list[float],
    high: list[float],
    names: tuple[str, ...] | None = None,
) -> EpisodeStore:
    """A real zarr store holding one episode with the given observation keys and actions."""
    rng = np.random.default_rng(0)
    t = len(actions)
    steps = {
        k: (
            rng.integers(0, 255, (t, *shape)) if dtype == "uint8" else rng.normal(size=(t, *shape))
        ).astype(dtype)
        for k, (shape, dtype) in obs.items()
    }
    episode = Episode(steps={**steps, "action": actions.astype(np.float32)}, task="t", seed=0)
    schema = StoreSchema.from_episode(episode, names, low, high)
    with EpisodeStore.create(path, schema) as store:
        store.append_episode(episode)
    return EpisodeStore.open(path)


def test_a_gymnasium_store_defines_its_own_cameras_proprio_and_actions(tmp_path: Path) -> None:
    actions = np.array([[0.5, -1.0, 1.0, 0.0], [1.5, 0.0, -2.0, 1.0], [0.0, 0.0, 0.0, 0.0]])
    store = make_store(
        tmp_path / "mw.zarr",
        {"obs": ((39,), "float64"), "render": ((64, 64, 3), "uint8")},
        actions,
        [-1.0] * 4,
        [1.0] * 4,
    )
    spec = store_spec(store)
    assert spec.cameras == ("render",) and spec.proprio_key == "obs" and spec.proprio_dim == 39
    assert spec.action_names == ("a0", "a1", "a2", "a3") and spec.suite_mode is None
    assert spec.action_low == (-1.0,) * 4 and spec.action_high == (1.0,) * 4
    tok = ActionTokenizer.uniform(
        spec.action_names, spec.action_low, spec.action_high, Vocabulary(256)
    )
    # 1.5 and -2.0 are outside [-1, 1]; the bounds themselves are representable
    assert clipped_actions([store], tok) == (1, 3, {"a0": 1, "a1": 0, "a2": 1, "a3": 0})
    with pytest.warns(UserWarning, match=r"1/3 frames \(33.3%\).*a0 1/3, a2 1/3"):
        assert warn_clipped([store], tok) == 1
    with pytest.raises(ValueError, match="are not RGB"):
        store_spec(store, cameras=["obs"])
    with pytest.raises(ValueError, match="proprio_key 'render' is not a 1-D"):
        store_spec(store, proprio="render")


def test_suite_stores_keep_the_suite_cameras_and_mode(tmp_path: Path) -> None:
    names = ("dx", "dy", "dz", "dyaw", "tool")
    store = make_store(
        tmp_path / "suite.zarr",
        {
            "top": ((8, 8, 3), "uint8"),
            "front": ((8, 8, 3), "uint8"),
            "proprio": ((6,), "float32"),
            "extra": ((2,), "float32"),
        },
        np.zeros((2, 5)),
        [-1.0] * 5,
        [1.0] * 5,
        names,
    )
    spec = store_spec(store)
    assert spec.cameras == ("front", "top") and spec.proprio_key == "proprio"
    assert spec.suite_mode == "delta" and spec.proprio_dim == 6
    assert store_spec(store, proprio="extra").proprio_dim == 2


def test_ambiguous_proprio_unbounded_actions_and_no_camera(tmp_path: Path) -> None:
    store = make_store(
        tmp_path / "two.zarr",
        {"a": ((3,), "float32"), "b": ((2,), "float32"), "cam": ((4, 4, 3), "uint8")},
        np.array([[0.0], [4.0]]),
        [-np.inf],
        [np.inf],
    )
    with pytest.raises(ValueError, match=r"2 1-D observation keys \['a', 'b'\].*proprio_key="):
        store_spec(store)
    with pytest.warns(UserWarning, match="no finite bounds"):
        spec = store_spec(store, proprio="b")
    assert (spec.action_low, spec.action_high) == ((0.0,), (4.0,))  # the data's range
    blind = make_store(
        tmp_path / "blind.zarr", {"obs": ((3,), "float32")}, np.zeros((2, 1)), [-1.0], [1.0]
    )
    with pytest.raises(ValueError, match="no RGB .* render=True"):
        store_spec(blind)
