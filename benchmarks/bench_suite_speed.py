"""Delta-mode env speed of every task, two 128 x 128 views, in steps per CPU-second of one core.

The suite's bar is >= 200 delta steps/s on one core. Each task runs at its level with the largest
object pool (the pool's parked bodies cost physics time), stepping small random deltas with the
oracle's suction off, rendering both views every step. CPU time of this process (not wall time)
is counted, so the figure holds on a machine shared with other jobs; wall-clock rates and the
physics / rendering split are ``benchmarks/bench_env.py``.

    python benchmarks/bench_suite_speed.py [--steps 300] [--size 128] [--tasks a b ...]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402

from uio2_robot.envs import TASKS, levels_for, make_env  # noqa: E402

REQUIRED = 200.0


def largest_pool_level(task: str) -> str:
    """The task's level whose compiled pool has the most bodies."""
    sizes = {}
    for lv in levels_for(task):
        env = make_env(task, lv, "delta", image_size=16, cameras=("top",))
        sizes[lv] = env.unwrapped.sim.model.nbody
        env.close()
    return max(sizes, key=sizes.get)


def steps_per_cpu_second(task: str, level: str, steps: int, size: int) -> tuple[float, int]:
    """(delta steps per CPU-second, bodies in the model) over ``steps`` random small deltas."""
    env = make_env(task, level, "delta", image_size=size, cameras=("front", "top"))
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    actions = [
        np.array([*rng.uniform(-0.01, 0.01, 3), rng.uniform(-0.05, 0.05), 0.0], np.float32)
        for _ in range(steps)
    ]
    start = time.process_time()
    for k, a in enumerate(actions):
        _, _, terminated, truncated, _ = env.step(a)
        if terminated or truncated:
            env.reset(seed=k + 1)
    rate = steps / (time.process_time() - start)
    nbody = env.unwrapped.sim.model.nbody
    env.close()
    return rate, nbody


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--tasks", nargs="*", default=list(TASKS))
    args = ap.parse_args()
    print(f"{'task':<28}{'level':<7}{'bodies':>7}{'steps/CPU-s':>13}")
    worst = float("inf")
    for task in args.tasks:
        level = largest_pool_level(task)
        rate, nbody = steps_per_cpu_second(task, level, args.steps, args.size)
        worst = min(worst, rate)
        flag = "" if rate >= REQUIRED else "  <- below 200"
        print(f"{task:<28}{level:<7}{nbody:>7}{rate:>13.0f}{flag}", flush=True)
    print(f"slowest: {worst:.0f} delta steps per CPU-second (bar: {REQUIRED:.0f})")


if __name__ == "__main__":
    main()
