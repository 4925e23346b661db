"""The one episode loop: reset with a seed, step a controller to the end, report what happened.

Every closed-loop episode in the package runs through `run_episode`: evaluation
(`uio2_robot.eval.rollout`), collection (``collect``), recording any gymnasium env
(``record_episodes``), export parity's recorded observations and the oracle measurement. What
differs between them (a policy or an expert, a recorder, video frames, a step cap) comes in as
the controller and the hooks, so the loop itself cannot drift between jobs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from uio2_robot.gl_guard import load_triton_before_gl
from uio2_robot.trajectories.episode import Episode
from uio2_robot.trajectories.errors import StoreError
from uio2_robot.trajectories.recorder import OBS_KEY, Recorder

RENDER_KEY = "render"
ActFn = Callable[[Any, dict[str, Any]], Any]
"""A controller: ``act(obs, info) -> action`` (``info`` is the last step's, or reset's)."""
SuccessFn = Callable[[Mapping[str, Any], bool, bool], bool]


@dataclass
class EpisodeRun:
    """What one run of `run_episode` saw: its outcome, and the infos a caller may read more of."""

    seed: int | None
    steps: int
    success: bool
    failure: str | None
    seconds: float
    reset_info: dict[str, Any]
    final_info: dict[str, Any]


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


SUCCESS_KEYS = ("is_success", "success")
"""Where envs report success in ``info``: gymnasium's convention (``is_success``, the suite,
gymnasium-robotics) and Meta-World's (``success``). One rule for recording and evaluation."""


def info_success(info: Mapping[str, Any], key: str | None = None) -> bool:
    """Success as ``info`` reports it: ``info[key]`` when a key is configured (an error if the
    env does not report it: a misspelt key must not read as 0% success), otherwise the first of
    `SUCCESS_KEYS` the env reports, and False if it reports none."""
    if key is not None:
        if key not in info:
            raise StoreError(
                f"the env's info has no success key {key!r}; it has {sorted(info)} "
                f"(leave the success key unset to read the first of {SUCCESS_KEYS})"
            )
        return bool(info[key])
    for name in SUCCESS_KEYS:
        if name in info:
            return bool(info[name])
    return False


def default_success(info: Mapping[str, Any], terminated: bool, truncated: bool) -> bool:
    """`info_success` of the last step's info with no configured key."""
    return info_success(info)


def success_rule(key: str | None = None) -> SuccessFn:
    """The `SuccessFn` that reads ``key`` (None: whichever of `SUCCESS_KEYS` the env reports)."""
    if key is None:
        return default_success
    return lambda info, _terminated, _truncated: info_success(info, key)


def render_frame(env: gym.Env) -> np.ndarray:
    """``env.render()``, which must be an RGB array (what recording and evaluation store)."""
    load_triton_before_gl()  # the env may create its first EGL context here
    frame = env.render()
    if not isinstance(frame, np.ndarray):
        raise StoreError(
            f"env.render() returned {type(frame).__name__}; expected an RGB array "
            f"(make the env with render_mode='rgb_array')"
        )
    return frame


def with_render(obs: Any, frame: np.ndarray | None) -> Any:
    """The observation as it is stored with a rendered frame: a dict observation gains the key
    "render", an array one becomes ``{"obs": obs, "render": frame}``. Recording and the
    evaluation of a policy trained on the recording build its inputs through here."""
    if frame is None:
        return obs
    return (
        {**obs, RENDER_KEY: frame}
        if isinstance(obs, Mapping)
        else {OBS_KEY: obs, RENDER_KEY: frame}
    )


def run_episode(
    env: gym.Env,
    act: ActFn,
    *,
    seed: int | None,
    on_reset: Callable[[Any, dict[str, Any]], None] | None = None,
    on_step: Callable[[Any, np.ndarray, float, dict[str, Any], Any], None] | None = None,
    max_steps: int | None = None,
    success_fn: SuccessFn = default_success,
) -> EpisodeRun:
    """Reset with ``seed``, then step ``act(obs, info)`` until the env terminates or truncates
    (or ``max_steps`` steps are taken).

    ``on_reset(obs, info)`` runs once after the reset (a policy takes its prompt there);
    ``on_step(obs, action, reward, info, next_obs)`` after every step, with the observation the
    action was chosen from (a recorder or a video hooks in there).
    """
    start = time.perf_counter()
    obs, info = env.reset(seed=seed)
    reset_info = dict(info)
    if on_reset is not None:
        on_reset(obs, info)
    terminated = truncated = False
    steps = 0
    while not (terminated or truncated) and (max_steps is None or steps < max_steps):
        action = cast_action(act(obs, info), env.action_space)
        next_obs, reward, terminated, truncated, info = env.step(action)
        if on_step is not None:
            on_step(obs, action, float(reward), info, next_obs)
        obs = next_obs
        steps += 1
    return EpisodeRun(
        seed=seed,
        steps=steps,
        success=success_fn(info, bool(terminated), bool(truncated)),
        failure=info.get("failure"),
        seconds=time.perf_counter() - start,
        reset_info=reset_info,
        final_info=dict(info),
    )


def record_episode(
    env: gym.Env,
    act: ActFn,
    *,
    seed: int | None,
    meta: Mapping[str, Any],
    on_reset: Callable[[Any, dict[str, Any]], None] | None = None,
    max_steps: int | None = None,
    render: bool = False,
    success_fn: SuccessFn = default_success,
) -> Episode:
    """`run_episode`, recorded: every (observation, action, reward) and the prompt from
    ``info["prompt"]`` at reset (empty if the env has none). ``render=True`` also stores
    ``env.render()`` frames, taken before each step, under the key "render"."""
    recorder = Recorder()

    def started(obs: Any, info: dict[str, Any]) -> None:
        recorder.start(list(info.get("prompt", [])), {**meta, "seed": seed})
        if on_reset is not None:
            on_reset(obs, info)

    frames: list[np.ndarray | None] = []

    def acting(obs: Any, info: dict[str, Any]) -> Any:
        frames.append(render_frame(env) if render else None)
        return act(obs, info)

    def stepped(obs: Any, action: np.ndarray, reward: float, _info: Any, _next: Any) -> None:
        recorder.add(with_render(obs, frames.pop()), action, reward=reward)

    run = run_episode(
        env,
        acting,
        seed=seed,
        on_reset=started,
        on_step=stepped,
        max_steps=max_steps,
        success_fn=success_fn,
    )
    return recorder.finish(run.success)
