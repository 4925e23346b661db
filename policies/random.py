"""Uniform random actions: the floor every learned policy must beat."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from uio2_robot.policies.base import Observation, PromptSegment


class RandomPolicy:
    """Samples each action uniformly from the action space, from its own seeded generator."""

    def __init__(self, seed: int = 0) -> None:
        self._rng = np.random.default_rng(seed)
        self._space: spaces.Box | None = None

    def reset(
        self, prompt: list[PromptSegment], action_space: spaces.Box, env: Any | None = None
    ) -> None:
        self._space = action_space

    def act(self, obs: Observation) -> np.ndarray:
        if self._space is None:
            raise RuntimeError("RandomPolicy.act called before reset")
        low, high = self._space.low, self._space.high
        return self._rng.uniform(low, high).astype(np.float32)
