"""Floating tool vs UR5e arm: scripted-oracle success per task and mode, and env speed.

The arm embodiment must not cost the oracle (the demonstrator) its success: this runs the same
seeds (``episode_seed(EVAL_SEED_BASE, task, level, i)``) through both embodiments and prints a
side-by-side table with the arm's counters, then (``--speed``) delta-mode steps per second with
two 128 x 128 views for both, replaying identical oracle actions (rendering included and not).

    python -m uio2_robot.envs.arm_eval --episodes 20 --workers 2
    python -m uio2_robot.envs.arm_eval --episodes 0 --speed
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

EMBODIMENTS = ("floating", "arm")


def oracle_run(task: str, level: str, mode: str, embodiment: str, episodes: int) -> dict:
    """Oracle success, failures and summed arm counters over the evaluation seeds."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    from uio2_robot.seeding import EVAL_SEED_BASE, episode_seed

    from . import Oracle, make_env

    env = make_env(task, level, mode, image_size=32, cameras=("top",), embodiment=embodiment)
    oracle = Oracle()
    successes, failures, counters = 0, [], {}
    for i in range(episodes):
        seed = episode_seed(EVAL_SEED_BASE, task, level, i)
        obs, _ = env.reset(seed=seed)
        oracle.reset(env)
        done, info = False, {}
        while not done:
            obs, _, terminated, truncated, info = env.step(oracle.act(obs))
            done = terminated or truncated
        successes += bool(info["is_success"])
        for k, v in info.get("arm", {}).items():
            counters[k] = counters.get(k, 0) + v
        if not info["is_success"]:
            failures.append((seed, info["failure"] or "truncated"))
    env.close()
    return dict(successes=successes, failures=failures, counters=counters)


def _run(job: tuple) -> tuple[tuple, dict]:
    return job, oracle_run(*job)


def speed(steps: int = 300, size: int = 128) -> dict[str, tuple[float, float]]:
    """Delta-mode (steps/s with both views rendered, steps/s of physics and control alone)."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    from . import Oracle, make_env

    out = {}
    for embodiment in EMBODIMENTS:
        env = make_env("visual_manipulation", "L1", "delta", image_size=size, embodiment=embodiment)
        plan, seed = [], 0
        obs, _ = env.reset(seed=seed)
        oracle = Oracle()
        oracle.reset(env)
        while len(plan) < steps:
            action = oracle.act(obs)
            plan.append((seed, action))
            obs, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                seed += 1
                obs, _ = env.reset(seed=seed)
                oracle.reset(env)
        rates = []
        u = env.unwrapped
        for render in (True, False):
            real = u.views.observe
            if not render:
                u.views.observe = lambda: {}
            current, done, spent = None, True, 0.0
            for s, action in plan:
                if s != current or done:
                    env.reset(seed=s)
                    current = s
                t0 = time.perf_counter()
                _, _, terminated, truncated, _ = env.step(action)
                spent += time.perf_counter() - t0
                done = terminated or truncated
            u.views.observe = real
            rates.append(len(plan) / spent)
        out[embodiment] = (rates[0], rates[1])
        env.close()
    return out


def main(argv: list[str] | None = None) -> int:
    from . import TASKS, levels_for

    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--episodes", type=int, default=20)
    ap.add_argument("--tasks", nargs="*", default=list(TASKS))
    ap.add_argument("--modes", nargs="*", default=["primitive", "delta"])
    ap.add_argument("--workers", type=int, default=1, help="processes (spawned; one env each)")
    ap.add_argument("--speed", action="store_true", help="also measure env steps/s")
    args = ap.parse_args(argv)
    jobs = [
        (t, levels_for(t)[0], m, e, args.episodes)
        for m in args.modes
        for t in args.tasks
        for e in EMBODIMENTS
    ]
    results: dict[tuple, dict] = {}
    if args.episodes > 0:
        if args.workers > 1:
            with ProcessPoolExecutor(args.workers, mp_context=get_context("spawn")) as pool:
                results = dict(pool.map(_run, jobs))
        else:
            results = dict(_run(j) for j in jobs)
        n = args.episodes
        print(f"{'task':24s} {'level':5s} {'mode':9s} {'floating':>8s} {'arm':>8s}  arm counters")
        for m in args.modes:
            for t in args.tasks:
                lv = levels_for(t)[0]
                fl, arm = results[(t, lv, m, "floating", n)], results[(t, lv, m, "arm", n)]
                print(
                    f"{t:24s} {lv:5s} {m:9s} {fl['successes']:4d}/{n:<3d} {arm['successes']:4d}/{n:<3d}"
                    f"  {arm['counters']}"
                    + (f"  arm failed: {arm['failures']}" if arm["failures"] else "")
                    + (f"  floating failed: {fl['failures']}" if fl["failures"] else "")
                )
    if args.speed:
        for embodiment, (full, physics) in speed().items():
            print(
                f"{embodiment:8s}: {full:6.1f} delta steps/s with two 128x128 views, "
                f"{physics:6.1f} physics + control only"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
