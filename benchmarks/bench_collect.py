"""End-to-end `collect` throughput: episodes appended one at a time vs in batches, one process.

`collect` writes finished episodes in batches (``FLUSH_EPISODES``) because appending the suite's
one- and two-step primitive episodes one by one re-compresses the store's partly filled last
chunk each time, and the writing process, not the simulation workers, became the bound. This
runs the real collection (MuJoCo suite, scripted oracle, spawn workers) with batch size 1 (the
old behaviour) and the default, alternating, and prints episodes/s and the ratio.

    python benchmarks/bench_collect.py                      # ~1.5 min on 2 cores
    python benchmarks/bench_collect.py --episodes 100 --workers 4 --rounds 1
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # before anything can import mujoco

import argparse  # noqa: E402
import importlib  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

from uio2_robot.policies.factory import make_policy  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", nargs="+", default=["visual_manipulation", "rotate"])
    ap.add_argument("--episodes", type=int, default=300, help="episodes per task per run")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2, help="alternating runs of each setting")
    args = ap.parse_args()

    # the module, not the function the package re-exports under the same name
    collect_module = importlib.import_module("uio2_robot.trajectories.collect")
    default = collect_module.FLUSH_EPISODES
    settings = {"one at a time": 1, f"batches of {default}": default}
    rates: dict[str, list[float]] = {name: [] for name in settings}
    root = Path(tempfile.mkdtemp(prefix="bench_collect_"))
    try:
        for _ in range(args.rounds):
            for name, flush in settings.items():
                collect_module.FLUSH_EPISODES = flush
                out = root / f"flush{flush}.zarr"
                shutil.rmtree(out, ignore_errors=True)
                summary = collect_module.collect(
                    args.tasks,
                    ["L1"],
                    args.episodes,
                    args.workers,
                    out,
                    seed=5,
                    progress=False,
                    make_policy_fn=make_policy,
                )
                rates[name].append(summary["episodes_per_s"])
    finally:
        collect_module.FLUSH_EPISODES = default
        shutil.rmtree(root, ignore_errors=True)

    n = args.episodes * len(args.tasks)
    print(
        f"collect {n} oracle episodes of {args.tasks} at L1 with {args.workers} workers, "
        f"{os.cpu_count()} CPUs, median of {args.rounds} alternating runs"
    )
    base = statistics.median(rates["one at a time"])
    for name, values in rates.items():
        rate = statistics.median(values)
        print(f"  appends {name:16s} {rate:7.1f} episodes/s  {rate / base:5.2f}x")


if __name__ == "__main__":
    main()
