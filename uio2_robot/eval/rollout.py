"""Closed-loop rollouts of a policy over tasks x levels, with success statistics and videos.

This is the main job of the package (`uio2-robot rollout`): every policy, torch, ONNX or
scripted, runs through the same loop, so numbers from different policies are comparable.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from uio2_robot.eval.stats import wilson_interval
from uio2_robot.eval.video import caption, tile_views, write_mp4
from uio2_robot.policies.base import Policy, check_action
from uio2_robot.seeding import episode_seed
from uio2_robot.trajectories.rollout import EpisodeRun, SuccessFn, default_success
from uio2_robot.trajectories.rollout import run_episode as run_loop


@dataclass
class EpisodeResult:
    """The outcome of one closed-loop episode."""

    task: str
    level: str
    seed: int
    success: bool
    steps: int
    failure: str | None
    seconds: float


@dataclass
class CellResult:
    """Success over the episodes of one (task, level) pair, with its 95% Wilson interval."""

    task: str
    level: str
    episodes: int
    successes: int
    success_rate: float
    ci95_low: float
    ci95_high: float
    seeds: list[int] = field(default_factory=list)


@dataclass
class EvalReport:
    """Everything `eval_info.json` holds."""

    policy: str
    action_mode: str
    cells: list[CellResult]
    episodes: list[EpisodeResult]
    wall_seconds: float

    def summary_by_level(self) -> dict[str, dict[str, float]]:
        """Average success over tasks per level (each task weighted equally, as VIMA reports)."""
        out: dict[str, dict[str, float]] = {}
        for level in sorted({c.level for c in self.cells}):
            cells = [c for c in self.cells if c.level == level]
            succ = sum(c.successes for c in cells)
            eps = sum(c.episodes for c in cells)
            low, high = wilson_interval(succ, eps)
            out[level] = {
                "task_average": float(np.mean([c.success_rate for c in cells])),
                "successes": succ,
                "episodes": eps,
                "ci95_low": low,
                "ci95_high": high,
            }
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "action_mode": self.action_mode,
            "results": [asdict(c) for c in self.cells],
            "levels": self.summary_by_level(),
            "episodes": [asdict(e) for e in self.episodes],
            "wall_seconds": self.wall_seconds,
        }

    def table(self) -> str:
        """A plain-text table of success per task and level, with VIMA-200M's published
        per-task success beside it (PyBullet VIMA-Bench; "-" where it published none)."""
        from uio2_robot.envs.levels import VIMA_200M, VIMA_200M_LEVEL_MEANS

        def vima(value: float | None) -> str:
            return f"{value:>10.1f}%" if value is not None else f"{'-':>11}"

        lines = [f"{'task':<28}{'level':<7}{'success':>12}{'rate':>8}   95% CI{'VIMA-200M':>22}"]
        for c in self.cells:
            lines.append(
                f"{c.task:<28}{c.level:<7}{f'{c.successes}/{c.episodes}':>12}"
                f"{c.success_rate:>8.1%}   {f'[{c.ci95_low:.1%}, {c.ci95_high:.1%}]':<16}"
                f"{vima(VIMA_200M.get(c.task, {}).get(c.level))}"
            )
        for level, s in self.summary_by_level().items():
            count = f"{s['successes']}/{s['episodes']}"
            ci = f"[{s['ci95_low']:.1%}, {s['ci95_high']:.1%}]"
            lines.append(
                f"{'average (tasks)':<28}{level:<7}{count:>12}{s['task_average']:>8.1%}   {ci:<16}"
                f"{vima(VIMA_200M_LEVEL_MEANS.get(level))}"
            )
        return "\n".join(lines)


def run_episode(
    env: Any,
    policy: Policy,
    seed: int,
    frames: list[np.ndarray] | None = None,
    max_steps: int | None = None,
    on_step: Callable[[Any, np.ndarray, float, dict, Any], None] | None = None,
    success_fn: SuccessFn = default_success,
) -> tuple[EpisodeResult, EpisodeRun]:
    """Run ``policy`` for one episode through the package's one loop
    (`uio2_robot.trajectories.rollout.run_episode`); return its result and the run (whose
    ``reset_info`` and ``final_info`` a caller may read more from).

    ``frames`` collects tiled, captioned camera views for a video; ``on_step`` is the loop's
    hook (``(obs, action, reward, info, next_obs)``, ``obs`` the one the action came from).
    Success is ``success_fn`` of the last info (the recording rule,
    `uio2_robot.trajectories.rollout.info_success`, unless given); an env with no
    ``info["prompt"]`` (any gymnasium env) gives the policy the empty prompt it was recorded with.
    """
    try:  # the suite env's views, or those of a gymnasium env's `StoreObservation` wrapper
        cameras = env.get_wrapper_attr("cameras")
    except AttributeError:
        cameras = ("front", "top")
    text = ""

    def start(obs: Any, info: dict[str, Any]) -> None:
        nonlocal text
        policy.reset(list(info.get("prompt", [])), env.action_space, env=env.unwrapped)
        text = str(info.get("prompt_text", ""))
        if frames is not None:
            frames.append(caption(tile_views(obs, cameras), text))

    def stepped(obs: Any, action: Any, reward: float, info: Any, next_obs: Any) -> None:
        if frames is not None:
            frames.append(caption(tile_views(next_obs, cameras), text))
        if on_step is not None:
            on_step(obs, action, reward, info, next_obs)

    run = run_loop(
        env,
        lambda obs, _info: check_action(policy.act(obs), env.action_space),
        seed=int(seed),
        on_reset=start,
        on_step=stepped,
        max_steps=max_steps,
        success_fn=success_fn,
    )
    result = EpisodeResult(
        task=str(run.reset_info.get("task", "")),
        level=str(run.reset_info.get("level", "")),
        seed=int(seed),
        success=run.success,
        steps=run.steps,
        failure=run.failure,
        seconds=run.seconds,
    )
    return result, run


def evaluate(
    policy: Policy,
    make_env: Callable[[str, str], Any],
    tasks: Sequence[str],
    levels_by_task: dict[str, Sequence[str]],
    episodes: int,
    seed: int,
    policy_name: str = "policy",
    action_mode: str = "primitive",
    out_dir: str | Path | None = None,
    n_videos: int = 3,
    progress: bool = True,
    on_episode: Callable[[EpisodeResult, EpisodeRun], None] | None = None,
    success_fn: SuccessFn = default_success,
) -> EvalReport:
    """Roll ``policy`` out for ``episodes`` seeded episodes per (task, level).

    Seeds come from `uio2_robot.seeding.episode_seed(seed, task, level, i)`, so the same ``seed``
    gives the same episodes, whatever policy runs them. ``success_fn`` reads each episode's
    last info (default: ``is_success`` or ``success``, whichever the env reports).
    """
    if episodes <= 0:
        raise ValueError(f"episodes must be positive, got {episodes}")
    out = Path(out_dir) if out_dir is not None else None
    pairs = [(t, lvl) for t in tasks for lvl in levels_by_task[t]]
    if not pairs:
        raise ValueError("no (task, level) pair to evaluate: check tasks and levels")
    started = time.perf_counter()
    cells: list[CellResult] = []
    results: list[EpisodeResult] = []
    bar = tqdm(total=len(pairs) * episodes, disable=not progress, desc="rollout", unit="ep")
    for task, level in pairs:
        env = make_env(task, level)
        try:
            successes, seeds = 0, []
            for i in range(episodes):
                ep_seed = episode_seed(seed, task, level, i)
                frames: list[np.ndarray] | None = [] if out is not None and i < n_videos else None
                result, run = run_episode(
                    env, policy, ep_seed, frames=frames, success_fn=success_fn
                )
                if not result.task:  # an env that does not report its task (any gymnasium env)
                    result.task, result.level = task, level
                results.append(result)
                seeds.append(ep_seed)
                successes += int(result.success)
                if frames:
                    fps = float(getattr(env.unwrapped, "control_hz", 10.0))
                    fps = 2.0 if action_mode == "primitive" else fps
                    tag = "ok" if result.success else "fail"
                    write_mp4(frames, out / "videos" / f"{task}_{level}_{i:03d}_{tag}.mp4", fps)
                if on_episode is not None:
                    on_episode(result, run)
                bar.update(1)
                bar.set_postfix_str(f"{task}/{level} {successes}/{i + 1}")
        finally:
            env.close()
        low, high = wilson_interval(successes, episodes)
        cells.append(
            CellResult(task, level, episodes, successes, successes / episodes, low, high, seeds)
        )
    bar.close()
    report = EvalReport(policy_name, action_mode, cells, results, time.perf_counter() - started)
    if out is not None:
        write_report(report, out)
    return report


def write_report(report: EvalReport, out_dir: str | Path) -> Path:
    """Write ``eval_info.json`` and a PNG chart of success by task and level into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "eval_info.json"
    path.write_text(json.dumps(report.to_dict(), indent=2))
    plot_success(report, out / "success.png")
    return path


def plot_success(report: EvalReport, path: str | Path) -> Path:
    """Bar chart of success rate per task, one bar per level, with 95% Wilson error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(c.task for c in report.cells))
    levels = sorted({c.level for c in report.cells})
    width = 0.8 / max(1, len(levels))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(tasks)), 3.6))
    for j, level in enumerate(levels):
        xs, ys, lo, hi = [], [], [], []
        for i, task in enumerate(tasks):
            cell = next((c for c in report.cells if c.task == task and c.level == level), None)
            if cell is None:
                continue
            xs.append(i + (j - (len(levels) - 1) / 2) * width)
            ys.append(cell.success_rate * 100)
            # max(0, .): the interval's ends can miss the rate by a rounding error
            lo.append(max(0.0, cell.success_rate - cell.ci95_low) * 100)
            hi.append(max(0.0, cell.ci95_high - cell.success_rate) * 100)
        ax.bar(xs, ys, width, yerr=[lo, hi], capsize=2, label=level or "all")  # gym: no level
    ax.set_xticks(range(len(tasks)), tasks, rotation=25, ha="right", fontsize=8)
    ax.set_ylabel("success %")
    ax.set_ylim(0, 105)
    ax.set_title(f"{report.policy} ({report.action_mode} mode), 95% Wilson intervals", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
