"""Write a small LeRobot v3 dataset with lerobot's own API (run in a venv that has lerobot).

    /tmp/lrv/bin/python tests/lerobot_compat/write_with_lerobot.py OUT_DIR [--episodes 2]
        [--size 64] [--seed 0]

It records a dataset the way a LeRobot user does (``LeRobotDataset.create``, ``add_frame``,
``save_episode``, ``finalize``; AV1 video, lerobot's default codec) and saves the exact arrays it
fed in as ``OUT_DIR.expected.npz``, so the import check can compare what ``uio2-robot data
import-lerobot`` reads against what went in, bit for bit. ``tests/data/lerobot_v3_tiny`` was
made by this script (2 episodes, 64x64) and is what the main test suite imports without lerobot.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np

TASKS = ("pick up the red cube", "push the blue block to the left")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--episodes", type=int, default=2)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    if args.out.exists():
        shutil.rmtree(args.out)
    s = args.size
    features = {
        "observation.images.front": {
            "dtype": "video",
            "shape": (s, s, 3),
            "names": ["height", "width", "channels"],
        },
        "observation.state": {"dtype": "float32", "shape": (4,), "names": ["x", "y", "z", "g"]},
        "action": {"dtype": "float32", "shape": (3,), "names": ["dx", "dy", "dz"]},
        "next.reward": {"dtype": "float32", "shape": (1,), "names": None},
    }
    ds = LeRobotDataset.create(
        repo_id="uio2_robot/lerobot_v3_tiny",
        fps=10,
        features=features,
        root=args.out,
        robot_type="toy_arm",
        use_videos=True,
    )
    rng = np.random.default_rng(args.seed)
    expected: dict[str, np.ndarray] = {}
    for e in range(args.episodes):
        length = 6 + 3 * e
        state = rng.normal(size=(length, 4)).astype(np.float32)
        action = rng.uniform(-1, 1, size=(length, 3)).astype(np.float32)
        reward = rng.uniform(size=(length, 1)).astype(np.float32)
        # smooth images (a moving gradient) so the lossy video keeps them recognisable
        yy, xx = np.mgrid[0:s, 0:s]
        frames = np.stack(
            [
                np.stack([(xx * 4 + 9 * t) % 256, (yy * 4) % 256, np.full_like(xx, 40 * e)], -1)
                for t in range(length)
            ]
        ).astype(np.uint8)
        for t in range(length):
            ds.add_frame(
                {
                    "observation.images.front": frames[t],
                    "observation.state": state[t],
                    "action": action[t],
                    "next.reward": reward[t],
                    "task": TASKS[e % len(TASKS)],
                }
            )
        ds.save_episode()
        expected |= {
            f"state_{e}": state,
            f"action_{e}": action,
            f"reward_{e}": reward[:, 0],
            f"front_{e}": frames,
        }
    ds.finalize()
    np.savez_compressed(f"{args.out}.expected.npz", **expected)
    print(f"wrote {args.out} ({args.episodes} episodes) and {args.out}.expected.npz")


if __name__ == "__main__":
    main()
