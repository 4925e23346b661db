"""VIMA's two motion primitives as closed-loop delta controllers that read proprio only.

This is the one motion module: the env's primitive mode, the scripted oracle's delta mode and
the robot workstation's control loop (``uio2_robot.deploy.loop``) all execute primitives with
:class:`PrimitiveFollower`, so a primitive moves the sim's floating tool, the simulated arm and a
real arm through the same waypoints.

A primitive (pick-and-place with suction, or a push with the spatula) is a short script of
waypoints. :class:`PrimitiveFollower` turns it into delta commands ``[dx, dy, dz, dyaw, tool]``
one control step at a time, using nothing but what a real arm reports (tool pose, tool command,
suction/contact flag) and the fact that a blocked tool stops moving ("descend until contact" is
detected as the tool no longer following the commanded descent).

The same follower runs in both action modes, so they share one low-level motion:
- primitive mode: the env feeds the policy's two poses in and steps the follower internally;
- delta mode: the scripted oracle chooses poses with privileged state and emits the follower's
  deltas as its actions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from uio2_robot.contracts import (
    DELTA_MAX_STEP_M,
    DELTA_MAX_YAW,
    PRIMITIVE_HIGH,
    PRIMITIVE_LOW,
    WORKSPACE_X,
    WORKSPACE_Y,
    wrap_angle,
)

HOVER_Z = 0.12  # tool tip height for transport moves: clears a held object over any base
PUSH_Z = 0.004  # spatula bottom height while pushing
PUSH_BACKOFF = 0.012  # retreat along the push line before lifting, so the object is not dragged
MAX_SPEED = 0.4  # m/s in free space
DESCEND_SPEED = 0.15  # m/s when approaching contact
PUSH_SPEED = 0.15  # m/s while pushing
YAW_SPEED = 3.0  # rad/s
XY_TOL = 0.002
Z_TOL = 0.005
YAW_TOL = 0.03
PHASE_STEP_LIMIT = 80  # a phase that cannot converge (tool blocked) gives up and moves on


@dataclass(frozen=True)
class Primitive:
    """One VIMA action: two poses. ``kind`` is "pick_place" (suction) or "push" (spatula)."""

    kind: str
    x0: float
    y0: float
    yaw0: float
    x1: float
    y1: float
    yaw1: float

    @classmethod
    def from_action(cls, kind: str, action: np.ndarray) -> Primitive:
        """Build from a primitive-mode action ``[x0, y0, yaw0, x1, y1, yaw1]``."""
        a = [float(v) for v in action]
        return cls(kind, *a)

    def as_action(self) -> np.ndarray:
        """The primitive-mode action vector (float32, shape (6,))."""
        return np.array(
            [self.x0, self.y0, self.yaw0, self.x1, self.y1, self.yaw1], dtype=np.float32
        )

    @property
    def push_yaw(self) -> float:
        """The spatula's heading along the push line (pose1 - pose0)."""
        return math.atan2(self.y1 - self.y0, self.x1 - self.x0)

    def waypoints(self) -> list[tuple[float, float, float, float]]:
        """The tool poses (x, y, z, yaw) the motion passes through, in order.

        What a reachability check must accept before the motion starts: above and at the
        pick (or push start), above and at the place (or push end).
        """
        if self.kind == "push":
            yaw = self.push_yaw
            return [
                (self.x0, self.y0, HOVER_Z, yaw),
                (self.x0, self.y0, PUSH_Z, yaw),
                (self.x1, self.y1, PUSH_Z, yaw),
                (self.x1, self.y1, HOVER_Z, yaw),
            ]
        return [
            (self.x0, self.y0, HOVER_Z, self.yaw0),
            (self.x0, self.y0, 0.0, self.yaw0),
            (self.x1, self.y1, HOVER_Z, self.yaw1),
            (self.x1, self.y1, 0.0, self.yaw1),
        ]


def check_primitive(action: np.ndarray) -> str | None:
    """Why a primitive-mode action cannot be executed (None: it can).

    Finite, six values, both poses inside VIMA's workspace. Unlike the env (which clips, as
    VIMA-Bench does), a robot rejects such an action whole before anything moves.
    """
    arr = np.asarray(action)
    if arr.shape != (6,) or not np.issubdtype(arr.dtype, np.number):
        return f"a primitive is 6 numbers (x0, y0, yaw0, x1, y1, yaw1), got {arr.dtype}{list(arr.shape)}"
    if not np.all(np.isfinite(arr)):
        return f"the primitive contains NaN or Inf: {arr.tolist()}"
    tol = 1e-6
    for name, (x, y) in (("start", arr[0:2]), ("end", arr[3:5])):
        inside = (
            WORKSPACE_X[0] - tol <= x <= WORKSPACE_X[1] + tol
            and WORKSPACE_Y[0] - tol <= y <= WORKSPACE_Y[1] + tol
        )
        if not inside:
            return (
                f"the primitive's {name} ({x:.3f}, {y:.3f}) lies outside the workspace "
                f"x {list(WORKSPACE_X)}, y {list(WORKSPACE_Y)}"
            )
    low, high = PRIMITIVE_LOW.astype(np.float64), PRIMITIVE_HIGH.astype(np.float64)
    yaws = arr[[2, 5]].astype(np.float64)
    if np.any(yaws < low[[2, 5]] - 1e-3) or np.any(yaws > high[[2, 5]] + 1e-3):
        return f"the primitive's yaws {yaws.tolist()} lie outside [-pi, pi]"
    return None


class PrimitiveFollower:
    """Executes one :class:`Primitive` as delta commands; ``done`` turns True at the end.

    ``park``: a tool pose (x, y, z, yaw) to end at, out of the cameras' view. A visible arm
    parks there after every primitive so the next frame shows the scene, not the arm over it
    (VIMA's UR5 leaves the view the same way); the hidden floating tool needs none.
    """

    def __init__(
        self,
        prim: Primitive,
        control_hz: float,
        park: tuple[float, float, float, float] | None = None,
    ) -> None:
        if prim.kind not in ("pick_place", "push"):
            raise ValueError(
                f"unknown primitive kind {prim.kind!r}; expected 'pick_place' or 'push'"
            )
        self.prim = prim
        dt = 1.0 / control_hz
        self.max_step = min(DELTA_MAX_STEP_M, MAX_SPEED * dt)
        self.desc_step = min(DELTA_MAX_STEP_M, DESCEND_SPEED * dt)
        self.push_step = min(DELTA_MAX_STEP_M, PUSH_SPEED * dt)
        self.yaw_step = min(DELTA_MAX_YAW, YAW_SPEED * dt)
        if prim.kind == "push":
            self.push_yaw = prim.push_yaw
            self.phases = ["approach", "descend_push", "push", "backoff", "retreat"]
        else:
            self.phases = [
                "approach",
                "descend_pick",
                "lift",
                "transport",
                "descend_place",
                "release",
                "retreat",
            ]
        self.park = park
        self.home: tuple[float, float, float, float] | None = None
        if park is not None:
            self.phases.append("park")
        self.phase_i = 0
        self.phase_steps = 0
        self._last_z: float | None = None
        self._last_dz = 0.0
        self.steps = 0

    @classmethod
    def start_of_episode(
        cls,
        home: tuple[float, float, float, float],
        park: tuple[float, float, float, float],
        control_hz: float,
    ) -> PrimitiveFollower:
        """A visible arm's episode start: to ``home`` (where the tool rests at an episode's start
        in the suite, so the pose measured there is the one policies were trained with), then to
        ``park``, out of the cameras' view, before the first frame is taken."""
        follower = cls(Primitive("pick_place", *home[:2], 0.0, *home[:2], 0.0), control_hz, park)
        follower.home = home
        follower.phases = ["home", "park"]
        return follower

    @property
    def done(self) -> bool:
        """Whether the whole primitive has been executed."""
        return self.phase_i >= len(self.phases)

    @property
    def phase(self) -> str:
        """Name of the current phase (for debugging and tests)."""
        return self.phases[self.phase_i] if not self.done else "done"

    def _next(self) -> None:
        self.phase_i += 1
        self.phase_steps = 0

    def _to(
        self, cur: np.ndarray, target: tuple[float, float, float, float], step: float, tool: float
    ) -> tuple[np.ndarray, bool]:
        """A capped P-step towards ``target`` and whether ``cur`` is already there."""
        err = np.array(
            [
                target[0] - cur[0],
                target[1] - cur[1],
                target[2] - cur[2],
                wrap_angle(target[3] - cur[3]),
            ]
        )
        arrived = (
            math.hypot(err[0], err[1]) < XY_TOL and abs(err[2]) < Z_TOL and abs(err[3]) < YAW_TOL
        )
        d = err.copy()
        n = math.hypot(d[0], d[1], d[2])
        if n > step:
            d[:3] *= step / n
        d[3] = float(np.clip(d[3], -self.yaw_step, self.yaw_step))
        return np.array([*d, tool], dtype=np.float32), arrived

    def _blocked(self, z: float) -> bool:
        """The last commanded descent was not followed: something is in the way."""
        if self._last_z is None or self._last_dz >= 0:
            return False
        moved = z - self._last_z
        return moved > 0.3 * self._last_dz  # dz < 0: moved less than 30 % of the command

    def act(self, proprio: np.ndarray) -> np.ndarray:
        """The next delta action ``[dx, dy, dz, dyaw, tool]`` given proprio (spaces.PROPRIO_NAMES)."""
        cur = np.asarray(proprio[:4], dtype=np.float64)
        holding = bool(proprio[5] > 0.5) and bool(proprio[4] > 0.5)
        self.steps += 1
        while not self.done:
            self.phase_steps += 1
            act = self._phase_action(cur, holding)
            if act is not None:
                self._last_z, self._last_dz = float(cur[2]), float(act[2])
                return act
            # the phase finished; run the next one in this same control step
        return np.zeros(5, dtype=np.float32)

    def _phase_action(self, cur: np.ndarray, holding: bool) -> np.ndarray | None:
        p, ph = self.prim, self.phase
        give_up = self.phase_steps > PHASE_STEP_LIMIT
        if ph == "approach":
            yaw = self.push_yaw if p.kind == "push" else p.yaw0
            if cur[2] < HOVER_Z - Z_TOL and math.hypot(p.x0 - cur[0], p.y0 - cur[1]) > 0.01:
                act, _ = self._to(cur, (cur[0], cur[1], HOVER_Z, cur[3]), self.max_step, 0.0)
                return act  # rise first: never sweep the table on the way
            act, arrived = self._to(cur, (p.x0, p.y0, HOVER_Z, yaw), self.max_step, 0.0)
            if arrived or give_up:
                self._next()
                return None
            return act
        if ph == "descend_pick":
            if holding or self._blocked(cur[2]) or cur[2] <= 0.001 or give_up:
                self._next()
                return None
            act, _ = self._to(cur, (p.x0, p.y0, cur[2], p.yaw0), self.max_step, 1.0)
            act[2] = -self.desc_step
            return act
        if ph in ("lift", "retreat"):
            tool = 1.0 if ph == "lift" else 0.0
            act, arrived = self._to(cur, (cur[0], cur[1], HOVER_Z, cur[3]), self.max_step, tool)
            if arrived or give_up:
                self._next()
                return None
            return act
        if ph == "transport":
            act, arrived = self._to(cur, (p.x1, p.y1, HOVER_Z, p.yaw1), self.max_step, 1.0)
            if arrived or give_up:
                self._next()
                return None
            return act
        if ph == "descend_place":
            if self._blocked(cur[2]) or cur[2] <= 0.001 or give_up:
                self._next()
                return None
            act, _ = self._to(cur, (p.x1, p.y1, cur[2], p.yaw1), self.max_step, 1.0)
            act[2] = -self.desc_step
            return act
        if ph == "home":
            assert self.home is not None
            act, arrived = self._to(cur, self.home, self.max_step, 0.0)
            if arrived or give_up:
                self._next()
                return None
            return act
        if ph == "park":
            assert self.park is not None
            act, arrived = self._to(cur, self.park, self.max_step, 0.0)
            if arrived or give_up:
                self._next()
                return None
            return act
        if ph == "release":
            self._next()
            return np.zeros(5, dtype=np.float32)  # one still step with suction off
        if ph == "descend_push":
            act, arrived = self._to(cur, (p.x0, p.y0, PUSH_Z, self.push_yaw), self.desc_step, 0.0)
            if arrived or self._blocked(cur[2]) or give_up:
                self._next()
                return None
            return act
        if ph == "push":
            act, arrived = self._to(cur, (p.x1, p.y1, PUSH_Z, self.push_yaw), self.push_step, 0.0)
            if arrived or give_up:
                self._next()
                return None
            return act
        if ph == "backoff":
            bx = p.x1 - PUSH_BACKOFF * math.cos(self.push_yaw)
            by = p.y1 - PUSH_BACKOFF * math.sin(self.push_yaw)
            act, arrived = self._to(cur, (bx, by, PUSH_Z, self.push_yaw), self.push_step, 0.0)
            if arrived or give_up:
                self._next()
                return None
            return act
        raise AssertionError(f"unhandled phase {ph!r}")
