"""The episode store: round-trips, windows, statistics, validation and bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import zarr
from traj_toy_env import assert_episode_equal, synthetic_episode

from uio2_robot.trajectories import Episode, EpisodeStore, StoreError, StoreSchema
from uio2_robot.trajectories.schema import ROOT_ATTR, SCHEMA_VERSION


def test_round_trip_every_field(tmp_path: Path, schema: StoreSchema) -> None:
    ep = synthetic_episode(3)
    # Any numeric prompt image dtype, odd shapes, unicode and lone text must come back bit for bit.
    ep.prompt = [
        "Ünïcode ✓ \n tab\t",
        np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 7,
        ep.prompt[1],
        "",
        np.zeros((0, 3, 3), np.uint8),
    ]
    ep.control_hz, ep.extra = 12.5, {"operator": "ann", "nested": {"a": [1, 2]}}
    with EpisodeStore.create(tmp_path / "s.zarr", schema) as store:
        store.append_episode(synthetic_episode(0))
        assert store.append_episode(ep) == 1
    store = EpisodeStore.open(tmp_path / "s.zarr")
    assert store.n_episodes == 2 and store.n_frames == 1 + 4
    assert_episode_equal(store.episode(1), ep)
    assert_episode_equal(store.episode(-2), synthetic_episode(0))
    assert store.episode_meta(1) == {
        "task": "b",
        "level": "L1",
        "seed": 3,
        "success": False,
        "action_mode": "primitive",
        "control_hz": 12.5,
        "extra": {"operator": "ann", "nested": {"a": [1, 2]}},
        "length": 4,
    }
    assert store.schema == schema
    assert store.schema.action_low == (-1.0,) * 6


def test_layout_is_documented_zarr(filled_store: Path) -> None:
    root = zarr.open_group(filled_store, mode="r")
    attrs = root.attrs[ROOT_ATTR]
    assert attrs["schema_version"] == SCHEMA_VERSION
    assert attrs["action_space"]["names"] == [f"a{i}" for i in range(6)]
    front = root["data/front"]
    assert front.shape == (sum(1 + i % 5 for i in range(12)), 16, 16, 3)
    assert front.chunks[0] == 16  # random windows touch one or two chunks
    ends = root["meta/episode_ends"][:]
    assert ends.tolist() == np.cumsum([1 + i % 5 for i in range(12)]).tolist()
    assert json.loads(str(root["meta/episodes"][0]))["task"] == "a"


def test_get_window(filled_store: Path) -> None:
    store = EpisodeStore.open(filled_store)
    ep = synthetic_episode(4)  # 5 steps
    w = store.get_window(4, 2, 3, ["front", "action"])
    assert set(w) == {"front", "action"}
    np.testing.assert_array_equal(w["front"], ep.steps["front"][2:5])
    np.testing.assert_array_equal(w["action"], ep.steps["action"][2:5])
    for start, length in [(3, 3), (-1, 2), (0, 0)]:
        with pytest.raises(StoreError, match="outside episode 4"):
            store.get_window(4, start, length)
    with pytest.raises(StoreError, match="unknown data keys"):
        store.get_window(4, 0, 1, ["depth"])
    with pytest.raises(StoreError, match="does not exist"):
        store.episode(12)


def test_stats_cached_and_recomputed_after_append(filled_store: Path) -> None:
    with EpisodeStore.open(filled_store, mode="a") as store:
        stats = store.stats()
        assert set(stats) == {"proprio", "action"}
        act = store.read_key("action").astype(np.float64)
        np.testing.assert_allclose(stats["action"].mean, act.mean(0))
        np.testing.assert_allclose(stats["action"].std, act.std(0))
        np.testing.assert_allclose(stats["action"].p99, np.percentile(act, 99, axis=0))
        np.testing.assert_allclose(stats["action"].p01, np.percentile(act, 1, axis=0))
        assert stats["action"].min.tolist() == act.min(0).tolist()
        assert stats["action"].count == store.n_frames
        cached = zarr.open_group(filled_store, mode="r")["meta"].attrs["stats"]
        assert cached["n_frames"] == store.n_frames
        big = synthetic_episode(20)
        big.steps["action"][:] = 0.9  # moves max and mean
        store.append_episode(big)
        after = store.stats()
        assert after["action"].count == store.n_frames
        assert after["action"].max.max() == pytest.approx(0.9)
    # A reader reuses the saved numbers rather than recomputing.
    reader = EpisodeStore.open(filled_store)
    assert reader.stats()["action"].mean.tolist() == after["action"].mean.tolist()
    with pytest.raises(StoreError, match="no statistics for key 'front'"):
        reader.stats(["front"])


def test_validate_clean_and_deep(filled_store: Path) -> None:
    assert EpisodeStore.open(filled_store).validate(deep=True) == []


def test_validate_finds_corruption(filled_store: Path) -> None:
    chunk = filled_store / "data" / "front" / "c" / "1" / "0" / "0" / "0"
    chunk.write_bytes(b"garbage" * 10)
    problems = EpisodeStore.open(filled_store).validate(deep=True)
    assert any("data/front" in p and "unreadable" in p for p in problems)
    root = zarr.open_group(filled_store, mode="r+")
    root["meta/episode_ends"][5] = 3  # no longer increasing: episodes after 4 vanish
    store = EpisodeStore.open(filled_store)
    assert store.n_episodes == 5
    assert any("strictly increasing" in p for p in store.validate())


def test_foreign_and_corrupt_folders(tmp_path: Path, schema: StoreSchema) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        EpisodeStore.open(tmp_path / "missing.zarr")
    (tmp_path / "random").mkdir()
    (tmp_path / "random" / "notes.txt").write_text("hi")
    with pytest.raises(StoreError, match="not a zarr store"):
        EpisodeStore.open(tmp_path / "random")
    zarr.open_group(tmp_path / "plain.zarr", mode="w", attributes={"other": 1})
    with pytest.raises(StoreError, match="not a trajectory store"):
        EpisodeStore.open(tmp_path / "plain.zarr")
    newer = tmp_path / "newer.zarr"
    EpisodeStore.create(newer, schema).close()
    g = zarr.open_group(newer, mode="r+")
    g.attrs[ROOT_ATTR] = {**g.attrs[ROOT_ATTR], "schema_version": SCHEMA_VERSION + 1}
    with pytest.raises(StoreError, match="newer than this library"):
        EpisodeStore.open(newer)
    with pytest.raises(StoreError, match="mode is 'w'"):
        EpisodeStore.open(newer, mode="w")
    # create never deletes somebody else's folder, even with overwrite
    with pytest.raises(StoreError, match="not empty"):
        EpisodeStore.create(tmp_path / "random", schema)
    with pytest.raises(StoreError, match="refusing to overwrite"):
        EpisodeStore.create(tmp_path / "random", schema, overwrite=True)
    assert (tmp_path / "random" / "notes.txt").exists()
    (tmp_path / "empty").mkdir()  # an existing empty folder is fine; nothing is left beside it
    EpisodeStore.create(tmp_path / "empty", schema).close()
    assert EpisodeStore.open(tmp_path / "empty").n_episodes == 0
    assert not [p for p in tmp_path.iterdir() if "creating" in p.name]


def test_bad_episodes_are_refused_before_writing(filled_store: Path) -> None:
    def variant(**changes: np.ndarray) -> Episode:
        ep = synthetic_episode(1)
        ep.steps.update(changes)
        return ep

    cases = {
        "keys do not match": variant(depth=np.zeros((2, 3), np.float32)),
        "per-step shape": variant(proprio=np.zeros((2, 7), np.float32)),
        "dtype float64": variant(proprio=np.zeros((2, 6), np.float64)),
        "NaN or Inf": variant(action=np.array([[np.nan] * 6, [0] * 6], np.float32)),
        "expected 2 steps": variant(front=np.zeros((3, 16, 16, 3), np.uint8)),
    }
    with EpisodeStore.open(filled_store, mode="a") as store:
        before = store.n_frames
        for message, ep in cases.items():
            with pytest.raises(StoreError, match=message):
                store.append_episode(ep)
        bad_prompt = synthetic_episode(1)
        bad_prompt.prompt = ["ok", {"image": 1}]
        with pytest.raises(StoreError, match="prompt segment 1"):
            store.append_episode(bad_prompt)
        bad_extra = synthetic_episode(1)
        bad_extra.extra = {"x": object()}
        with pytest.raises(StoreError, match="not JSON-serialisable"):
            store.append_episode(bad_extra)
        empty = Episode(steps={k: v[:0] for k, v in synthetic_episode(1).steps.items()})
        with pytest.raises(StoreError, match="0 steps"):
            store.append_episode(empty)
        assert store.n_frames == before and store.validate() == []
    with pytest.raises(StoreError, match="read-only"):
        EpisodeStore.open(filled_store).append_episode(synthetic_episode(1))


def test_batch_append_matches_one_at_a_time(tmp_path: Path, schema: StoreSchema) -> None:
    episodes = [synthetic_episode(i) for i in range(7)]
    with EpisodeStore.create(tmp_path / "one.zarr", schema) as one:
        for ep in episodes:
            one.append_episode(ep)
    with EpisodeStore.create(tmp_path / "batch.zarr", schema) as batch:
        assert batch.append_episodes(episodes[:3]) == [0, 1, 2]
        assert batch.append_episodes([]) == []
        assert batch.append_episodes(episodes[3:]) == [3, 4, 5, 6]
    one, batch = (
        EpisodeStore.open(tmp_path / "one.zarr"),
        EpisodeStore.open(tmp_path / "batch.zarr"),
    )
    assert batch.validate(deep=True) == []
    np.testing.assert_array_equal(batch.episode_ends, one.episode_ends)
    assert batch.all_meta() == one.all_meta()
    for i, ep in enumerate(episodes):
        assert_episode_equal(batch.episode(i), ep)


def test_batch_with_one_bad_episode_writes_nothing(filled_store: Path) -> None:
    bad = synthetic_episode(13)
    bad.steps["proprio"] = bad.steps["proprio"].astype(np.float64)
    with EpisodeStore.open(filled_store, mode="a") as store:
        before = (store.n_episodes, store.n_frames)
        with pytest.raises(StoreError, match="dtype float64"):
            store.append_episodes([synthetic_episode(12), bad])
        assert (store.n_episodes, store.n_frames) == before and store.validate() == []
        store.append_episodes([synthetic_episode(12)])
    assert_episode_equal(EpisodeStore.open(filled_store).episode(12), synthetic_episode(12))


def test_single_writer(filled_store: Path) -> None:
    with EpisodeStore.open(filled_store, mode="a"):
        with pytest.raises(StoreError, match="already open for appending"):
            EpisodeStore.open(filled_store, mode="a")
        EpisodeStore.open(filled_store)  # readers are always allowed
    EpisodeStore.open(filled_store, mode="a").close()  # lock released


def test_open_for_append_truncates_uncommitted_tail(filled_store: Path) -> None:
    # What a writer killed after growing the arrays but before the commit leaves behind.
    root = zarr.open_group(filled_store, mode="r+")
    n_frames = int(root["meta/episode_ends"][-1])
    for key in ("front", "proprio", "action"):
        arr = root[f"data/{key}"]
        arr.resize((n_frames + 7, *arr.shape[1:]))
        arr[n_frames:] = 1
    root["meta/episodes"].resize((13,))
    root["meta/episodes"][12] = "{half"
    root["meta/episode_ends"].resize((13,))  # grown, value not yet written (fill 0)
    (filled_store / "data" / "front" / "zarr.abc.partial").write_bytes(b"x")

    reader = EpisodeStore.open(filled_store)
    assert reader.n_episodes == 12 and reader.validate() == []
    with EpisodeStore.open(filled_store, mode="a") as store:
        assert store.recovered == {"temp_files": 1, "frames": 7, "records": 1, "prompt_bytes": 0}
        assert root["data/front"].shape[0] == n_frames
        store.append_episode(synthetic_episode(12))
    store = EpisodeStore.open(filled_store)
    assert store.validate(deep=True) == []
    assert_episode_equal(store.episode(12), synthetic_episode(12))
    assert_episode_equal(store.episode(11), synthetic_episode(11))


def test_schema_round_trip_with_unbounded_actions() -> None:
    ep = synthetic_episode(0)
    schema = StoreSchema.from_episode(ep, action_low=[-np.inf] * 6, action_high=[np.inf] * 6)
    assert (
        StoreSchema.from_json(json.loads(json.dumps(schema.to_json(), allow_nan=False))) == schema
    )
    with pytest.raises(StoreError, match="action_names has 2 entries, expected 6"):
        StoreSchema.from_episode(ep, action_names=["x", "y"])
