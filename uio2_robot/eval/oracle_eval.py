"""The scripted oracle's success per task, level, action mode and embodiment.

The oracle is the demonstrator the training data comes from, so its success rate bounds what a
learned policy can be taught; the suite requires >= 98 % (primitive) and >= 95 % (delta) over 100
seeds per task. It runs through the same loop and on the same evaluation seeds
(``episode_seed(seed, task, level, i)``, base ``EVAL_SEED_BASE``) as ``uio2-robot rollout``, so
its numbers sit beside a policy's. With two embodiments (``--embodiments floating arm``) it prints
them side by side with the arm's counters (IK failures, joint-limit stops, self-collisions).
Images are rendered small here: they do not affect the physics or the oracle. Env speed (floating
and arm) is `benchmarks/bench_env.py`.

    python -m uio2_robot.eval.oracle_eval --episodes 100 --workers 2 --json oracle.json
    python -m uio2_robot.eval.oracle_eval --episodes 20 --levels first --embodiments floating arm
"""

from __future__ import annotations

import argparse
import json
import os
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from typing import Any

from uio2_robot.seeding import EVAL_SEED_BASE

REQUIRED = {"primitive": 0.98, "delta": 0.95}
EMBODIMENTS = ("floating", "arm")


@dataclass
class OracleResult:
    """Success statistics of the oracle on one (task, level, mode, embodiment)."""

    task: str
    level: str
    mode: str
    embodiment: str
    episodes: int
    successes: int
    mean_steps: float
    failures: dict[str, int] = field(default_factory=dict)  # reason -> count ("truncated" too)
    failed_seeds: list[int] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)  # the arm's, summed over episodes
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        """Fraction of successful episodes."""
        return self.successes / max(1, self.episodes)


def oracle_success(
    task: str,
    level: str,
    mode: str,
    episodes: int = 100,
    seed: int = EVAL_SEED_BASE,
    embodiment: str = "floating",
    image_size: int = 32,
) -> OracleResult:
    """Run the oracle on ``episodes`` evaluation seeds of (task, level) and count successes."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    from uio2_robot.envs import make_env
    from uio2_robot.eval.rollout import EpisodeResult, evaluate
    from uio2_robot.policies.oracle import OraclePolicy
    from uio2_robot.trajectories.rollout import EpisodeRun

    reasons: Counter[str] = Counter()
    counters: Counter[str] = Counter()
    failed: list[int] = []

    def tally(result: EpisodeResult, run: EpisodeRun) -> None:
        counters.update(run.final_info.get("arm", {}))
        if not result.success:
            reasons[result.failure or "truncated"] += 1
            failed.append(result.seed)

    def build(t: str, lv: str) -> Any:
        return make_env(t, lv, mode, image_size=image_size, cameras=("top",), embodiment=embodiment)

    report = evaluate(
        OraclePolicy(),
        build,
        [task],
        {task: [level]},
        episodes=episodes,
        seed=seed,
        policy_name="oracle",
        action_mode=mode,
        progress=False,
        on_episode=tally,
    )
    return OracleResult(
        task,
        level,
        mode,
        embodiment,
        episodes,
        report.cells[0].successes,
        sum(e.steps for e in report.episodes) / episodes,
        dict(reasons),
        failed,
        dict(counters),
        report.wall_seconds,
    )


def _run(job: tuple) -> OracleResult:
    return oracle_success(*job)


def main(argv: list[str] | None = None) -> int:
    from uio2_robot.envs import TASKS, levels_for

    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--episodes", type=int, default=100)
    ap.add_argument("--seed", type=int, default=EVAL_SEED_BASE, help="evaluation seed base")
    ap.add_argument("--tasks", nargs="*", default=list(TASKS))
    ap.add_argument("--modes", nargs="*", default=["primitive", "delta"])
    ap.add_argument("--levels", default="all", choices=("all", "first"), help="levels per task")
    ap.add_argument("--embodiments", nargs="*", default=["floating"], choices=EMBODIMENTS)
    ap.add_argument("--workers", type=int, default=1, help="processes (spawned; one env each)")
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args(argv)
    if args.episodes <= 0:
        ap.error(f"--episodes must be positive, got {args.episodes}")
    jobs = [
        (t, lv, m, args.episodes, args.seed, e)
        for m in args.modes
        for t in args.tasks
        for lv in (levels_for(t) if args.levels == "all" else levels_for(t)[:1])
        for e in args.embodiments
    ]
    if args.workers > 1:
        with ProcessPoolExecutor(args.workers, mp_context=get_context("spawn")) as pool:
            results = list(pool.map(_run, jobs))
    else:
        results = [_run(j) for j in jobs]
    print(
        f"{'task':26s} {'level':5s} {'mode':9s} {'embodiment':10s} {'success':>8s} "
        f"{'steps':>6s}  failures / arm counters"
    )
    ok = True
    for r in results:
        below = r.rate < REQUIRED[r.mode]
        ok &= not below
        extra = {**r.failures, **({"arm": r.counters} if r.embodiment == "arm" else {})}
        print(
            f"{r.task:26s} {r.level:5s} {r.mode:9s} {r.embodiment:10s} {100 * r.rate:7.1f}% "
            f"{r.mean_steps:6.1f}  {extra or ''}{'  <- below target' if below else ''}"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump([asdict(r) | {"rate": r.rate} for r in results], f, indent=1)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
