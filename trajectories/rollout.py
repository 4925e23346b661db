"""Run one episode of a gymnasium env with a callable controller and record it.

Shared by ``collect`` (suite envs + registered policies, in worker processes) and
``record_episodes`` (any env + any expert), so both write exactly the same format.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from uio2_robot.trajectories.episode import Episode
from uio2_robot.trajectories.errors import StoreError
from uio2_robot.trajectories.recorder import Recorder

RENDER_KEY = "render"
ActFn = Callable[[Any, dict[str, Any]], Any]


def cast_action(action: Any, space: gym.Space) -> np.ndarray:
    """The controller's action as the array that is stored and sent to the env: Box actions in
    the space's dtype and shape, Discrete actions as an int64 scalar."""
    if isinstance(space, spaces.Box):
        arr = np.asarray(action, dtype=space.dtype)
        if arr.shape != space.shape:
            if arr.size != int(np.prod(space.shape)):
                raise StoreError(f"action has shape {arr.shape}, expected {space.shape}")
            arr = arr.reshape(space.shape)
        return arr
    if isinstance(space, spaces.Discrete):
        arr = np.asarray(action)
        if arr.size != 1 or not np.issubdtype(arr.dtype, np.integer):
            raise StoreError(f"action {action!r} is not one integer, expected an int for {space}")
        return np.int64(arr.reshape(()))  # type: ignore[return-value]
    raise StoreError(f"action space {space} is not supported; expected a Box or a Discrete space")


def default_success(info: Mapping[str, Any], terminated: bool, truncated: bool) -> bool:
    """``info["is_success"]`` of the last step (gymnasium's convention); False if absent."""
    return bool(info.get("is_success", False))


def run_episode(
    env: gym.Env,
    act: ActFn,
    *,
    seed: int | None,
    meta: Mapping[str, Any],
    on_reset: Callable[[Any, dict[str, Any]], None] | None = None,
    max_steps: int | None = None,
    render: bool = False,
    success_fn: Callable[[Mapping[str, Any], bool, bool], bool] = default_success,
) -> Episode:
    """Reset with ``seed``, then step ``act(obs, info)`` until the env terminates or truncates
    (or ``max_steps``). The prompt is taken from ``info["prompt"]`` at reset (empty if the env
    has none). ``render=True`` also stores ``env.render()`` frames under the key "render"."""
    recorder = Recorder()
    obs, info = env.reset(seed=seed)
    recorder.start(list(info.get("prompt", [])), {**meta, "seed": seed})
    if on_reset is not None:
        on_reset(obs, info)
    terminated = truncated = False
    steps = 0
    while not (terminated or truncated) and (max_steps is None or steps < max_steps):
        action = cast_action(act(obs, info), env.action_space)
        if render:
            frame = env.render()
            if not isinstance(frame, np.ndarray):
                raise StoreError(
                    f"env.render() returned {type(frame).__name__}; expected an RGB array "
                    f"(make the env with render_mode='rgb_array')"
                )
            obs = (
                {**obs, RENDER_KEY: frame}
                if isinstance(obs, Mapping)
                else {"obs": obs, RENDER_KEY: frame}
            )
        next_obs, reward, terminated, truncated, info = env.step(action)
        recorder.add(obs, action, reward=float(reward))
        obs = next_obs
        steps += 1
    return recorder.finish(success_fn(info, bool(terminated), bool(truncated)))
