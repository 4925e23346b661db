"""LeRobot v3 datasets in and out, without lerobot: pyarrow for parquet, PyAV for the videos.

``tests/data/lerobot_v3_tiny`` was written by lerobot 0.4.4's own API (AV1 video;
``tests/lerobot_compat/write_with_lerobot.py``), with the arrays it was fed in
``lerobot_v3_tiny.expected.npz``: the import is checked against real lerobot output.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from traj_toy_env import assert_episode_equal

from uio2_robot.cli import main
from uio2_robot.trajectories import Episode, EpisodeStore, StoreSchema
from uio2_robot.trajectories.errors import StoreError
from uio2_robot.trajectories.lerobot_export import export_lerobot
from uio2_robot.trajectories.lerobot_import import import_lerobot
from uio2_robot.trajectories.mp4 import Mp4Reader

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "lerobot_v3_tiny"
EXPECTED = FIXTURE.with_name("lerobot_v3_tiny.expected.npz")


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255**2 / mse)) if mse else float("inf")


def smooth_episode(i: int, length: int, size: int = 32) -> Episode:
    """An episode with every kind of content: camera view (smooth, so video keeps it), proprio,
    action, reward, an interleaved prompt with an image, and metadata."""
    rng = np.random.default_rng(i)
    yy, xx = np.mgrid[0:size, 0:size]
    front = np.stack(
        [
            np.stack([(xx * 6 + 7 * t) % 256, yy * 6, np.full_like(xx, 30 * i)], -1)
            for t in range(length)
        ]
    ).astype(np.uint8)
    return Episode(
        steps={
            "front": front,
            "proprio": rng.normal(size=(length, 6)).astype(np.float32),
            "action": rng.uniform(-1, 1, size=(length, 5)).astype(np.float32),
            "reward": rng.uniform(size=length).astype(np.float32),
        },
        prompt=["Put the", rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), f"into bin {i}"],
        task=f"task_{i % 2}",
        level="L2",
        seed=1000 + i,
        success=i % 2 == 0,
        action_mode="delta",
        control_hz=10.0,
        extra={"policy": "oracle", "i": i},
    )


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "src.zarr"
    episodes = [smooth_episode(i, 4 + 3 * i) for i in range(3)]
    schema = StoreSchema.from_episode(episodes[0], action_low=[-1] * 5, action_high=[1] * 5)
    with EpisodeStore.create(path, schema) as st:
        st.append_episodes(episodes)
    return path


def test_import_of_a_dataset_lerobot_wrote(tmp_path: Path) -> None:
    out = tmp_path / "imported.zarr"
    summary = import_lerobot(FIXTURE, out)
    assert summary["videos"] == {"observation.images.front": "av1"}
    expected = np.load(EXPECTED)
    with EpisodeStore.open(out) as st:
        assert st.n_episodes == 2 and st.episode_ends.tolist() == [6, 15]
        assert st.schema.action_names == ("dx", "dy", "dz")
        assert st.validate(deep=True) == []
        for e, task in enumerate(["pick up the red cube", "push the blue block to the left"]):
            ep = st.episode(e)
            assert ep.task == task and ep.prompt == [task] and ep.control_hz == 10.0
            assert ep.extra["lerobot"] == {"episode_index": e, "robot_type": "toy_arm"}
            for key, name in (("action", "action"), ("proprio", "state"), ("reward", "reward")):
                want = expected[f"{name}_{e}"]
                assert ep.steps[key].dtype == want.dtype
                assert ep.steps[key].tobytes() == want.tobytes(), key  # bit-exact
            assert psnr(ep.steps["front"], expected[f"front_{e}"]) > 28  # AV1, crf 30


@pytest.mark.parametrize("codec", ["h264", "av1"])
def test_store_round_trip(tmp_path: Path, store: Path, codec: str) -> None:
    dataset = tmp_path / "lerobot"
    summary = export_lerobot(store, dataset, codec=codec)
    assert summary["episodes"] == 3 and summary["frames"] == 4 + 7 + 10
    video = dataset / "videos/observation.images.front/chunk-000/file-000.mp4"
    with Mp4Reader(video) as reader:
        assert reader.codec == codec and len(list(reader)) == 21  # all episodes in one file
    back = tmp_path / "back.zarr"
    import_lerobot(dataset, back)
    with EpisodeStore.open(store) as a, EpisodeStore.open(back) as b:
        assert a.schema == b.schema and b.episode_ends.tolist() == a.episode_ends.tolist()
        for e in range(a.n_episodes):
            x, y = a.episode(e), b.episode(e)
            assert psnr(x.steps.pop("front"), y.steps.pop("front")) > 30
            x.steps["front"] = y.steps["front"] = np.zeros(1)
            assert_episode_equal(x, y)  # numbers, prompt (images too) and metadata bit-exact


def test_lerobot_round_trip_keeps_columns_and_tasks(tmp_path: Path) -> None:
    store, again = tmp_path / "s.zarr", tmp_path / "again"
    import_lerobot(FIXTURE, store)
    export_lerobot(store, again)
    for rel in ("data/chunk-000/file-000.parquet",):
        a, b = pq.read_table(FIXTURE / rel), pq.read_table(again / rel)
        for col in a.column_names:
            assert a.column(col).equals(b.column(col)), col
    meta = "meta/episodes/chunk-000/file-000.parquet"
    cols = ["episode_index", "tasks", "length", "dataset_from_index", "dataset_to_index"]
    assert pq.read_table(FIXTURE / meta, columns=cols).equals(
        pq.read_table(again / meta, columns=cols)
    )
    tasks = pq.read_table(again / "meta/tasks.parquet").to_pylist()
    assert [t["__index_level_0__"] for t in tasks] == [
        "pick up the red cube",
        "push the blue block to the left",
    ]
    info = json.loads((again / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["total_frames"] == 15
    assert info["features"]["observation.images.front"]["info"]["video.codec"] == "h264"
    stats = json.loads((again / "meta/stats.json").read_text())
    assert np.array(stats["observation.images.front"]["mean"]).shape == (3, 1, 1)


def _broken_copy(tmp_path: Path) -> Path:
    dst = tmp_path / "broken"
    shutil.copytree(FIXTURE, dst)
    return dst


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size * 2 // 3])


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: (d / "meta/info.json").unlink(), r"info\.json does not exist"),
        (lambda d: (d / "meta/tasks.parquet").unlink(), r"tasks\.parquet does not exist"),
        (lambda d: _truncate(d / "data/chunk-000/file-000.parquet"), "truncated or corrupt"),
        (
            lambda d: _truncate(d / "videos/observation.images.front/chunk-000/file-000.mp4"),
            r"file-000\.mp4",
        ),
        (
            lambda d: (d / "meta/info.json").write_text(
                (d / "meta/info.json")
                .read_text()
                .replace('"dz"', '"dz", "dw"')
                .replace('"shape": [\n                3\n', '"shape": [\n                4\n')
            ),
            r"file-000\.parquet: column 'action' holds 3 values per frame; expected 4 \(shape \[4\]",
        ),
    ],
    ids=["no-info", "no-tasks", "cut-parquet", "cut-video", "wrong-shape"],
)
def test_bad_datasets_are_named_and_leave_no_store(tmp_path: Path, damage, message: str) -> None:
    src = _broken_copy(tmp_path)
    damage(src)
    out = tmp_path / "out.zarr"
    with pytest.raises(StoreError, match=message):
        import_lerobot(src, out)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["broken"]  # no half-built store beside it


def test_export_refuses_what_lerobot_cannot_hold(tmp_path: Path) -> None:
    ep = smooth_episode(0, 3, size=32)
    ep.steps["front"] = ep.steps["front"][:, :31]
    odd = tmp_path / "odd.zarr"
    with EpisodeStore.create(odd, StoreSchema.from_episode(ep)) as st:
        st.append_episode(ep)
    with pytest.raises(StoreError, match=r"even H and W"):
        export_lerobot(odd, tmp_path / "x")
    assert not (tmp_path / "x").exists()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(StoreError, match="not a LeRobot dataset"):
        export_lerobot(odd, tmp_path / "mine", overwrite=True)


def test_cli(tmp_path: Path, store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dataset, back = tmp_path / "ds", tmp_path / "back.zarr"
    assert main(["data", "export-lerobot", str(store), f"out={dataset}", "codec=av1"]) == 0
    assert json.loads(capsys.readouterr().out)["codec"] == "av1"
    assert main(["data", "import-lerobot", str(dataset), f"out={back}"]) == 0
    assert json.loads(capsys.readouterr().out)["episodes"] == 3
    assert main(["data", "import-lerobot", str(dataset), f"out={back}"]) == 2  # exists
    assert "overwrite=true" in capsys.readouterr().err
    assert main(["data", "import-lerobot", str(tmp_path / "nope"), f"out={back}"]) == 2
    assert main(["data", "export-lerobot", str(store), f"out={tmp_path / 'x'}", "codec=mp4v"]) == 2
    assert "expected one of ['av1', 'h264']" in capsys.readouterr().err


def _strip_uio2(dataset: Path) -> None:
    """Make an exported dataset look like any other LeRobot dataset (no uio2_robot entries)."""
    info = json.loads((dataset / "meta/info.json").read_text())
    del info["uio2_robot"]
    (dataset / "meta/info.json").write_text(json.dumps(info))
    path = dataset / "meta/episodes/chunk-000/file-000.parquet"
    table = pq.read_table(path)
    pq.write_table(table.drop_columns(["uio2_robot/record", "uio2_robot/prompt_images"]), path)


def test_several_tasks_in_one_episode(tmp_path: Path) -> None:
    ep = smooth_episode(0, 5)
    ep.extra = {"lerobot": {"frame_tasks": [["reach the cube", 2], ["grasp it", 3]]}}
    store, dataset, back = tmp_path / "s.zarr", tmp_path / "ds", tmp_path / "back.zarr"
    with EpisodeStore.create(store, StoreSchema.from_episode(ep)) as st:
        st.append_episode(ep)
    export_lerobot(store, dataset)
    data = pq.read_table(dataset / "data/chunk-000/file-000.parquet")
    assert data.column("task_index").to_pylist() == [0, 0, 1, 1, 1]
    _strip_uio2(dataset)
    summary = import_lerobot(dataset, back)  # read as a foreign dataset
    assert summary["keys"]["observation.state"] == "proprio"
    with EpisodeStore.open(back) as st:
        got = st.episode(0)
    assert got.prompt == ["reach the cube"] and got.task == "reach the cube"
    assert got.extra["lerobot"]["frame_tasks"] == [["reach the cube", 2], ["grasp it", 3]]
    assert got.steps["action"].tobytes() == ep.steps["action"].tobytes()
    assert got.steps["reward"].shape == (5,)  # next.reward (1,) -> the store's scalar reward


def test_store_without_cameras(tmp_path: Path) -> None:
    ep = smooth_episode(1, 6)
    del ep.steps["front"]
    store, dataset, back = tmp_path / "s.zarr", tmp_path / "ds", tmp_path / "back.zarr"
    with EpisodeStore.create(store, StoreSchema.from_episode(ep)) as st:
        st.append_episode(ep)
    assert export_lerobot(store, dataset)["codec"] is None
    assert not (dataset / "videos").exists()
    import_lerobot(dataset, back)
    with EpisodeStore.open(back) as st:
        assert_episode_equal(st.episode(0), ep)


def test_many_files(tmp_path: Path, store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the size limits the export starts new data and video files; the import follows."""
    from uio2_robot.trajectories import lerobot_v3

    monkeypatch.setattr(lerobot_v3, "DATA_FILE_MB", 0)
    monkeypatch.setattr(lerobot_v3, "VIDEO_FILE_MB", 0)
    dataset, back = tmp_path / "ds", tmp_path / "back.zarr"
    export_lerobot(store, dataset)
    assert len(list((dataset / "data").rglob("*.parquet"))) == 3  # one per episode
    assert len(list((dataset / "videos").rglob("*.mp4"))) >= 2
    import_lerobot(dataset, back)
    with EpisodeStore.open(store) as a, EpisodeStore.open(back) as b:
        assert b.episode_ends.tolist() == a.episode_ends.tolist()
        assert b.read_key("action").tobytes() == a.read_key("action").tobytes()
        assert psnr(a.read_key("front"), b.read_key("front")) > 30
