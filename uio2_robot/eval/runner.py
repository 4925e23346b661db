"""The `uio2-robot rollout` command: config in, report out."""

from __future__ import annotations

import os
from typing import Any

from omegaconf import DictConfig, OmegaConf

from uio2_robot.envs.levels import resolve_levels
from uio2_robot.errors import UsageError
from uio2_robot.trajectories.rollout import success_rule


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


def gym_task(env_id: str, tasks: list[str]) -> dict[str, list[str]]:
    """The one (task, level) cell of a gymnasium env: the task as it was recorded (``tasks=
    [NAME]``; default the env id, ``record_episodes``' own default) and the empty level."""
    if len(tasks) > 1:
        raise ValueError(
            f"env=gym:{env_id} runs one env; give at most one task name (tasks=[NAME], the name "
            f"it was recorded under), got {tasks}"
        )
    return {tasks[0] if tasks else env_id: [""]}


def gym_env_for(policy: Any, env_cfg: DictConfig) -> Any:
    """The gymnasium env of ``env_cfg.id``, observed through the policy's camera keys."""
    from uio2_robot.eval.gym_env import make_gym_env

    processor = getattr(policy, "processor", None)
    cameras = tuple(processor.camera_keys) if processor is not None else ()
    kwargs = OmegaConf.to_container(env_cfg.kwargs, resolve=True)
    steps = env_cfg.max_episode_steps
    return make_gym_env(
        str(env_cfg.id),
        cameras,
        kwargs,
        None if steps is None else int(steps),  # type: ignore[arg-type]
    )


def run_rollout_command(cfg: DictConfig) -> int:
    """Run the rollout described by ``cfg``; print the table; write ``eval_info.json`` and videos."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    from uio2_robot.envs import make_env
    from uio2_robot.eval.rollout import evaluate
    from uio2_robot.policies.factory import make_policy

    kwargs = policy_kwargs(cfg)
    env_cfg = cfg.env
    try:
        if env_cfg.id is None:
            levels_by_task = resolve_levels(list(cfg.tasks), list(cfg.levels))
        else:
            levels_by_task = gym_task(env_cfg.id, list(cfg.tasks))
        name = str(kwargs.pop("name"))  # "uio2" for checkpoint=, "onnx" for bundle=
        policy = make_policy(name, **kwargs)
    except (ValueError, FileNotFoundError) as exc:
        raise UsageError(str(exc)) from None

    check_seeds = getattr(policy, "check_eval_seeds", None)
    success_fn = success_rule(env_cfg.success_key)

    def build(task: str, level: str) -> Any:
        if env_cfg.id is not None:
            return gym_env_for(policy, env_cfg)
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
    report = evaluate(
        policy,
        build,
        list(levels_by_task),
        levels_by_task,
        episodes=int(cfg.episodes),
        seed=int(cfg.seed),
        policy_name=name,
        action_mode=str(env_cfg.action_mode) if env_cfg.id is None else "gym",
        out_dir=cfg.out,
        n_videos=int(cfg.videos),
        progress=bool(cfg.progress),
        success_fn=success_fn,
    )
    print(report.table())
    if cfg.out is not None:
        print(
            f"wrote {cfg.out}/eval_info.json, {cfg.out}/success.png and videos in {cfg.out}/videos"
        )
    return 0
