"""The `uio2-robot rollout` command: config in, report out."""

from __future__ import annotations

import os
from typing import Any

from omegaconf import DictConfig, OmegaConf

from uio2_robot.envs.levels import resolve_levels
from uio2_robot.errors import UsageError


def policy_kwargs(cfg: DictConfig) -> dict[str, Any]:
    """Policy options from ``cfg.policy`` with the top-level ``checkpoint``/``bundle`` shorthands."""
    kwargs: dict[str, Any] = OmegaConf.to_container(cfg.policy, resolve=True)  # type: ignore[assignment]
    for key in ("checkpoint", "bundle"):
        if cfg.get(key) is not None:
            kwargs[key] = cfg[key]
    if kwargs.get("checkpoint") and kwargs.get("name") in ("default", "oracle"):
        kwargs["name"] = "uio2"
    if kwargs.get("bundle") and kwargs.get("name") in ("default", "oracle"):
        kwargs["name"] = "onnx"
    return kwargs


def run_rollout_command(cfg: DictConfig) -> int:
    """Run the rollout described by ``cfg``; print the table; write ``eval_info.json`` and videos."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    from uio2_robot.envs import make_env
    from uio2_robot.eval.rollout import evaluate
    from uio2_robot.policies.factory import make_policy

    kwargs = policy_kwargs(cfg)
    try:
        levels_by_task = resolve_levels(list(cfg.tasks), list(cfg.levels))
        policy = make_policy(kwargs.pop("name"), **kwargs)
    except (ValueError, FileNotFoundError) as exc:
        raise UsageError(str(exc)) from None

    check_seeds = getattr(policy, "check_eval_seeds", None)
    env_cfg = cfg.env

    def build(task: str, level: str) -> Any:
        return make_env(
            task,
            level,
            action_mode=env_cfg.action_mode,
            image_size=int(env_cfg.image_size),
            cameras=tuple(env_cfg.cameras),
            control_hz=float(env_cfg.control_hz),
        )

    if check_seeds is not None:
        try:
            check_seeds(int(cfg.seed), levels_by_task, int(cfg.episodes))
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    name = str(cfg.policy.name)
    report = evaluate(
        policy,
        build,
        list(levels_by_task),
        levels_by_task,
        episodes=int(cfg.episodes),
        seed=int(cfg.seed),
        policy_name=name,
        action_mode=str(env_cfg.action_mode),
        out_dir=cfg.out,
        n_videos=int(cfg.videos),
        progress=bool(cfg.progress),
    )
    print(report.table())
    if cfg.out is not None:
        print(
            f"wrote {cfg.out}/eval_info.json, {cfg.out}/success.png and videos in {cfg.out}/videos"
        )
    return 0
