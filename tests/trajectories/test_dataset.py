"""WindowDataset: windows and masks at episode edges, splits, mixing, DataLoader workers."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader
from traj_toy_env import synthetic_episode

from uio2_robot.trajectories import EpisodeStore, StoreError, StoreSchema, WindowDataset, collate


def _store(path: Path, schema: StoreSchema, indices: range) -> Path:
    with EpisodeStore.open_or_create(path, schema) as store:
        for i in indices:
            store.append_episode(synthetic_episode(i))
    return path


def test_every_window_matches_the_episode_with_edge_padding(filled_store: Path) -> None:
    ds = WindowDataset([filled_store], n_obs_history=3, action_chunk=4, split="all")
    assert len(ds) == sum(1 + i % 5 for i in range(12))
    seen = set()
    for idx in range(len(ds)):
        s = ds[idx]
        m = s["meta"]
        ep, t = synthetic_episode(m["seed"]), m["frame"]
        seen.add((m["episode"], t))
        hist = np.arange(t - 2, t + 1)
        assert s["obs_mask"].tolist() == (hist >= 0).tolist()
        for key in ("front", "proprio"):
            assert (
                s[key].shape == (3, *ep.steps[key].shape[1:])
                and s[key].dtype == ep.steps[key].dtype
            )
            np.testing.assert_array_equal(s[key], ep.steps[key][np.maximum(hist, 0)])
        chunk = np.arange(t, t + 4)
        assert s["action_mask"].tolist() == (chunk < ep.length).tolist()
        np.testing.assert_array_equal(
            s["action"], ep.steps["action"][np.minimum(chunk, ep.length - 1)]
        )
        assert s["prompt"][0] == ep.prompt[0] and s["prompt"][1].tobytes() == ep.prompt[1].tobytes()
        assert (m["task"], m["success"], m["length"]) == (ep.task, ep.success, ep.length)
    assert len(seen) == len(ds)  # every frame of every episode exactly once
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_split_is_disjoint_deterministic_and_stable_under_growth(
    tmp_path: Path, schema: StoreSchema
) -> None:
    path = _store(tmp_path / "s.zarr", schema, range(40))
    train = WindowDataset([path], split="train", val_fraction=0.25)
    val = WindowDataset([path], split="val", val_fraction=0.25)
    tr, va = set(train.episodes()), set(val.episodes())
    assert tr.isdisjoint(va) and tr | va == set(range(40)) and 3 <= len(va) <= 20
    assert len(train) + len(val) == EpisodeStore.open(path).n_frames
    train_frames = {(train[i]["meta"]["episode"]) for i in range(len(train))}
    assert train_frames == tr  # no frame of a val episode is a training sample
    assert set(WindowDataset([path], split="val", val_fraction=0.25).episodes()) == va
    assert set(WindowDataset([path], split="val", val_fraction=0.25, split_seed=1).episodes()) != va
    _store(path, schema, range(40, 60))  # the store grows: old episodes keep their side
    grown = set(WindowDataset([path], split="val", val_fraction=0.25).episodes())
    assert {e for e in grown if e < 40} == va
    tiny = _store(tmp_path / "tiny.zarr", schema, range(2))
    assert len(WindowDataset([tiny], split="val", val_fraction=0.01).episodes()) == 1
    with pytest.raises(StoreError, match="'val' split .* is empty"):
        WindowDataset([tiny], split="val", val_fraction=0.0)


def test_mixing_weights(tmp_path: Path, schema: StoreSchema) -> None:
    a = _store(tmp_path / "a.zarr", schema, range(0, 10))  # 30 frames
    b = _store(tmp_path / "b.zarr", schema, range(10, 40))  # 90 frames
    ds = WindowDataset([a, b], weights=[3, 1], split="all")
    draws = np.array(list(ds.sampler(num_samples=8000, seed=0)))
    from_a = np.mean(draws < ds.store_offsets[1])
    assert from_a == pytest.approx(0.75, abs=0.02)
    assert list(ds.sampler(100, seed=5)) == list(ds.sampler(100, seed=5))
    sampler = ds.sampler(100, seed=5)
    assert list(sampler) != list(sampler)  # a new draw each epoch
    natural = WindowDataset([a, b], split="all")
    assert natural.weights.tolist() == [0.25, 0.75] and ds.weights.tolist() == [0.75, 0.25]
    draws = np.array(list(natural.sampler(8000)))
    assert np.mean(draws < natural.store_offsets[1]) == pytest.approx(30 / 120, abs=0.02)
    assert {ds[int(i)]["meta"]["store"] for i in draws[:50]} == {0, 1}
    with pytest.raises(StoreError, match="one per store"):
        WindowDataset([a, b], weights=[1.0])
    with pytest.raises(StoreError, match="one per store"):
        WindowDataset([a, b], weights=[1.0, -1.0])


def test_task_weights_rebalance_tasks_inside_each_store(
    tmp_path: Path, schema: StoreSchema
) -> None:
    a = _store(tmp_path / "a.zarr", schema, range(0, 10))  # tasks "a" and "b" alternate
    b = _store(tmp_path / "b.zarr", schema, range(10, 40))
    plain = WindowDataset([a, b], weights=[1, 1], split="all")
    ds = WindowDataset([a, b], weights=[1, 1], split="all", task_weights={"b": 3.0})
    tasks = ds.task_of_samples()
    assert [ds[i]["meta"]["task"] for i in range(len(ds))] == tasks.tolist()
    for data, share_b in ((plain, None), (ds, 3.0)):
        draws = np.array(list(data.sampler(num_samples=20000, seed=1)))
        in_a = draws < data.store_offsets[1]
        assert np.mean(in_a) == pytest.approx(0.5, abs=0.02)  # store shares are kept
        for store_draws, lo, hi in ((draws[in_a], 0, 1), (draws[~in_a], 1, 2)):
            frames = tasks[data.store_offsets[lo] : data.store_offsets[hi]]
            n_a, n_b = np.sum(frames == "a"), np.sum(frames == "b")
            w_b = share_b or 1.0
            expected = w_b * n_b / (w_b * n_b + n_a)
            assert np.mean(tasks[store_draws] == "b") == pytest.approx(expected, abs=0.025)
    # the training loop's batches draw the same way, deterministically per (seed, step)
    rng = np.random.default_rng([0, 7])
    assert ds.draw(rng, 5).tolist() == ds.draw(np.random.default_rng([0, 7]), 5).tolist()
    only_a = WindowDataset([a], split="all", task_weights={"b": 0.0})
    assert set(only_a.task_of_samples()[only_a.draw(np.random.default_rng(0), 500)]) == {"a"}
    with pytest.raises(StoreError, match=r"tasks the 'all' split holds: \['a', 'b'\]"):
        WindowDataset([a], split="all", task_weights={"rearange": 2.0})
    with pytest.raises(StoreError, match="non-negative"):
        WindowDataset([a], split="all", task_weights={"a": -1.0})
    with pytest.raises(StoreError, match="nothing to sample"):
        WindowDataset([a], split="all", task_weights={"a": 0.0, "b": 0.0})


def test_mixed_stores_must_agree(tmp_path: Path, schema: StoreSchema, filled_store: Path) -> None:
    other = synthetic_episode(0, image=8)
    odd = tmp_path / "odd.zarr"
    with EpisodeStore.create(odd, StoreSchema.from_episode(other)) as store:
        store.append_episode(other)
    with pytest.raises(StoreError, match="'front' is .* need the same shapes"):
        WindowDataset([filled_store, odd], split="all")
    with pytest.raises(StoreError, match="has no key 'depth'"):
        WindowDataset([filled_store], keys=["depth"])
    with pytest.raises(StoreError, match="split is 'test'"):
        WindowDataset([filled_store], split="test")


def test_dataloader_workers_and_collate(filled_store: Path) -> None:
    ds = WindowDataset(
        [filled_store],
        n_obs_history=2,
        action_chunk=3,
        split="all",
        keys=["front"],
        transform=_scale_front,
    )
    loader = DataLoader(
        ds, batch_size=8, num_workers=2, collate_fn=collate, multiprocessing_context="fork"
    )
    batches = list(loader)
    assert sum(len(b["prompt"]) for b in batches) == len(ds)
    b = batches[0]
    assert set(b) == {"front", "action", "obs_mask", "action_mask", "prompt", "meta"}
    assert b["front"].shape == (8, 2, 16, 16, 3) and b["front"].dtype == torch.float32
    assert b["action"].shape == (8, 3, 6) and b["action_mask"].dtype == torch.bool
    assert isinstance(b["prompt"][0], list) and isinstance(b["meta"][0], dict)
    direct = collate([ds[i] for i in range(8)])
    for key in ("front", "action", "obs_mask", "action_mask"):
        assert torch.equal(b[key], direct[key])
    assert [m["frame"] for m in b["meta"]] == [m["frame"] for m in direct["meta"]]


def _scale_front(sample: dict) -> dict:
    sample["front"] = sample["front"].astype(np.float32) / 255.0
    return sample


def test_pickles_without_open_handles(filled_store: Path) -> None:
    """What spawn-context DataLoader workers receive: no zarr handles, reopened on first use."""
    ds = WindowDataset([filled_store], split="all")
    first = ds[3]
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._local == {}
    again = clone[3]
    np.testing.assert_array_equal(again["front"], first["front"])
    assert again["meta"] == first["meta"]
