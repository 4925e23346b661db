"""store_info, validate_store, merge_stores, compute_stats and episode_video."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr
from traj_toy_env import assert_episode_equal, synthetic_episode

from uio2_robot.trajectories import (
    EpisodeStore,
    StoreError,
    StoreSchema,
    compute_stats,
    episode_video,
    merge_stores,
    store_info,
    validate_store,
)
from uio2_robot.trajectories.mp4 import Mp4Reader
from uio2_robot.trajectories.stats import compute_norm_stats


def test_store_info(filled_store: Path) -> None:
    info = store_info(filled_store)
    assert info["episodes"] == 12 and info["frames"] == sum(1 + i % 5 for i in range(12))
    assert info["per_task"]["a"]["L1"] == {
        "episodes": 6,
        "successes": 6,
        "frames": sum(1 + i % 5 for i in range(0, 12, 2)),
        "success_rate": 1.0,
    }
    assert info["per_task"]["b"]["L1"]["success_rate"] == 0.0 and info["success_rate"] == 0.5
    assert info["keys"]["front"] == {"shape": [16, 16, 3], "dtype": "uint8"}
    assert info["size_bytes"] > 12 * 16 * 16 * 3 // 4  # random pixels barely compress


def test_validate_store_reports_instead_of_raising(tmp_path: Path, filled_store: Path) -> None:
    assert validate_store(filled_store, deep=True) == []
    (tmp_path / "junk").mkdir()
    assert "not a zarr store" in validate_store(tmp_path / "junk")[0]
    zarr.open_group(filled_store, mode="r+")["data/action"][0] = np.nan
    assert validate_store(filled_store) == ["data/action contains NaN or Inf"]


def test_merge_stores(tmp_path: Path, schema: StoreSchema, filled_store: Path) -> None:
    other = tmp_path / "other.zarr"
    with EpisodeStore.create(other, schema) as store:
        for i in range(12, 15):
            store.append_episode(synthetic_episode(i))
    summary = merge_stores([filled_store, other], tmp_path / "merged.zarr")
    merged = EpisodeStore.open(tmp_path / "merged.zarr")
    assert summary["episodes"] == merged.n_episodes == 15 and merged.validate() == []
    for i in range(15):
        assert_episode_equal(merged.episode(i), synthetic_episode(i))
    pooled = compute_stats([filled_store, other])
    assert pooled["action"].mean.tolist() == merged.stats()["action"].mean.tolist()
    direct = compute_norm_stats(merged.read_key("proprio"))
    np.testing.assert_allclose(pooled["proprio"].p99, direct.p99)
    with pytest.raises(StoreError, match="is one of the inputs"):
        merge_stores([filled_store], filled_store)
    odd = tmp_path / "odd.zarr"
    ep = synthetic_episode(0, image=8)
    with EpisodeStore.create(odd, StoreSchema.from_episode(ep)) as store:
        store.append_episode(ep)
    with pytest.raises(
        StoreError,
        match=r"schemas differ: front: .*\(16, 16, 3\).* vs .*\(8, 8, 3\).*; action bounds",
    ):
        merge_stores([filled_store, odd], tmp_path / "bad.zarr")
    assert not (tmp_path / "bad.zarr").exists()


def test_episode_video(tmp_path: Path, filled_store: Path) -> None:
    out = tmp_path / "ep.mp4"
    result = episode_video(filled_store, 4, out, fps=5)
    assert result["frames"] == 5 and out.stat().st_size > 0
    with Mp4Reader(out) as reader:  # PyAV: what a browser gets is H.264
        assert reader.codec == "h264"
        frames = [frame for _, frame in reader]
    assert len(frames) == 5
    assert frames[0].shape == (result["height"], result["width"], 3) and result["width"] >= 256
    # The view changes every step (random pixels), the prompt panel on top does not.
    first, last = frames[0].astype(int), frames[4].astype(int)
    assert np.abs(first[:20] - last[:20]).mean() < 2  # prompt text row
    middle = result["height"] // 2
    assert np.abs(first[middle] - last[middle]).mean() > 10  # camera view row
    with pytest.raises(StoreError, match="image keys"):
        episode_video(filled_store, 0, out, keys=["proprio"])
    with pytest.raises(StoreError, match="does not exist"):
        episode_video(filled_store, 99, out)
