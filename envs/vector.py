"""Vectorised tabletop envs that are safe to start after this process has rendered.

gymnasium's AsyncVectorEnv forks its workers by default; a worker forked from a process that
already holds an EGL context hangs when it renders. ``make_vector_env`` picks the "forkserver"
start method in that case (workers then start from a clean process; scripts need the usual
``if __name__ == "__main__":`` guard) and plain fork otherwise, which needs no guard.
"""

from __future__ import annotations

import functools
from typing import Any

import gymnasium as gym

from .render import forked_after_rendering, rendered_in_this_process
from .tabletop import TabletopEnv


def _build(kwargs: dict[str, Any]) -> gym.Env:
    return TabletopEnv(**kwargs)


def make_vector_env(
    task: str,
    num_envs: int,
    *,
    asynchronous: bool = True,
    context: str | None = None,
    **env_kwargs: Any,
) -> gym.vector.VectorEnv:
    """``num_envs`` copies of ``make_env(task, **env_kwargs)`` in a gymnasium vector env.

    ``context`` overrides the multiprocessing start method of the async version.
    """
    if not isinstance(num_envs, int) or num_envs < 1:
        raise ValueError(f"num_envs must be a positive int, got {num_envs!r}")
    kwargs = {"task": task, **env_kwargs}
    TabletopEnv(
        **kwargs
    ).close()  # validate the arguments here, with a clear error, not in a worker
    fns = [functools.partial(_build, kwargs) for _ in range(num_envs)]
    if not asynchronous:
        return gym.vector.SyncVectorEnv(fns)
    if context is None and (rendered_in_this_process() or forked_after_rendering()):
        context = "forkserver"
    return gym.vector.AsyncVectorEnv(fns, context=context)
