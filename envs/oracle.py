"""The scripted oracle: solves every task in both action modes from privileged simulator state.

It asks the task for the next VIMA primitive (``Task.oracle``, which reads true object poses) and
- in primitive mode returns it as the action;
- in delta mode executes it with :class:`~uio2_robot.envs.motion.PrimitiveFollower`, a
  closed-loop waypoint / P controller on the observed proprio, one delta action per control step,
  re-planning from the new state after each primitive.

Usage (e.g. wrapped as a ``Policy``)::

    oracle = Oracle()
    obs, info = env.reset(seed=0)
    oracle.reset(env)
    action = oracle.act(obs)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from uio2_robot.motion.primitive import Primitive, PrimitiveFollower

from .shapes import shape
from .spaces import WORKSPACE_X, WORKSPACE_Y


class Oracle:
    """Privileged expert for one env; call :meth:`reset` after every ``env.reset``."""

    def __init__(self) -> None:
        self._env: Any = None
        self._follower: PrimitiveFollower | None = None

    def reset(self, env: Any) -> None:
        """Attach to ``env`` (any wrapper; the oracle reads ``env.unwrapped``) for a new episode."""
        self._env = env.unwrapped
        self._follower = None

    def act(self, obs: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """The next action (float32, shape of the env's action space)."""
        env = self._env
        if env is None or env.episode is None:
            raise RuntimeError("Oracle.act called before Oracle.reset(env) on a reset env")
        if env.action_mode == "primitive":
            return self.primitive_action()
        proprio = obs["proprio"] if obs is not None else env.sim.proprio()
        if self._follower is None or self._follower.done:
            prim = env.task.oracle(env.sim, env.episode)
            if prim is None:  # nothing left to do: hold still with the tool off
                return np.zeros(len(env.action_names), dtype=np.float32)
            self._follower = PrimitiveFollower(prim, env.control_hz)
        return self._follower.act(proprio)

    def primitive_action(self) -> np.ndarray:
        """The next whole primitive as a primitive-mode action, in either env mode (a robot
        that executes primitives itself runs on a delta-mode sim twin)."""
        env = self._env
        if env is None or env.episode is None:
            raise RuntimeError("Oracle.primitive_action called before Oracle.reset(env)")
        prim = env.task.oracle(env.sim, env.episode) or idle_primitive(env)
        return prim.as_action()


def idle_primitive(env: Any) -> Primitive:
    """A harmless primitive at the table spot farthest from every object (used when done)."""
    best, best_d = (0.5, 0.0), -1.0
    poses = [(env.sim.pose(p), shape(p.shape).radius) for p in env.episode.objects]
    for x in np.linspace(WORKSPACE_X[0] + 0.03, WORKSPACE_X[1] - 0.03, 9):
        for y in np.linspace(WORKSPACE_Y[0] + 0.03, WORKSPACE_Y[1] - 0.03, 17):
            d = min((math.hypot(x - p[0], y - p[1]) - r for p, r in poses), default=1.0)
            if d > best_d:
                best, best_d = (float(x), float(y)), d
    kind = "push" if env.task.tool == "spatula" else "pick_place"
    x, y = best
    return Primitive(kind, x, y, 0.0, x + (0.01 if kind == "push" else 0.0), y, 0.0)


def oracle_action(env: Any, obs: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """Stateless-looking helper: the oracle's next action for ``env``'s current episode.

    Keeps one :class:`Oracle` on the env and re-attaches it when a new episode starts, so it can be
    called step after step in delta mode (where the oracle has internal waypoint state).
    """
    u = env.unwrapped
    cached = getattr(u, "_oracle_cache", None)
    if cached is None or cached[0] is not u.episode:
        oracle = Oracle()
        oracle.reset(env)
        u._oracle_cache = (u.episode, oracle)
    return u._oracle_cache[1].act(obs)
