"""The served policy on the real deployment path, against `uio2-robot rollout` on the same seeds.

Runs the user's own commands, as separate processes:

    uio2-robot serve                                     (the shipped policy via onnxruntime)
    uio2-robot robot driver.sim.task=T driver.sim.embodiment=E episodes=N report=...
    uio2-robot rollout tasks=[T] levels=[L1] episodes=N  (in-process, the env's primitive mode)

for every suite task at L1 and both embodiments (the simulated UR5e arm and the floating tool),
on the evaluation seeds `uio2_robot.seeding.episode_seed(EVAL_SEED_BASE, task, L1, i)`, and
prints success with 95% Wilson intervals, whether the served rate lies inside the rollout's
interval, how often the two agree episode by episode, and the deployed loop's per-stage latency.

    python benchmarks/deploy_vs_rollout.py --episodes 50 --out runs/deploy_eval

`--skip-rollout` reuses `OUT/rollout/eval_info.json`; `--server ws://...` uses a running server;
`--bundle B --checkpoint C` serves an exported fine-tune and rolls out its checkpoint; `--level`.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from uio2_robot.eval.stats import wilson_interval

STAGES = ("capture", "transfer", "inference", "round_trip", "actuation", "motion", "jitter")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(port: int, log: Path, bundle: str | None) -> subprocess.Popen[bytes]:
    """`uio2-robot serve` on ``port``: ``bundle`` (an exported policy), else the shipped policy
    (exported into the cache on first use), through onnxruntime."""
    cmd = ["uio2-robot", "serve", f"port={port}", "log_level=WARNING"]
    proc = subprocess.Popen(
        cmd + ([f"bundle={bundle}"] if bundle else []),
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    end = time.monotonic() + 900  # the first start exports the bundle into the cache
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"uio2-robot serve exited ({proc.returncode}); see {log}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        time.sleep(0.5)
    proc.kill()
    raise TimeoutError("uio2-robot serve did not listen within 900 s")


def run_robot(
    url: str,
    task: str,
    level: str,
    embodiment: str,
    episodes: int,
    out: Path,
    speedup: float,
    request_timeout_s: float | None = None,
) -> list:
    out.mkdir(parents=True, exist_ok=True)
    report = out / f"robot_{embodiment}_{task}.json"
    cmd = [
        "uio2-robot",
        "robot",
        f"server={url}",
        f"driver.sim.task={task}",
        f"driver.sim.level={level}",
        f"driver.sim.embodiment={embodiment}",
        "driver.sim.cameras=[top]",
        f"episodes={episodes}",
        f"speedup={speedup}",
        "max_seconds=null",
        f"report={report}",
        "log_level=WARNING",
    ]
    if request_timeout_s is not None:  # a loaded host answers a reset (prompt encoding) slowly
        cmd.append(f"request_timeout_s={request_timeout_s}")
    subprocess.run(cmd, check=False, stdout=subprocess.DEVNULL)
    return json.loads(report.read_text())


def rollout(episodes: int, out: Path, tasks: list[str], level: str, checkpoint: str | None) -> dict:
    """`uio2-robot rollout` of the shipped policy, or ``checkpoint`` (the torch policy)."""
    policy = ["policy=uio2", f"checkpoint={checkpoint}"] if checkpoint else []
    cmd = [
        "uio2-robot",
        "rollout",
        *policy,
        f"tasks=[{','.join(tasks)}]",
        f"levels=[{level}]",
        f"episodes={episodes}",
        f"out={out / 'rollout'}",
        "videos=0",
        "progress=false",
    ]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return json.loads((out / "rollout" / "eval_info.json").read_text())


def pct(k: int, n: int) -> str:
    lo, hi = wilson_interval(k, n)
    return f"{100 * k / n:.0f}% [{100 * lo:.0f}, {100 * hi:.0f}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=50)
    ap.add_argument("--tasks", default=None, help="comma-separated; default: every task at L1")
    ap.add_argument("--embodiments", default="arm,floating")
    ap.add_argument("--level", default="L1")
    ap.add_argument(
        "--request-timeout-s", type=float, default=None, help="robot's (default: its config's)"
    )
    ap.add_argument("--bundle", default=None, help="serve this bundle (default: shipped policy)")
    ap.add_argument(
        "--checkpoint", default=None, help="the bundle's checkpoint, for rollout on the same seeds"
    )
    ap.add_argument("--out", default="runs/deploy_eval")
    ap.add_argument("--speedup", type=float, default=20.0)
    ap.add_argument("--server", default=None, help="a running server's ws:// URL")
    ap.add_argument("--skip-rollout", action="store_true")
    ap.add_argument(
        "--realtime",
        type=int,
        default=5,
        help="episodes per embodiment at real time (speedup 1) for the latency and jitter table",
    )
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from uio2_robot.envs import TASKS, levels_for

    tasks = (
        args.tasks.split(",") if args.tasks else [t for t in TASKS if args.level in levels_for(t)]
    )
    os.environ.setdefault("MUJOCO_GL", "egl")

    t0 = time.monotonic()
    if args.skip_rollout:
        base = json.loads((out / "rollout" / "eval_info.json").read_text())
    else:
        base = rollout(args.episodes, out, tasks, args.level, args.checkpoint)
    t_rollout = time.monotonic() - t0
    by_seed = {(e["task"], e["seed"]): bool(e["success"]) for e in base["episodes"]}

    server = None
    url = args.server
    if url is None:
        port = free_port()
        server = start_server(port, out / "serve.log", args.bundle)
        url = f"ws://127.0.0.1:{port}"
    rows, stages, totals = [], {}, {}
    try:
        for emb in args.embodiments.split(","):
            for task in tasks:
                t1 = time.monotonic()
                eps = run_robot(
                    url,
                    task,
                    args.level,
                    emb,
                    args.episodes,
                    out,
                    args.speedup,
                    args.request_timeout_s,
                )
                if not eps:
                    raise RuntimeError(
                        f"`uio2-robot robot` ran no {task} episode ({emb}); see above"
                    )
                wins = sum(bool(e["success"]) for e in eps)
                seeds = [e["meta"]["seed"] for e in eps]
                ref = [by_seed[(task, s)] for s in seeds]
                agree = sum(bool(e["success"]) == r for e, r in zip(eps, ref, strict=True))
                lo, hi = wilson_interval(sum(ref), len(ref))
                inside = lo <= wins / len(eps) <= hi
                arm = {}
                for e in eps:
                    for k, v in (e.get("arm") or {}).items():
                        arm[k] = arm.get(k, 0) + int(v)
                rejected = sum(len(e["rejected_primitives"]) for e in eps)
                rows.append(
                    (
                        emb,
                        task,
                        wins,
                        len(eps),
                        sum(ref),
                        agree,
                        inside,
                        rejected,
                        arm,
                        time.monotonic() - t1,
                    )
                )
                tot = totals.setdefault(emb, [0, 0, 0])
                tot[0] += wins
                tot[1] += len(eps)
                tot[2] += sum(ref)
                for e in eps:
                    for name, st in e["latency"].items():
                        stages.setdefault((emb, name), []).append(st["p50_ms"])
                print(rows[-1], flush=True)
        realtime = {}
        for emb in args.embodiments.split(",") if args.realtime else []:
            eps = run_robot(url, tasks[0], args.level, emb, args.realtime, out / "realtime", 1.0)
            realtime[emb] = eps
    finally:
        if server is not None:
            server.terminate()
            server.wait(30)

    print(f"\nrollout (in-process, torch, primitive mode): {t_rollout:.0f} s")
    print(
        "| embodiment | task | served (serve + robot) | rollout, same seeds | inside | "
        "same outcome | rejected | arm: IK fail / limit / self-coll | minutes |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for emb, task, wins, n, ref, agree, inside, rej, arm, secs in rows:
        arm_s = (
            f"{arm.get('ik_failures', 0)} / {arm.get('joint_limit_stops', 0)} / "
            f"{arm.get('self_collisions', 0)}"
            if arm
            else "-"
        )
        print(
            f"| {emb} | {task} | {pct(wins, n)} | {pct(ref, n)} | {'yes' if inside else 'NO'} | "
            f"{agree}/{n} | {rej} | {arm_s} | {secs / 60:.1f} |"
        )
    for emb, (w, n, r) in totals.items():
        print(f"| {emb} | **average** | {pct(w, n)} | {pct(r, n)} | | | | | |")
    if {"arm", "floating"} <= set(totals):
        a, f = totals["arm"], totals["floating"]
        print(
            f"\narm - floating on the task average: {100 * (a[0] / a[1] - f[0] / f[1]):+.1f} points"
        )
    print("\nper-episode p50 latency at speedup, median over episodes (ms):")
    for (emb, name), vals in sorted(stages.items()):
        print(f"  {emb:9s} {name:11s} {np.median(vals):8.2f}")
    if realtime:
        print(
            f"\nreal time (10 Hz, {tasks[0]}, {args.realtime} episodes per embodiment): "
            "median of the episodes' p50 / largest p99, ms"
        )
        print("| embodiment | " + " | ".join(STAGES) + " |")
        print("|---|" + "---|" * len(STAGES))
        for emb, eps in realtime.items():
            cells = []
            for name in STAGES:
                st = [e["latency"][name] for e in eps if name in e["latency"]]
                cells.append(
                    f"{np.median([x['p50_ms'] for x in st]):.1f} / "
                    f"{max(x['p99_ms'] for x in st):.1f}"
                    if st
                    else "-"
                )
            print(f"| {emb} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    sys.exit(main())
