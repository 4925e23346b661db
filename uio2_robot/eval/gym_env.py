"""Any registered gymnasium env, seen by a policy as the store it was trained on saw it.

``record_episodes`` stores a gymnasium env's observation as `flatten_obs` makes it (dict keys
kept, an array observation under "obs") plus, with ``render=True``, ``env.render()`` under
"render". `StoreObservation` hands a policy exactly that dict at every step, built by the same
functions (`uio2_robot.trajectories.rollout.with_render`, ``recorder.flatten_obs``), so a
checkpoint trained on a recording reads a live env through the keys it was trained on. This is
what ``uio2-robot rollout env=gym:ID`` evaluates; the episode loop stays the package's one
(`uio2_robot.trajectories.rollout.run_episode`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from uio2_robot.trajectories.recorder import flatten_obs
from uio2_robot.trajectories.rollout import RENDER_KEY, render_frame, with_render

GYM_PREFIX = "gym:"
"""``env=gym:ID`` on the rollout command line names a registered gymnasium env."""


class StoreObservation(gym.ObservationWrapper):
    """Observations as ``record_episodes`` stored them: `flatten_obs` of the env's observation,
    with the rendered frame under "render" when ``render`` is set (taken after every reset and
    step, the frame of the state the policy acts from, as recording takes it)."""

    def __init__(self, env: gym.Env, render: bool, cameras: Sequence[str]) -> None:
        super().__init__(env)
        self.render_frames = render
        self.cameras = tuple(cameras)  # the views a rollout video tiles

    def observation(self, observation: Any) -> dict[str, np.ndarray]:
        frame = render_frame(self.env) if self.render_frames else None
        return flatten_obs(with_render(observation, frame))


def make_gym_env(
    env_id: str,
    cameras: Sequence[str],
    kwargs: Mapping[str, Any] | None = None,
    max_episode_steps: int | None = None,
) -> StoreObservation:
    """``gym.make(env_id, **kwargs)`` wrapped in `StoreObservation`; rendering to RGB arrays is
    switched on when the policy's ``cameras`` include "render" (the recorded frames' key)."""
    kwargs = dict(kwargs or {})
    render = RENDER_KEY in cameras
    if render:
        mode = kwargs.setdefault("render_mode", "rgb_array")
        if mode != "rgb_array":
            raise ValueError(
                f"the policy reads rendered frames ({RENDER_KEY!r}), so the env must render "
                f"rgb_array, but env.kwargs.render_mode is {mode!r}"
            )
    if max_episode_steps is not None:
        kwargs["max_episode_steps"] = int(max_episode_steps)
    try:
        env = gym.make(env_id, **kwargs)
    except gym.error.Error as exc:
        raise ValueError(f"cannot make gymnasium env {env_id!r}: {exc}") from None
    if not isinstance(env.action_space, gym.spaces.Box):
        env.close()
        raise ValueError(
            f"env {env_id!r} has action space {env.action_space}; a UIO2 policy acts in a Box"
        )
    return StoreObservation(env, render, cameras or (RENDER_KEY,))
