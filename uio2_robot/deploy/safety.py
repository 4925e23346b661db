"""The safety envelope: limits every command sent to the arm, whatever the policy says.

It sits between the policy and the driver and is on by default, because a learned policy's
output is a guess and a network reply can be corrupted or stale. It knows nothing about the
policy; it needs only the arm's measured state and the limits:

- NaN/Inf or wrongly shaped actions are rejected (the arm holds);
- each value is clipped to the action space (``envs/spaces.py``);
- the end-effector target (measured pose + delta) is kept inside a workspace box;
- the translation per step is capped by ``max_step_m`` and by ``max_speed_mps / control_hz``,
  the yaw per step by ``max_yaw_step``;
- the tool command may change at most once per ``min_tool_interval_s`` of control time (suction
  valves and grippers wear out and drop parts when toggled at control rate). Control time is
  ticks / ``control_hz``: one ``filter`` or ``hold`` per tick, so the rule means the same on a
  real arm and on a simulator run faster than real time.

The :class:`Watchdog` is the time side: no fresh action for ``timeout_s`` means hold.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from uio2_robot import contracts as contract
from uio2_robot.contracts import TOOL_XY_MARGIN


@dataclass
class SafetyLimits:
    """Limits of the envelope; defaults fit the sim table (metres, table frame)."""

    enabled: bool = True
    workspace_low: tuple[float, float, float] = (
        contract.WORKSPACE_X[0] - TOOL_XY_MARGIN,
        contract.WORKSPACE_Y[0] - TOOL_XY_MARGIN,
        0.0,
    )
    workspace_high: tuple[float, float, float] = (
        contract.WORKSPACE_X[1] + TOOL_XY_MARGIN,
        contract.WORKSPACE_Y[1] + TOOL_XY_MARGIN,
        0.3,
    )
    # Slightly above the per-axis action bound (0.04 m) so the suite's own motions, which move
    # up to 0.04 m in x/y while descending, pass unchanged; real arms usually set these lower.
    max_step_m: float = 0.05
    max_speed_mps: float = 0.5
    max_yaw_step: float = contract.DELTA_MAX_YAW
    min_tool_interval_s: float = 0.3

    def __post_init__(self) -> None:
        lo, hi = np.asarray(self.workspace_low, float), np.asarray(self.workspace_high, float)
        if lo.shape != (3,) or hi.shape != (3,) or not np.all(lo < hi):
            raise ValueError(
                f"workspace_low {self.workspace_low} must be below workspace_high "
                f"{self.workspace_high} on x, y and z"
            )
        for name in ("max_step_m", "max_speed_mps", "max_yaw_step"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"safety {name} must be a positive number, got {value!r}")
        if not (math.isfinite(self.min_tool_interval_s) and self.min_tool_interval_s >= 0):
            raise ValueError(f"min_tool_interval_s must be >= 0, got {self.min_tool_interval_s}")


@dataclass
class SafetyReport:
    """What the envelope did to one action (all False: passed unchanged)."""

    rejected: str | None = None  # why the action was replaced by a hold
    clipped: bool = False  # outside the action space
    box_limited: bool = False  # target would leave the workspace box
    step_limited: bool = False  # too far or too fast for one step
    tool_limited: bool = False  # tool toggled too soon after the last change

    @property
    def modified(self) -> bool:
        return bool(
            self.rejected
            or self.clipped
            or self.box_limited
            or self.step_limited
            or self.tool_limited
        )


@dataclass
class SafetyCounts:
    """Totals over an episode, for the log and the episode report."""

    rejected: int = 0
    clipped: int = 0
    box_limited: int = 0
    step_limited: int = 0
    tool_limited: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    def add(self, r: SafetyReport) -> None:
        if r.rejected:
            self.rejected += 1
            self.reasons[r.rejected] = self.reasons.get(r.rejected, 0) + 1
        self.clipped += r.clipped
        self.box_limited += r.box_limited
        self.step_limited += r.step_limited
        self.tool_limited += r.tool_limited


class SafetyEnvelope:
    """Filters delta actions ``[dx, dy, dz, dyaw, tool]`` against the measured proprio."""

    def __init__(self, limits: SafetyLimits, control_hz: float) -> None:
        self.limits = limits
        self.control_hz = float(control_hz)
        self._ticks = 0  # filter/hold calls so far: the envelope's control clock
        self._low = contract.DELTA_LOW.astype(np.float64)
        self._high = contract.DELTA_HIGH.astype(np.float64)
        self._box_lo = np.asarray(limits.workspace_low, dtype=np.float64)
        self._box_hi = np.asarray(limits.workspace_high, dtype=np.float64)
        self.step_cap = min(limits.max_step_m, limits.max_speed_mps / self.control_hz)
        self._tool: float | None = None  # last tool command sent (0 or 1)
        self._tool_changed_at = -math.inf
        self.counts = SafetyCounts()

    def reset(self, proprio: np.ndarray) -> None:
        """New episode: the tool state starts as the arm reports it."""
        self._tool = 1.0 if float(proprio[4]) > 0.5 else 0.0
        self._tool_changed_at = -math.inf
        self.counts = SafetyCounts()

    def hold(self) -> np.ndarray:
        """The do-nothing command: no motion, tool unchanged (one tick of control time)."""
        self._ticks += 1
        return np.array([0.0, 0.0, 0.0, 0.0, self._tool or 0.0], dtype=np.float32)

    def filter(
        self, action: np.ndarray | None, proprio: np.ndarray
    ) -> tuple[np.ndarray, SafetyReport]:
        """The command to send for ``action`` given the measured ``proprio``, and what changed."""
        report = SafetyReport()
        if self._tool is None:
            self.reset(proprio)
        self._ticks += 1
        arr = None if action is None else np.asarray(action)
        if arr is None or arr.shape != (len(contract.DELTA_ACTION_NAMES),):
            got = "nothing" if arr is None else f"shape {arr.shape}"
            report.rejected = f"expected {len(contract.DELTA_ACTION_NAMES)} values, got {got}"
        elif not np.issubdtype(arr.dtype, np.number) or not np.all(np.isfinite(arr)):
            report.rejected = "non-finite action"
        if report.rejected:
            self.counts.add(report)
            self._ticks -= 1  # hold() counts this tick
            return self.hold(), report
        if not self.limits.enabled:
            out = np.asarray(arr, dtype=np.float32)
            self._note_tool(float(out[4]))
            return out, report
        a = np.asarray(arr, dtype=np.float64)
        clipped = np.clip(a, self._low, self._high)
        report.clipped = bool(np.any(clipped != a))
        a = clipped
        pos = np.asarray(proprio[:3], dtype=np.float64)
        target = np.clip(pos + a[:3], self._box_lo, self._box_hi)
        new_d = target - pos
        report.box_limited = bool(np.any(np.abs(new_d - a[:3]) > 1e-9))
        norm = float(np.linalg.norm(new_d))
        if norm > self.step_cap:
            new_d *= self.step_cap / norm
            report.step_limited = True
        if abs(a[3]) > self.limits.max_yaw_step:
            a[3] = math.copysign(self.limits.max_yaw_step, a[3])
            report.step_limited = True
        a[:3] = new_d
        tool = 1.0 if a[4] > 0.5 else 0.0
        if tool != self._tool:
            now = self._ticks / self.control_hz
            if now - self._tool_changed_at < self.limits.min_tool_interval_s - 1e-9:
                tool = self._tool
                report.tool_limited = True
            else:
                self._tool_changed_at = now
        self._tool = tool
        a[4] = tool
        self.counts.add(report)
        return a.astype(np.float32), report

    def _note_tool(self, value: float) -> None:
        self._tool = 1.0 if value > 0.5 else 0.0


class Watchdog:
    """Expires when no fresh action has arrived for ``timeout_s`` (then the loop holds)."""

    def __init__(self, timeout_s: float, clock=time.monotonic) -> None:
        if not (math.isfinite(timeout_s) and timeout_s > 0):
            raise ValueError(
                f"watchdog timeout must be a positive number of seconds, got {timeout_s}"
            )
        self.timeout_s = timeout_s
        self._clock = clock
        self._last = clock()

    def feed(self) -> None:
        self._last = self._clock()

    def age(self) -> float:
        return self._clock() - self._last

    @property
    def expired(self) -> bool:
        return self.age() > self.timeout_s
