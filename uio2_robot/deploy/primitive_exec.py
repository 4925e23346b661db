"""Primitive actions on the robot: check a served pick-and-place or push, then run it as motion.

A primitive-mode policy answers each observation with two poses (VIMA's action). The robot
workstation turns them into motion at its fixed control rate with the suite's own follower
(:class:`uio2_robot.motion.primitive.PrimitiveFollower`: approach height, descend, suction on
contact, lift, transfer, descend, release, retreat; for the spatula, the push), so the env's
primitive mode and a deployed arm run one motion code. Before anything moves the whole primitive
is checked: both poses inside the workspace, and every waypoint reachable by the arm (the driver's
``check_reachable``, which the UR driver and the arm twin share). A rejected primitive moves
nothing; its reason goes into the episode report.

After the motion the arm holds for ``settle_s`` and until the tool has stopped, so the next
inference sees a frame captured after the motion settled.

A visible arm (a driver with a ``park_pose``) ends every primitive parked out of the cameras'
view, and starts every episode by moving to the suite's home pose and then parking. The frame a
plan is made from is then the unoccluded scene, and the proprio sent with it is
:attr:`PrimitiveExecutor.observed_proprio`: the pose the tool was measured at when its last task
motion ended (the retreat, or home), just before the view was cleared. On the floating tool,
which never parks, that is simply the current pose, which is what the policy was trained on;
sending the parked pose instead put the shipped policy's proprio 7-12 standard deviations
outside its training data and flipped 4 of 12 of its first picks (measured).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from uio2_robot.contracts import PRIMITIVE_KINDS, TOOL_HOME, TOOLS
from uio2_robot.motion.primitive import Primitive, PrimitiveFollower, check_primitive

HOME_POSE = (*TOOL_HOME, 0.0)  # the suite's episode-start tool pose

Pose = tuple[float, float, float, float]
ReachCheck = Callable[[Sequence[Pose]], "str | None"]

STILL_M = 0.001  # the tool moved less than this over one tick: it has stopped
MAX_SETTLE_TICKS = 20  # settle gives up waiting for stillness after this many ticks


class PrimitiveExecutor:
    """One primitive at a time: ``start`` it, then take one command per tick until it is idle.

    States: ``idle`` (ready for the next plan), ``moving`` (the follower emits commands),
    ``settling`` (holds until ``settle_s`` has passed and the tool is still).
    """

    def __init__(
        self,
        tool: str,
        control_hz: float,
        *,
        settle_s: float = 0.1,
        max_ticks: int = 300,
        reach: ReachCheck | None = None,
        park: Pose | None = None,
    ) -> None:
        """``reach``: the driver's reachability check; ``park``: where the tool ends each
        primitive, out of the cameras' view (a visible arm's; None for a hidden tool)."""
        if tool not in TOOLS:
            raise ValueError(f"tool must be one of {TOOLS}, got {tool!r}")
        self.kind = PRIMITIVE_KINDS[tool]
        self.control_hz = float(control_hz)
        self.settle_ticks = max(1, math.ceil(settle_s * self.control_hz - 1e-9))
        self.max_ticks = int(max_ticks)
        self.reach = reach
        self.park = park
        self.state = "idle"
        self.follower: PrimitiveFollower | None = None
        self.observed_proprio: np.ndarray | None = None  # see the module docstring
        self.ticks = 0  # ticks of the current primitive's motion
        self.cutoffs = 0  # primitives cut off at max_ticks
        self._settle_left = 0
        self._settle_ticks = 0
        self._last_pos: np.ndarray | None = None

    @property
    def idle(self) -> bool:
        return self.state == "idle"

    def check(self, action: np.ndarray) -> tuple[Primitive | None, str | None]:
        """The primitive for ``action`` and None, or None and why it must not run."""
        reason = check_primitive(action)
        if reason is not None:
            return None, reason
        prim = Primitive.from_action(self.kind, np.asarray(action, dtype=np.float64))
        if self.reach is not None:
            reason = self.reach([*prim.waypoints(), *([self.park] if self.park else [])])
            if reason is not None:
                return None, reason
        return prim, None

    def start(self, action: np.ndarray) -> str | None:
        """Begin executing ``action`` (x0, y0, yaw0, x1, y1, yaw1); returns a rejection reason
        instead when it must not run (then nothing changes)."""
        if not self.idle:
            raise RuntimeError(f"a primitive is still {self.state}; wait until idle")
        prim, reason = self.check(action)
        if prim is None:
            return reason
        self.follower = PrimitiveFollower(prim, self.control_hz, park=self.park)
        self.state = "moving"
        self.ticks = 0
        return None

    def begin_episode(self) -> None:
        """Start of an episode: a visible arm goes home, then parks (see the module docstring)."""
        self.abort()
        self.observed_proprio = None
        if self.park is not None:
            self.follower = PrimitiveFollower.start_of_episode(
                HOME_POSE, self.park, self.control_hz
            )
            self.state = "moving"
            self.ticks = 0

    def next_command(self, proprio: np.ndarray) -> np.ndarray | None:
        """This tick's delta command while moving, or None to hold (settling or idle)."""
        if self.state == "moving":
            assert self.follower is not None
            before = self.follower.phase
            command = self.follower.act(proprio)
            if before != "park" and self.follower.phase in ("park", "done") and self.park:
                # the task motion ended at this measured pose; now the arm clears the view
                self.observed_proprio = np.asarray(proprio, dtype=np.float32).copy()
            self.ticks += 1
            if self.follower.done or self.ticks >= self.max_ticks:
                if not self.follower.done:
                    # as the env does: a cut-off primitive never leaves an object hanging
                    self.cutoffs += 1
                    command = command.copy()
                    command[:4] = 0.0
                    command[4] = 0.0
                self._begin_settle(proprio)
            return command
        if self.state == "settling":
            pos = np.asarray(proprio[:3], dtype=np.float64)
            moved = (
                math.inf if self._last_pos is None else float(np.linalg.norm(pos - self._last_pos))
            )
            self._last_pos = pos
            self._settle_left -= 1
            self._settle_ticks += 1
            if (self._settle_left <= 0 and moved < STILL_M) or (
                self._settle_ticks >= MAX_SETTLE_TICKS
            ):
                self.state = "idle"
                self.follower = None
        return None

    def abort(self) -> None:
        """Drop the current primitive (new episode)."""
        self.state = "idle"
        self.follower = None

    def _begin_settle(self, proprio: np.ndarray) -> None:
        self.state = "settling"
        self._settle_left = self.settle_ticks
        self._settle_ticks = 0
        self._last_pos = np.asarray(proprio[:3], dtype=np.float64)
