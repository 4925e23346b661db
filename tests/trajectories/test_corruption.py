"""The store corruption matrix (issue #24): every fault a disk or a person can inflict on a real
zarr store, and what the store does about it.

Each case damages a real store on disk, then checks that (1) validation names the episode, the
key and the chunk, (2) readers (the dataset, ``episode``) refuse with a StoreError instead of a
traceback or silent zeros, (3) ``repair_store`` drops exactly the damaged episodes and keeps
every good one bit for bit, and the original is set aside, not deleted.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import zarr
from traj_toy_env import assert_episode_equal, synthetic_episode

from uio2_robot.trajectories import EpisodeStore, StoreError, StoreSchema, validate_store
from uio2_robot.trajectories.integrity import (
    CHECKSUM_FIELD,
    INTEGRITY_ATTR,
    chunk_file,
    require_sound,
    verify_store,
)
from uio2_robot.trajectories.repair import repair_store

N_EPISODES = 12


@pytest.fixture
def store_path(tmp_path: Path, schema: StoreSchema) -> Path:
    """12 synthetic episodes (lengths 1..5, 36 frames) in 4-frame chunks: episodes share chunks."""
    path = tmp_path / "s.zarr"
    with EpisodeStore.create(path, schema, chunk_frames=4) as store:
        for i in range(N_EPISODES):
            store.append_episode(synthetic_episode(i))
    return path


def _episodes_in_chunk(path: Path, key: str, chunk: int) -> set[int]:
    store = EpisodeStore.open(path)
    cf = store.raw_array(f"data/{key}").chunks[0]
    lo, hi = chunk * cf, (chunk + 1) * cf
    return {i for i in range(store.n_episodes) if _overlap(store.episode_bounds(i), lo, hi)}


def _overlap(bounds: tuple[int, int], lo: int, hi: int) -> bool:
    return bounds[0] < hi and bounds[1] > lo


def _check_repair(path: Path, damaged: set[int]) -> None:
    """repair drops exactly ``damaged``, keeps the rest bit for bit, sets the original aside."""
    result = repair_store(path)
    assert result["repaired"] is True
    assert set(result["dropped"]) == damaged
    repaired = EpisodeStore.open(path)
    assert repaired.validate(deep=True) == []
    good = [i for i in range(N_EPISODES) if i not in damaged]
    assert repaired.n_episodes == len(good)
    for j, i in enumerate(good):
        assert_episode_equal(repaired.episode(j), synthetic_episode(i))
        assert repaired.record(j)[CHECKSUM_FIELD] == _fresh_checksums(i)
    backup = Path(result["damaged_original"])
    assert backup.is_dir() and (backup / "zarr.json").is_file()  # nothing deleted


def _fresh_checksums(i: int) -> dict[str, str]:
    """The checksums a clean store records for synthetic episode ``i``."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        s = EpisodeStore.create(
            Path(d) / "x",
            StoreSchema.from_episode(
                synthetic_episode(0), action_low=[-1.0] * 6, action_high=[1.0] * 6
            ),
        )
        s.append_episode(synthetic_episode(i))
        return s.record(0)[CHECKSUM_FIELD]


def test_clean_store_verifies(store_path: Path) -> None:
    store = EpisodeStore.open(store_path)
    report = verify_store(store, deep=True)
    assert report.ok and report.checksummed == N_EPISODES and report.notes == []
    assert store.raw_group("meta").attrs[INTEGRITY_ATTR]["every_chunk_written"] is True
    store.close()
    with EpisodeStore.open(store_path, mode="a") as st:  # stats() rewrites meta attrs
        st.stats()
    assert EpisodeStore.open(store_path).raw_group("meta").attrs.get(INTEGRITY_ATTR)


def test_all_zero_chunks_are_written(tmp_path: Path, schema: StoreSchema) -> None:
    """zarr skips all-zero chunks by default; a store must not, or a deleted chunk is invisible."""
    ep = synthetic_episode(4)
    ep.steps["front"][:] = 0  # black frames: exactly what zarr would leave out
    with EpisodeStore.create(tmp_path / "z.zarr", schema, chunk_frames=4) as store:
        store.append_episode(ep)
        assert chunk_file(store, "data/front", 0).is_file()


def test_missing_chunk_is_named_and_refused(store_path: Path) -> None:
    store = EpisodeStore.open(store_path)
    victim = chunk_file(store, "data/front", 2)
    store.close()
    victim.unlink()
    damaged = _episodes_in_chunk(store_path, "front", 2)
    for deep in (False, True):
        problems = validate_store(store_path, deep=deep)
        assert problems, f"deep={deep}: a deleted chunk must not validate"
        assert all("data/front chunk 2" in p and "missing" in p for p in problems)
        assert {int(p.split()[1].rstrip(":")) for p in problems} == damaged
    from uio2_robot.trajectories.dataset import WindowDataset

    with pytest.raises(StoreError, match=r"data/front chunk 2 .*missing.*data repair"):
        WindowDataset([store_path])
    _check_repair(store_path, damaged)


@pytest.mark.parametrize("keep", [0.5, 10])
def test_truncated_chunk_is_named_not_a_traceback(store_path: Path, keep: float) -> None:
    """Cut to half (c-blosc decodes that silently: the header size check finds it) or to 10
    bytes (the codec raises: readers turn that into a StoreError naming frames and chunks)."""
    store = EpisodeStore.open(store_path)
    victim = chunk_file(store, "data/front", 3)
    store.close()
    size = victim.stat().st_size
    victim.write_bytes(victim.read_bytes()[: int(size * keep) if keep < 1 else int(keep)])
    damaged = _episodes_in_chunk(store_path, "front", 3)
    for deep in (False, True):
        problems = validate_store(store_path, deep=deep)
        assert problems and all("data/front chunk 3" in p and "truncated" in p for p in problems)
        assert {int(p.split()[1].rstrip(":")) for p in problems} == damaged
    store = EpisodeStore.open(store_path)
    with pytest.raises(StoreError, match=r"damaged episode"):
        require_sound(store, deep=False)
    if keep == 10:
        with pytest.raises(StoreError, match=r"data/front frames .* unreadable.*data repair"):
            store.episode(min(damaged))
    from uio2_robot.trajectories.dataset import WindowDataset

    with pytest.raises(StoreError, match=r"data/front chunk 3 .*truncated"):
        WindowDataset([store_path])
    _check_repair(store_path, damaged)


def test_silent_bit_rot_fails_the_checksum(store_path: Path) -> None:
    """A chunk that still decodes but holds other values: only a checksum can tell."""
    arr = zarr.open_array(store_path / "data" / "proprio", mode="r+")
    store = EpisodeStore.open(store_path)
    start, end = store.episode_bounds(7)
    arr[start:end] = arr[start:end] + 1.0
    assert validate_store(store_path, deep=False) == []  # coverage alone cannot see it
    problems = validate_store(store_path, deep=True)
    assert problems == [problems[0]] and "episode 7: data/proprio" in problems[0]
    assert "differs from its checksum" in problems[0]
    _check_repair(store_path, {7})


def test_truncated_prompt_bytes_chunk(store_path: Path) -> None:
    store = EpisodeStore.open(store_path)
    victim = chunk_file(store, "meta/prompt_images", 0)
    store.close()
    victim.write_bytes(victim.read_bytes()[:10])
    problems = validate_store(store_path, deep=True)
    assert problems and all("meta/prompt_images chunk 0" in p for p in problems)
    assert all("truncated" in p for p in problems)


@pytest.mark.parametrize("node", ["", "data/front", "meta/episode_ends", "meta"])
def test_truncated_zarr_json_is_a_named_error(store_path: Path, node: str) -> None:
    meta = store_path / node / "zarr.json"
    meta.write_bytes(meta.read_bytes()[:40])
    with pytest.raises(StoreError) as info:
        EpisodeStore.open(store_path).validate(deep=True)
    assert "zarr" in str(info.value) or "unreadable" in str(info.value)
    problems = validate_store(store_path, deep=True)
    assert len(problems) == 1 and "Traceback" not in problems[0]


@pytest.mark.parametrize("where", [-1, 5])
def test_garbage_episode_ends_rejected_at_once(store_path: Path, where: int) -> None:
    ends = zarr.open_array(store_path / "meta" / "episode_ends", mode="r+")
    good = len(ends[:]) + where if where < 0 else where
    ends[good] = 10**12
    t0 = time.perf_counter()
    problems = validate_store(store_path, deep=True)
    assert time.perf_counter() - t0 < 5.0
    assert len(problems) == 1 and f"episode_ends[{good}] = 1000000000000" in problems[0]
    with pytest.raises(StoreError, match="commit record is corrupt"):
        EpisodeStore.open(store_path)
    result = repair_store(store_path)
    assert result["dropped_past_commit"] == 1  # the later ones hide behind the garbage entry
    assert EpisodeStore.open(store_path).n_episodes == good
    for i in range(good):
        assert_episode_equal(EpisodeStore.open(store_path).episode(i), synthetic_episode(i))


def test_deep_validation_is_linear(tmp_path: Path, schema: StoreSchema) -> None:
    """Twice the episodes, about twice the time (never quadratic): 40 vs 80 episodes."""
    times = []
    for n in (40, 80):
        with EpisodeStore.create(tmp_path / f"l{n}.zarr", schema, chunk_frames=4) as store:
            store.append_episodes([synthetic_episode(i) for i in range(n)])
            t0 = time.perf_counter()
            assert verify_store(store, deep=True).ok
            times.append(time.perf_counter() - t0)
    assert times[1] < 4 * times[0] + 0.05, times


def test_old_store_without_checksums_still_loads(store_path: Path) -> None:
    """A store written before checksums: loads, verifies what it can, and says what it cannot."""
    records = zarr.open_array(store_path / "meta" / "episodes", mode="r+")
    stripped = []
    for text in records[:]:
        rec = json.loads(str(text))
        rec.pop(CHECKSUM_FIELD)
        stripped.append(json.dumps(rec))
    records[:] = np.array(stripped, dtype=records.dtype)
    group = zarr.open_group(store_path / "meta", mode="r+")
    del group.attrs[INTEGRITY_ATTR]
    assert INTEGRITY_ATTR not in zarr.open_group(store_path / "meta").attrs
    notes: list[str] = []
    assert validate_store(store_path, deep=True, notes=notes) == []
    assert any("before checksums" in n for n in notes)
    assert_episode_equal(EpisodeStore.open(store_path).episode(3), synthetic_episode(3))
    # a truncated chunk is still found in an old store: it cannot be read
    store = EpisodeStore.open(store_path)
    victim = chunk_file(store, "data/action", 0)
    victim.write_bytes(victim.read_bytes()[:12])
    assert any("unreadable" in p for p in validate_store(store_path, deep=True))


def test_repair_then_rerun_collect_recollects_the_dropped(tmp_path: Path) -> None:
    """Re-collection is the collector's resume: after repair it collects just the dropped seeds,
    and their content is what it was (collection is deterministic per seed)."""
    from test_collect import TOY

    from uio2_robot.trajectories import collect

    out = tmp_path / "c.zarr"
    args = (["pick", "push"], ["L1"], 4)
    assert collect(*args, workers=0, out=out, seed=100_000, **TOY)["stored"] == 8
    before = EpisodeStore.open(out)
    originals = [before.episode(i) for i in range(8)]
    victim = chunk_file(before, "data/front", 1)
    before.close()
    victim.unlink()
    dropped = repair_store(out)["dropped"]
    assert dropped and EpisodeStore.open(out).n_episodes == 8 - len(dropped)
    again = collect(*args, workers=0, out=out, seed=100_000, **TOY)
    assert (again["stored"], again["skipped"]) == (len(dropped), 8 - len(dropped))
    store = EpisodeStore.open(out)
    assert store.validate(deep=True) == []
    by_seed = {store.episode_meta(i)["seed"]: store.episode(i) for i in range(8)}
    for ep in originals:
        assert_episode_equal(by_seed[ep.seed], ep)
