"""Measure the scripted oracle's success rate per task, level and action mode.

The oracle is the demonstrator the training data comes from, so its success rate bounds what a
learned policy can be taught; the suite requires >= 98 % (primitive) and >= 95 % (delta) over 100
seeds per task. Images are rendered small here: they do not affect the physics or the oracle.

    python -m uio2_robot.envs.oracle_eval --episodes 100 --workers 2 --json oracle.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context

REQUIRED = {"primitive": 0.98, "delta": 0.95}


@dataclass
class OracleResult:
    """Success statistics of the oracle on one (task, level, mode)."""

    task: str
    level: str
    mode: str
    episodes: int
    successes: int
    mean_steps: float
    failures: dict[str, int] = field(default_factory=dict)  # reason -> count ("truncated" too)
    failed_seeds: list[int] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        """Fraction of successful episodes."""
        return self.successes / max(1, self.episodes)


def oracle_success(
    task: str, level: str, mode: str, episodes: int = 100, seed: int = 0, image_size: int = 32
) -> OracleResult:
    """Run the oracle on seeds ``seed .. seed + episodes - 1`` and count successes."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    from . import Oracle, make_env

    env = make_env(task, level, mode, image_size=image_size, cameras=("top",))
    oracle = Oracle()
    successes, steps_total = 0, 0
    reasons: Counter[str] = Counter()
    failed: list[int] = []
    t0 = time.perf_counter()
    for s in range(seed, seed + episodes):
        obs, _ = env.reset(seed=s)
        oracle.reset(env)
        done, info, steps = False, {}, 0
        while not done:
            obs, _, terminated, truncated, info = env.step(oracle.act(obs))
            steps += 1
            done = terminated or truncated
        steps_total += steps
        if info["is_success"]:
            successes += 1
        else:
            reasons[info["failure"] or "truncated"] += 1
            failed.append(s)
    env.close()
    return OracleResult(
        task,
        level,
        mode,
        episodes,
        successes,
        steps_total / max(1, episodes),
        dict(reasons),
        failed,
        time.perf_counter() - t0,
    )


def _run(args: tuple) -> OracleResult:
    return oracle_success(*args)


def main(argv: list[str] | None = None) -> int:
    from . import TASKS, levels_for

    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--episodes", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tasks", nargs="*", default=list(TASKS))
    ap.add_argument("--modes", nargs="*", default=["primitive", "delta"])
    ap.add_argument("--workers", type=int, default=1, help="processes (spawned; one env each)")
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args(argv)
    jobs = [
        (t, lv, m, args.episodes, args.seed)
        for m in args.modes
        for t in args.tasks
        for lv in levels_for(t)
    ]
    if args.workers > 1:
        with ProcessPoolExecutor(args.workers, mp_context=get_context("spawn")) as pool:
            results = list(pool.map(_run, jobs))
    else:
        results = [_run(j) for j in jobs]
    print(f"{'task':26s} {'level':5s} {'mode':9s} {'success':>8s} {'steps':>6s}  failures")
    ok = True
    for r in results:
        below = r.rate < REQUIRED[r.mode]
        ok &= not below
        print(
            f"{r.task:26s} {r.level:5s} {r.mode:9s} {100 * r.rate:7.1f}% {r.mean_steps:6.1f}  "
            f"{r.failures or ''}{'  <- below target' if below else ''}"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump([asdict(r) | {"rate": r.rate} for r in results], f, indent=1)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
