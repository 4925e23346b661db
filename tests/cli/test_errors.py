"""Issue #24's command-line faults, each through the real console entry point: a message on
stderr and exit status 2 (or 1 for a store that fails validation), never a traceback, and no
recorded data lost."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from uio2_robot.cli import main
from uio2_robot.trajectories import EpisodeStore, StoreSchema
from uio2_robot.trajectories.episode import Episode
from uio2_robot.trajectories.integrity import chunk_file


def _episode(i: int) -> Episode:
    rng = np.random.default_rng(i)
    t = 20
    return Episode(
        steps={
            "top": rng.integers(0, 256, (t, 16, 16, 3), dtype=np.uint8),
            "proprio": rng.normal(size=(t, 6)).astype(np.float32),
            "action": rng.uniform(-0.5, 0.5, size=(t, 5)).astype(np.float32),
        },
        prompt=[f"episode {i}"],
        task="visual_manipulation",
        level="L1",
        seed=i,
        success=True,
        action_mode="delta",
    )


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "s.zarr"
    schema = StoreSchema.from_episode(_episode(0), action_low=[-1.0] * 5, action_high=[1.0] * 5)
    with EpisodeStore.create(path, schema) as st:
        for i in range(6):
            st.append_episode(_episode(i))
    return path


def test_rollout_with_negative_episodes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rollout", "policy=random", "episodes=-3"]) == 2
    err = capsys.readouterr().err
    assert "episodes must be positive, got -3" in err and "Traceback" not in err


def test_manifest_control_hz_names_field_and_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A folder whose manifest says ``control_hz: "fast"``: the metadata reader names field and
    file; `serve` refuses the folder with exit 2 (a real, sealed bundle edited this way is
    refused naming the field: tests/export/test_manifest.py)."""
    from uio2_robot.deploy.metadata import metadata_for

    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "manifest.json").write_text(json.dumps({"control_hz": "fast"}))
    with pytest.raises(ValueError) as info:
        metadata_for("onnx", bundle)
    assert f"{bundle / 'manifest.json'}: field 'control_hz' is 'fast'" in str(info.value)
    assert "expected a number" in str(info.value)
    assert main(["serve", f"bundle={bundle}", "duration_s=0.1"]) == 2
    err = capsys.readouterr().err
    assert str(bundle / "manifest.json") in err and "Traceback" not in err


def test_deleted_chunk_fails_validate_and_train_then_repair_keeps_the_rest(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The issue's first repro: delete one chunk of data/top; validate said ok, train trained."""
    with EpisodeStore.open(store) as st:
        victim = chunk_file(st, "data/top", 2)  # frames 32..47: episodes 1 and 2
    victim.unlink()
    assert main(["data", "validate", str(store), "deep=true"]) == 1
    out = capsys.readouterr().out
    assert "episode 1: data/top chunk 2" in out and "episode 2: data/top chunk 2" in out
    assert "ok" not in out.splitlines()[-1]
    assert main(["train", f"stores=[{store}]", f"out={tmp_path / 'run'}", "steps=1"]) == 2
    err = capsys.readouterr().err
    assert "damaged episode(s) [1, 2]" in err and "data/top chunk 2" in err
    assert "data repair" in err and "Traceback" not in err
    assert not (tmp_path / "run" / "checkpoints").exists()

    assert main(["data", "repair", str(store)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["dropped"] == [1, 2] and result["kept"] == 4
    assert main(["data", "validate", str(store), "deep=true"]) == 0
    with EpisodeStore.open(store) as st:
        assert [st.episode_meta(i)["seed"] for i in range(st.n_episodes)] == [0, 3, 4, 5]
        np.testing.assert_array_equal(st.episode(1).steps["top"], _episode(3).steps["top"])
    assert Path(result["damaged_original"]).is_dir()


def test_garbage_episode_ends_is_refused_at_once(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import zarr

    zarr.open_array(store / "meta" / "episode_ends", mode="r+")[5] = 10**12
    assert main(["data", "validate", str(store), "deep=true"]) == 1
    assert "episode_ends[5] = 1000000000000" in capsys.readouterr().out
    assert main(["data", "info", str(store)]) == 2
    assert "commit record is corrupt" in capsys.readouterr().err


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs (root and a kernel that allows mounts), else skipped with the reason."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.strip() or done.returncode}")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


def test_collect_onto_a_full_disk(tiny_disk: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tiny_disk / "s.zarr"
    status = main(
        [
            "collect",
            "tasks=[visual_manipulation]",
            "levels=[L1]",
            "episodes=40",
            "workers=0",
            f"out={out}",
            "image_size=96",
            "progress=false",
        ]
    )
    err = capsys.readouterr().err
    assert status == 2, err
    assert "no space left" in err and "needed up to" in err and "were free" in err
    assert "committed episodes are safe" in err and "Traceback" not in err
    with EpisodeStore.open(out) as st:
        kept = st.n_episodes
        assert kept >= 1 and st.validate(deep=True) == []
    assert f"The {kept} committed episodes are safe" in err
