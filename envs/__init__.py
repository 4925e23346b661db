"""The MuJoCo tabletop suite: VIMA-Bench style tasks in two action modes.

Public API::

    from uio2_robot.envs import make_env, TASKS, TRAIN_TASKS, HELDOUT_TASKS, levels_for, Oracle
    env = make_env("visual_manipulation", level="L1", action_mode="delta")

Importing this package registers the gymnasium id ``"uio2_robot/Tabletop-v0"``
(``gymnasium.make("uio2_robot/Tabletop-v0", task=..., level=..., action_mode=...)``).
"""

from __future__ import annotations

import os

# Offscreen rendering needs EGL on headless machines, and MuJoCo reads this when it is first
# imported: default it here so every importer (spawned workers included) gets a working renderer.
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])

import gymnasium as gym  # noqa: E402

from .levels import HELDOUT_TASKS, LEVEL_TASKS  # noqa: E402
from .oracle import Oracle, oracle_action  # noqa: E402
from .spaces import DEFAULT_CONTROL_HZ  # noqa: E402
from .tabletop import TabletopEnv  # noqa: E402
from .tasks import TASK_CLASSES  # noqa: E402
from .vector import make_vector_env  # noqa: E402

ENV_ID = "uio2_robot/Tabletop-v0"
TASKS: tuple[str, ...] = tuple(TASK_CLASSES)
TRAIN_TASKS: tuple[str, ...] = tuple(t for t in TASKS if t not in HELDOUT_TASKS)


def levels_for(task: str) -> tuple[str, ...]:
    """The levels a task is evaluated at (VIMA's partitions: L1-L3 for most, L1-L2
    sweep_without_exceeding, L4 the four held-out tasks)."""
    if task not in TASK_CLASSES:
        raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")
    return TASK_CLASSES[task].levels


def make_env(
    task: str,
    level: str = "L1",
    action_mode: str = "primitive",
    image_size: int | tuple[int, int] = 128,
    cameras: tuple[str, ...] = ("front", "top"),
    segmentation: bool = False,
    control_hz: float = DEFAULT_CONTROL_HZ,
    max_steps: int | None = None,
    render_mode: str | None = None,
    embodiment: str = "floating",
) -> gym.Env:
    """Build any task at any of its levels in either action mode (see ``TabletopEnv``).

    Returned unwrapped (no TimeLimit/OrderEnforcing): the env truncates at ``max_steps`` itself
    and ``env.unwrapped`` is the env. Unknown task, level or mode raise ValueError listing the
    valid ones. ``embodiment="arm"`` puts a simulated UR5e in place of the floating tool.
    """
    return TabletopEnv(
        task=task,
        level=level,
        action_mode=action_mode,
        image_size=image_size,
        cameras=cameras,
        segmentation=segmentation,
        control_hz=control_hz,
        max_steps=max_steps,
        render_mode=render_mode,
        embodiment=embodiment,
    )


if ENV_ID not in gym.registry:
    gym.register(
        id=ENV_ID, entry_point="uio2_robot.envs.tabletop:TabletopEnv", disable_env_checker=True
    )

__all__ = [
    "ENV_ID",
    "HELDOUT_TASKS",
    "LEVEL_TASKS",
    "TASKS",
    "TRAIN_TASKS",
    "Oracle",
    "TabletopEnv",
    "levels_for",
    "make_env",
    "make_vector_env",
    "oracle_action",
]
