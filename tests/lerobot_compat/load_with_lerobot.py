"""Load a dataset ``uio2-robot data export-lerobot`` wrote with lerobot's own ``LeRobotDataset``
and compare every frame with what the store held (run in a venv that has lerobot).

    /tmp/lrv/bin/python tests/lerobot_compat/load_with_lerobot.py DATASET_DIR EXPECTED.npz
        [--backend pyav|torchcodec]

``EXPECTED.npz`` (written by ``run_checks.py`` from the store) holds, in dataset order, one row
per frame: ``action``, ``observation.state`` (and any other numeric feature under its LeRobot
name), ``img:<video feature>`` (uint8 frames), and ``tasks`` (the task string of every frame).
Prints one JSON object: frames compared, which numeric features matched bit for bit, the PSNR
of every video feature, and whether the task strings matched.
"""

from __future__ import annotations

import argparse
import json

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dataset")
    parser.add_argument("expected")
    parser.add_argument("--backend", default="pyav")
    args = parser.parse_args()

    from importlib.metadata import version

    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset("uio2_robot/export_check", root=args.dataset, video_backend=args.backend)
    want = np.load(args.expected)
    numeric = [k for k in want.files if not k.startswith("img:") and k != "tasks"]
    videos = [k[len("img:") :] for k in want.files if k.startswith("img:")]
    got: dict[str, list[np.ndarray]] = {k: [] for k in numeric + videos}
    tasks = []
    for i in range(len(ds)):
        item = ds[i]
        for k in numeric:
            got[k].append(item[k].numpy())
        for k in videos:  # lerobot hands out float (C, H, W) in [0, 1]
            got[k].append(np.round(item[k].numpy().transpose(1, 2, 0) * 255).astype(np.uint8))
        tasks.append(item["task"])
    exact = {
        k: bool(
            np.stack(got[k]).dtype == want[k].dtype
            and np.stack(got[k]).reshape(want[k].shape).tobytes() == want[k].tobytes()
        )
        for k in numeric
    }
    psnr = {}
    for k in videos:
        mse = np.mean((np.stack(got[k]).astype(np.float64) - want[f"img:{k}"]) ** 2)
        psnr[k] = round(float(10 * np.log10(255**2 / mse)), 2) if mse else float("inf")
    print(
        json.dumps(
            {
                "lerobot": version("lerobot"),
                "backend": ds.video_backend,
                "frames": len(ds),
                "episodes": ds.num_episodes,
                "expected_frames": int(len(want["tasks"])),
                "bit_exact": exact,
                "psnr_db": psnr,
                "tasks_match": tasks == [str(t) for t in want["tasks"]],
            }
        )
    )


if __name__ == "__main__":
    main()
