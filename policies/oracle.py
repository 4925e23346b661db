"""The scripted oracle as a `Policy`: privileged simulator state, sim only.

It is the demonstrator for `uio2-robot collect` and the ceiling a learned policy is compared to.
It needs the env itself (``reset(..., env=env.unwrapped)``). A real robot has no such thing; the
deploy server can still serve it to the `sim` driver by replaying the robot's commands on a sim
twin of the same seeded episode (`uio2_robot.deploy.twin`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from uio2_robot.contracts import PRIMITIVE_ACTION_NAMES
from uio2_robot.policies.base import Observation, PromptSegment


class OraclePolicy:
    """Wraps `uio2_robot.envs.oracle.Oracle` in the Policy contract."""

    def __init__(self) -> None:
        from uio2_robot.envs.oracle import Oracle

        self._oracle = Oracle()
        self._ready = False
        self._primitive = False

    def reset(
        self, prompt: list[PromptSegment], action_space: spaces.Box, env: Any | None = None
    ) -> None:
        if env is None:
            raise ValueError(
                "the oracle policy reads privileged simulator state: pass env= to reset "
                "(it cannot drive a real robot or a remote client)"
            )
        self._oracle.reset(env)
        self._primitive = tuple(action_space.shape) == (len(PRIMITIVE_ACTION_NAMES),)
        self._ready = True

    def act(self, obs: Observation) -> np.ndarray:
        if not self._ready:
            raise RuntimeError("OraclePolicy.act called before reset")
        if self._primitive:  # whole primitives, also on a delta-mode sim twin
            return self._oracle.primitive_action()
        return self._oracle.act(obs)
