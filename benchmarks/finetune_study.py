"""Data-efficiency of fine-tuning the shipped policy on a task it never trained on (issue #25).

The grid: demonstrations x fine-tuning mode (full | lora | frozen_encoder). Each cell, as a user
runs it, through the CLI:

1. ``uio2-robot collect`` the first N oracle demonstrations (seed base 500000, so every size is a
   prefix of the largest: the same layouts, more of them);
2. ``uio2-robot train init_from=default finetune=MODE`` (the parent's recipe and inference
   settings are inherited, train/lineage.py), timed in CPU minutes of the training process;
3. ``uio2-robot rollout policy=uio2 checkpoint=...`` on held-out evaluation seeds: success on the
   new task with a 95% Wilson interval, and (``--forget-episodes``) the L1 average over the tasks
   the shipped policy trained on, before and after (forgetting).

Each cell writes ``OUT/cells/SIZE_MODE.json`` (a cell already there is not rerun, and several
instances may fill different cells at once); every run gathers them into
``OUT/finetune_study.json`` (with the cells not run yet) and plots ``OUT/finetune_study.png``.

    python benchmarks/finetune_study.py --sizes 100 400 --modes full lora --out runs/ft_study
    python benchmarks/finetune_study.py --plot-only --out runs/ft_study
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from uio2_robot.eval.stats import wilson_interval
from uio2_robot.policies.factory import DEFAULT_POLICY_DIR

MODES = ("full", "lora", "frozen_encoder")
SIZES = (25, 50, 100, 400)
COLLECT_SEED = 500000  # below the evaluation base; a layout range the shipped policy never saw


def run(cmd: list[str], log: Path) -> dict[str, float]:
    """Run a CLI command (its output to ``log``); return its wall seconds and CPU minutes (user +
    system of the child process tree, from RUSAGE_CHILDREN)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    with log.open("w") as f:
        f.write(" ".join(cmd) + "\n")
        f.flush()
        code = subprocess.call(cmd, stdout=f, stderr=subprocess.STDOUT)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if code != 0:
        raise RuntimeError(f"{cmd[:2]} failed with exit status {code}; see {log}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": time.perf_counter() - t0, "cpu_min": cpu / 60}


def rollout(
    checkpoint: str, tasks: list[str], level: str, episodes: int, out: Path
) -> dict[str, Any]:
    """Closed-loop success of a checkpoint (held-out evaluation seeds) per task, and pooled."""
    cmd = ["uio2-robot", "rollout", "policy=uio2", f"checkpoint={checkpoint}"]
    cmd += [f"tasks=[{','.join(tasks)}]", f"levels=[{level}]", f"episodes={episodes}"]
    cmd += [f"out={out}", "videos=0", "progress=false"]
    cost = run(cmd, out.with_suffix(".log"))
    info = json.loads((out / "eval_info.json").read_text())
    cells = {r["task"]: r for r in info["results"] if r["level"] == level}
    per_task = {t: [c["successes"], c["episodes"]] for t, c in cells.items()}
    rates = [s / n for s, n in per_task.values()]
    return {
        "per_task": per_task,
        "task_average": sum(rates) / len(rates),
        "command": " ".join(cmd),
        **cost,
    }


def summary(successes: int, episodes: int) -> dict[str, Any]:
    lo, hi = wilson_interval(successes, episodes)
    return {
        "successes": successes,
        "episodes": episodes,
        "rate": successes / episodes,
        "ci95": [lo, hi],
    }


def trained_tasks(checkpoint: Path, level: str) -> list[str]:
    """The tasks the shipped policy trained on at ``level`` (its config's train_seeds)."""
    seeds = json.loads((checkpoint / "config.json").read_text())["train_seeds"]
    return sorted({k.split("/")[0] for k in seeds if k.endswith(f"/{level}")})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--task", default="same_texture")
    ap.add_argument("--level", default="L4")
    ap.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    ap.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    ap.add_argument("--episodes", type=int, default=50, help="evaluation episodes per cell")
    ap.add_argument(
        "--forget-episodes",
        type=int,
        default=0,
        help="L1 episodes per trained task for forgetting (0: not measured)",
    )
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--time-limit-s", type=float, default=600.0)
    ap.add_argument(
        "--train-args",
        nargs="*",
        default=[],
        help="extra `uio2-robot train` overrides for every cell (key=value)",
    )
    ap.add_argument("--out", type=Path, default=Path("runs/finetune_study"))
    ap.add_argument("--plot-only", action="store_true")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    cells = args.out / "cells"  # one JSON per cell: several instances may fill the grid at once
    cells.mkdir(exist_ok=True)
    if not args.plot_only:
        forget_tasks = trained_tasks(DEFAULT_POLICY_DIR, "L1")
        if not (cells / "baseline.json").is_file():
            base = rollout(
                str(DEFAULT_POLICY_DIR),
                [args.task],
                args.level,
                args.episodes,
                args.out / "eval_baseline",
            )
            cell = {**summary(*base["per_task"][args.task]), "eval_command": base["command"]}
            if args.forget_episodes:
                l1 = rollout(
                    str(DEFAULT_POLICY_DIR),
                    forget_tasks,
                    "L1",
                    args.forget_episodes,
                    args.out / "eval_baseline_L1",
                )
                cell.update(L1_task_average=l1["task_average"], L1_per_task=l1["per_task"])
            (cells / "baseline.json").write_text(json.dumps(cell, indent=2))
        for size in args.sizes:
            store = args.out / "stores" / f"{args.task}_{args.level}_{size}.zarr"
            if not store.is_dir():
                (args.out / "stores").mkdir(exist_ok=True)
                run(
                    [
                        "uio2-robot",
                        "collect",
                        f"tasks=[{args.task}]",
                        f"levels=[{args.level}]",
                        f"episodes={size}",
                        "workers=2",
                        f"seed={COLLECT_SEED}",
                        f"out={store}",
                        "progress=false",
                    ],
                    store.with_suffix(".log"),
                )
            for mode in args.modes:
                result = cells / f"{size}_{mode}.json"
                if result.is_file():
                    continue
                run_dir = args.out / "runs" / f"{mode}_{size}"
                cmd = [
                    "uio2-robot",
                    "train",
                    "init_from=default",
                    f"stores=[{store}]",
                    f"finetune={mode}",
                    f"out={run_dir}",
                    f"steps={args.steps}",
                    f"batch_size={args.batch_size}",
                    f"time_limit_s={args.time_limit_s}",
                    "val_fraction=0",
                    "progress=false",
                    *args.train_args,
                ]
                run_dir.mkdir(parents=True, exist_ok=True)
                cost = run(cmd, run_dir / "train.log")
                ckpt = run_dir / "checkpoints" / "policy"
                step = json.loads((ckpt / "config.json").read_text())["step"]
                ev = rollout(
                    str(ckpt),
                    [args.task],
                    args.level,
                    args.episodes,
                    args.out / f"eval_{mode}_{size}",
                )
                cell = {
                    **summary(*ev["per_task"][args.task]),
                    "demonstrations": size,
                    "mode": mode,
                    "train_command": " ".join(cmd),
                    "eval_command": ev["command"],
                    "steps_done": step,
                    "train_cpu_min": cost["cpu_min"],
                    "train_wall_s": cost["wall_s"],
                }
                if args.forget_episodes:
                    l1 = rollout(
                        str(ckpt),
                        forget_tasks,
                        "L1",
                        args.forget_episodes,
                        args.out / f"eval_{mode}_{size}_L1",
                    )
                    cell.update(L1_task_average=l1["task_average"], L1_per_task=l1["per_task"])
                result.write_text(json.dumps(cell, indent=2))
    study: dict[str, Any] = {"task": args.task, "level": args.level, "cells": {}}
    for path in sorted(cells.glob("*.json")):
        if path.stem == "baseline":
            study["baseline"] = json.loads(path.read_text())
        else:
            size, mode = path.stem.split("_", 1)
            study["cells"][f"{size}/{mode}"] = json.loads(path.read_text())
    study["not_run"] = [
        f"{n}/{m}" for n in SIZES for m in MODES if f"{n}/{m}" not in study["cells"]
    ]
    (args.out / "finetune_study.json").write_text(json.dumps(study, indent=2))
    plot(study, args.out / "finetune_study.png")
    (args.out / "finetune_study.md").write_text(markdown(study))
    print(
        json.dumps(
            {
                k: {m: v.get(m) for m in ("successes", "episodes", "train_cpu_min")}
                for k, v in study["cells"].items()
            },
            indent=1,
        )
    )


def markdown(study: dict[str, Any]) -> str:
    """The study as a markdown table: success with its interval, CPU minutes, L1 average."""

    def pct(cell: dict[str, Any]) -> str:
        lo, hi = cell["ci95"]
        return f"{cell['successes']}/{cell['episodes']} **{100 * cell['rate']:.0f}%** [{100 * lo:.0f}, {100 * hi:.0f}]"

    def l1(cell: dict[str, Any]) -> str:
        per = cell.get("L1_per_task")
        if not per:
            return "-"
        k, n = sum(s for s, _ in per.values()), sum(m for _, m in per.values())
        return f"{100 * cell['L1_task_average']:.1f}% ({k}/{n})"

    rows = [
        "| demos | fine-tune | steps x batch | train CPU-min | success | L1 average (trained tasks) |"
    ]
    rows.append("|---|---|---|---|---|---|")
    if "baseline" in study:
        rows.append(
            f"| - | none (shipped policy) | - | - | {pct(study['baseline'])} | {l1(study['baseline'])} |"
        )
    order = {m: i for i, m in enumerate(MODES)}
    for key in sorted(study["cells"], key=lambda k: (int(k.split("/")[0]), order[k.split("/")[1]])):
        c = study["cells"][key]
        batch = next(
            (a.split("=")[1] for a in c["train_command"].split() if a.startswith("batch_size=")),
            "?",
        )
        rows.append(
            f"| {c['demonstrations']} | {c['mode']} | {c['steps_done']} x {batch} | "
            f"{c['train_cpu_min']:.1f} | {pct(c)} | {l1(c)} |"
        )
    return "\n".join(rows) + "\n"


def plot(study: dict[str, Any], out: Path) -> None:
    """Success vs demonstrations per mode (95% intervals), the shipped policy as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, ax_l1) = plt.subplots(1, 2, figsize=(11, 4))
    for mode in MODES:
        rows = sorted(
            (int(k.split("/")[0]), v) for k, v in study["cells"].items() if k.split("/")[1] == mode
        )
        if not rows:
            continue
        xs = [n for n, _ in rows]
        ys = [100 * v["rate"] for _, v in rows]
        err = [
            [max(0.0, 100 * (v["rate"] - v["ci95"][0])) for _, v in rows],
            [max(0.0, 100 * (v["ci95"][1] - v["rate"])) for _, v in rows],
        ]
        ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=mode)
        l1 = [(n, 100 * v["L1_task_average"]) for n, v in rows if "L1_task_average" in v]
        if l1:
            ax_l1.plot(*zip(*l1, strict=True), marker="o", label=mode)
    if "baseline" in study:
        ax.axhline(100 * study["baseline"]["rate"], color="grey", ls="--", label="shipped policy")
        if "L1_task_average" in study["baseline"]:
            ax_l1.axhline(
                100 * study["baseline"]["L1_task_average"],
                color="grey",
                ls="--",
                label="shipped policy",
            )
    for a in (ax, ax_l1):
        a.set_xscale("log")
        a.set_xlabel("demonstrations of the new task")
        a.set_ylim(0, 100)
        a.legend()
    ax.set_ylabel(f"success on {study.get('task')} {study.get('level')} (%)")
    ax.set_title("the new task (95% intervals)")
    ax_l1.set_ylabel("L1 average over the tasks it was trained on (%)")
    ax_l1.set_title("forgetting")
    fig.suptitle("fine-tuning the shipped policy on a task it never saw")
    fig.tight_layout()
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    sys.exit(main())
