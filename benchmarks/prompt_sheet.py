"""A contact sheet of every task's prompt, for a person to check the suite at a glance.

One row per task (at its first level, one seed): the task name and level, the workspace as the
top camera sees it, every prompt image in order, and the prompt's text with each image's label
in braces. Writes ``docs/prompts.png`` by default.

    python benchmarks/prompt_sheet.py [--seed 0] [--out docs/prompts.png] [--level L1]
"""

from __future__ import annotations

import argparse
import os
import textwrap

os.environ.setdefault("MUJOCO_GL", "egl")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from uio2_robot.envs import TASKS, levels_for, make_env  # noqa: E402

ROW_H = 162
IMG_H = 96
TEXT_W = 110  # characters per text line
FONT = cv2.FONT_HERSHEY_SIMPLEX


def _fit(img: np.ndarray, h: int) -> np.ndarray:
    w = max(1, round(img.shape[1] * h / img.shape[0]))
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)


def task_row(task: str, level: str, seed: int, width: int) -> np.ndarray:
    """One task's row: name, the workspace, the prompt images, the prompt text."""
    env = make_env(task, level, "primitive", image_size=128, cameras=("top",))
    try:
        obs, info = env.reset(seed=seed)
    finally:
        env.close()
    row = np.full((ROW_H, width, 3), 255, np.uint8)
    cv2.putText(row, f"{task} ({level})", (4, 14), FONT, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    x = 4
    tiles = [_fit(obs["top"], IMG_H)] + [
        _fit(s, IMG_H if s.shape[0] > 64 else 64) for s in info["prompt"] if not isinstance(s, str)
    ]
    for k, tile in enumerate(tiles):
        if x + tile.shape[1] > width:
            break
        row[20 : 20 + tile.shape[0], x : x + tile.shape[1]] = tile
        if k == 0:
            cv2.putText(row, "workspace", (x, 20 + IMG_H + 10), FONT, 0.3, (90, 90, 90), 1)
            x += 6
        x += tile.shape[1] + 4
    for j, line in enumerate(textwrap.wrap(info["prompt_text"], TEXT_W)[:3]):
        cv2.putText(row, line, (4, 136 + 9 * j), FONT, 0.3, (0, 0, 0), 1, cv2.LINE_AA)
    row[-1] = 200
    return row


def contact_sheet(seed: int = 0, level: str | None = None, width: int = 1100) -> np.ndarray:
    """Rows of every task (at ``level`` where it has it, else its first level), stacked."""
    rows = []
    for task in TASKS:
        lv = level if level in levels_for(task) else levels_for(task)[0]
        rows.append(task_row(task, lv, seed, width))
    return np.concatenate(rows, axis=0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--level", default=None)
    ap.add_argument("--out", default="docs/prompts.png")
    args = ap.parse_args()
    sheet = contact_sheet(args.seed, args.level)
    cv2.imwrite(args.out, sheet[:, :, ::-1])
    print(f"wrote {args.out} ({sheet.shape[1]} x {sheet.shape[0]})")


if __name__ == "__main__":
    main()
