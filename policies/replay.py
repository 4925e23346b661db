"""Replay a stored episode's actions open loop: to re-run a demonstration or a deployed episode
in the sim (does the same seed give the same outcome?), or to drive a robot through a recording.

Policies never read stores themselves otherwise, so this is the one policy that depends on the
trajectory store; it is imported only when asked for by name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces

from uio2_robot.policies.base import Observation, PromptSegment


class ReplayPolicy:
    """Returns episode ``episode`` of ``store``'s actions, one per ``act``; holds (zeros) after."""

    def __init__(self, store: str | Path, episode: int = 0) -> None:
        from uio2_robot.trajectories import EpisodeStore

        with EpisodeStore.open(store) as st:
            if not 0 <= episode < st.n_episodes:
                raise ValueError(
                    f"episode {episode} is not in {store} (it holds {st.n_episodes} episodes)"
                )
            self.actions = np.asarray(st.episode(episode, keys=["action"]).steps["action"])
            self.meta = st.episode_meta(episode)
        self._i = 0
        self._space: spaces.Box | None = None

    def reset(
        self, prompt: list[PromptSegment], action_space: spaces.Box, env: Any | None = None
    ) -> None:
        if tuple(action_space.shape) != self.actions.shape[1:]:
            raise ValueError(
                f"the stored actions are {self.actions.shape[1:]}-dimensional "
                f"({self.meta.get('action_mode', '?')} mode) but the env acts in shape "
                f"{action_space.shape}"
            )
        self._space = action_space
        self._i = 0

    def act(self, obs: Observation) -> np.ndarray:
        if self._space is None:
            raise RuntimeError("ReplayPolicy.act called before reset")
        if self._i >= len(self.actions):
            return np.zeros(self._space.shape, np.float32)
        action = self.actions[self._i].astype(np.float32)
        self._i += 1
        return action
