"""Check the LeRobot v3 import/export against lerobot itself, which lives in its own venv.

    python tests/lerobot_compat/run_checks.py [--lerobot-python /tmp/lrv/bin/python]
        [--store STORE | --episodes 4] [--work DIR] [--codecs h264,av1]
        [--backends pyav,torchcodec]

Run with the project's Python; lerobot runs in ``--lerobot-python`` (default ``$LEROBOT_PYTHON``,
then ``/tmp/lrv/bin/python``; see docs/lerobot.md for its set-up). Two checks:

(a) **export -> lerobot**: a store (``--store``, or suite episodes the oracle collects in
    delta mode) is exported with ``export_lerobot`` per codec and loaded frame by frame with
    ``lerobot.datasets.lerobot_dataset.LeRobotDataset(repo_id, root=DIR)``
    (``load_with_lerobot.py``); numbers must match the store bit for bit, task strings exactly,
    and the PSNR of the camera views is reported.
(b) **lerobot -> import**: lerobot's own API writes a dataset (``write_with_lerobot.py``:
    ``LeRobotDataset.create``, ``add_frame``, ``save_episode``, ``finalize``, AV1), and
    ``import_lerobot`` must give back the state, action and reward it was fed bit for bit.

Prints one JSON object with both results; the exit status is 1 if anything did not match.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent


def default_lerobot_python() -> str | None:
    """The interpreter of the lerobot venv, if one is set up and lerobot imports there."""
    for candidate in (os.environ.get("LEROBOT_PYTHON"), "/tmp/lrv/bin/python"):
        if candidate and Path(candidate).is_file():
            ok = subprocess.run(
                [candidate, "-c", "import lerobot.datasets.lerobot_dataset"],
                capture_output=True,
            )
            if ok.returncode == 0:
                return candidate
    return None


def suite_store(path: Path, episodes: int) -> Path:
    """Oracle episodes of the sim suite in delta mode (many frames per episode), 64x64 views."""
    from uio2_robot.policies.factory import make_policy
    from uio2_robot.trajectories import collect

    collect(
        ["visual_manipulation", "rotate"],
        ["L1"],
        episodes=max(1, episodes // 2),
        workers=0,
        out=path,
        action_mode="delta",
        image_size=64,
        progress=False,
        make_policy_fn=make_policy,
    )
    return path


def expected_from_store(store: Path) -> dict[str, np.ndarray]:
    """What lerobot should hand out, frame by frame in dataset order, read from the store."""
    from uio2_robot.trajectories import EpisodeStore
    from uio2_robot.trajectories.lerobot_export import feature_names, task_string

    with EpisodeStore.open(store) as st:
        names = feature_names(st.schema)
        parts: dict[str, list[np.ndarray]] = {}
        tasks: list[str] = []
        for e in range(st.n_episodes):
            ep = st.episode(e)
            for key, arr in ep.steps.items():
                name = ("img:" if st.schema.keys[key].is_image else "") + names[key]
                parts.setdefault(name, []).append(arr)
            tasks += [task_string(ep)] * ep.length
    out = {k: np.concatenate(v) for k, v in parts.items()}
    out["tasks"] = np.array(tasks)
    return out


def check_export(
    store: Path, work: Path, python: str, codec: str, backend: str = "pyav"
) -> dict[str, Any]:
    """(a): export with ``codec`` and load every frame with lerobot's ``backend`` decoder
    (``pyav``, or ``torchcodec``, lerobot's default, which needs FFmpeg's shared libraries)."""
    from uio2_robot.trajectories.lerobot_export import export_lerobot

    dataset = work / f"export_{codec}"
    summary = export_lerobot(store, dataset, codec=codec, overwrite=True)
    expected = work / f"expected_{codec}.npz"
    np.savez(expected, **expected_from_store(store))
    run = subprocess.run(
        [
            python,
            str(HERE / "load_with_lerobot.py"),
            str(dataset),
            str(expected),
            f"--backend={backend}",
        ],
        capture_output=True,
        text=True,
    )
    if run.returncode != 0:
        return {"codec": codec, "backend": backend, "ok": False, "error": run.stderr[-2000:]}
    result = json.loads(run.stdout.strip().splitlines()[-1])
    result["ok"] = (
        all(result["bit_exact"].values())
        and result["tasks_match"]
        and result["frames"] == result["expected_frames"] == summary["frames"]
    )
    size = sum(f.stat().st_size for f in (dataset / "videos").rglob("*.mp4"))
    return {"codec": codec, "video_bytes": size, **result}


def check_import(work: Path, python: str, episodes: int = 3, size: int = 96) -> dict[str, Any]:
    """(b): lerobot's API writes a dataset; the import must give back its numbers bit for bit."""
    from uio2_robot.trajectories import EpisodeStore
    from uio2_robot.trajectories.lerobot_import import import_lerobot

    dataset = work / "written_by_lerobot"
    run = subprocess.run(
        [
            python,
            str(HERE / "write_with_lerobot.py"),
            str(dataset),
            f"--episodes={episodes}",
            f"--size={size}",
        ],
        capture_output=True,
        text=True,
    )
    if run.returncode != 0:
        return {"ok": False, "error": run.stderr[-2000:]}
    store = work / "imported.zarr"
    summary = import_lerobot(dataset, store, overwrite=True)
    want = np.load(f"{dataset}.expected.npz")
    exact = {"action": True, "proprio": True, "reward": True}
    psnr = []
    with EpisodeStore.open(store) as st:
        for e in range(st.n_episodes):
            ep = st.episode(e)
            for key, name in (("action", "action"), ("proprio", "state"), ("reward", "reward")):
                w = want[f"{name}_{e}"]
                exact[key] &= (
                    ep.steps[key].dtype == w.dtype and ep.steps[key].tobytes() == w.tobytes()
                )
            mse = np.mean((ep.steps["front"].astype(np.float64) - want[f"front_{e}"]) ** 2)
            psnr.append(10 * np.log10(255**2 / mse))
        n = st.n_episodes
    return {
        "ok": all(exact.values()) and n == episodes,
        "episodes": n,
        "frames": summary["frames"],
        "source_codec": summary["videos"],
        "bit_exact": exact,
        "psnr_db_mean": round(float(np.mean(psnr)), 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lerobot-python", default=None)
    parser.add_argument("--store", type=Path, default=None)
    parser.add_argument("--episodes", type=int, default=4)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--codecs", default="h264,av1")
    parser.add_argument(
        "--backends", default="pyav", help="lerobot video backends: pyav,torchcodec"
    )
    args = parser.parse_args()
    python = args.lerobot_python or default_lerobot_python()
    if python is None:
        print("no Python with lerobot found: set LEROBOT_PYTHON (docs/lerobot.md)", file=sys.stderr)
        return 2
    work = args.work or Path(tempfile.mkdtemp(prefix="lerobot_compat_"))
    work.mkdir(parents=True, exist_ok=True)
    store = args.store
    if store is None:
        store = work / "suite.zarr"
        shutil.rmtree(store, ignore_errors=True)
        suite_store(store, args.episodes)
    result = {
        "store": str(store),
        "export": [
            check_export(store, work, python, c, b)
            for c in args.codecs.split(",")
            for b in args.backends.split(",")
        ],
        "import": check_import(work, python),
    }
    print(json.dumps(result, indent=2))
    ok = all(r["ok"] for r in result["export"]) and result["import"]["ok"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    raise SystemExit(main())
