"""Universal Robots arms over RTDE (the optional ``ur`` extra: ``pip install -e ".[ur]"``).

Built on ur_rtde's documented API: ``RTDEReceiveInterface.getActualTCPPose()`` for the state,
``RTDEControlInterface.servoL(pose, speed, acceleration, time, lookahead_time, gain)`` once per
control period for motion, ``servoStop(a)`` to decelerate, and
``RTDEIOInterface.setStandardDigitalOut(id, level)`` for the suction valve.

Frames: the policy works in the table frame of the suite (x forward, y left, z up, metres); the
arm reports its TCP in its base frame as ``[x, y, z, rx, ry, rz]`` (rotation vector). A
:class:`TableCalibration` (the table origin and heading measured in the base frame) maps one to
the other, and the tool is assumed to point straight down, so the only rotation the policy
controls is yaw about the vertical, as in the sim.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from uio2_robot.deploy.drivers import EpisodeStart, RobotState
from uio2_robot.motion.frames import TableCalibration, table_to_tcp, tcp_to_table


def _import_rtde() -> tuple[Any, Any, Any]:
    try:
        import rtde_control
        import rtde_io
        import rtde_receive
    except ImportError:
        raise ImportError(
            "the 'ur' driver needs the ur_rtde package, which is not installed; install the "
            'optional extra with: pip install -e ".[ur]"  (ur_rtde==1.6.5)'
        ) from None
    return rtde_control, rtde_receive, rtde_io


class URDriver:
    """A UR arm (CB3 or e-Series) servoed in Cartesian space with ``servoL``."""

    name = "ur"
    realtime = True

    def __init__(
        self,
        host: str,
        *,
        control_hz: float = 10.0,
        calibration: TableCalibration | None = None,
        rtde_frequency: float = -1.0,  # -1: ur_rtde's default (125 Hz CB3, 500 Hz e-Series)
        lookahead_time: float = 0.1,  # s, ur_rtde accepts [0.03, 0.2]
        gain: float = 300.0,  # ur_rtde accepts [100, 2000]
        stop_deceleration: float = 0.5,  # m/s^2 for servoStop
        tool_output: int | None = 0,  # standard digital output driving the suction valve
        contact_input: int | None = None,  # standard digital input of a vacuum sensor
        max_lead_m: float = 0.02,  # how far the servo target may run ahead of the measured pose
        prompt: list[str] | None = None,
        tool: str = "suction",  # the end effector on the flange: suction | spatula
    ) -> None:
        from uio2_robot.motion import ur5e

        if tool not in ur5e.TOOL_LENGTH:
            raise ValueError(f"tool must be one of {tuple(ur5e.TOOL_LENGTH)}, got {tool!r}")
        if not 0.03 <= lookahead_time <= 0.2:
            raise ValueError(f"lookahead_time must be in [0.03, 0.2] s, got {lookahead_time}")
        if not 100 <= gain <= 2000:
            raise ValueError(f"gain must be in [100, 2000], got {gain}")
        self.host = host
        self.control_hz = float(control_hz)
        self.calib = calibration or TableCalibration()
        self.rtde_frequency = rtde_frequency
        self.lookahead_time = lookahead_time
        self.gain = gain
        self.stop_deceleration = stop_deceleration
        self.tool_output = tool_output
        self.contact_input = contact_input
        self.max_lead_m = max_lead_m
        self.prompt = prompt
        self.tool = tool
        self._ctrl: Any = None
        self._recv: Any = None
        self._io: Any = None
        self._target: np.ndarray | None = None  # table-frame (x, y, z, yaw) servo target
        self._tool_on = False

    def connect(self) -> None:
        rtde_control, rtde_receive, rtde_io = _import_rtde()
        from uio2_robot.motion import ur5e

        self._ctrl = rtde_control.RTDEControlInterface(self.host, self.rtde_frequency)
        # the TCP is the tool tip, with the same flange offset the arm twin uses
        self._ctrl.setTcp([0.0, 0.0, ur5e.TOOL_LENGTH[self.tool], 0.0, 0.0, 0.0])
        self._recv = rtde_receive.RTDEReceiveInterface(self.host)
        self._io = rtde_io.RTDEIOInterface(self.host) if self.tool_output is not None else None

    def start_episode(self) -> EpisodeStart:
        self._target = None
        return EpisodeStart(prompt=list(self.prompt) if self.prompt else None, meta={})

    def check_reachable(self, waypoints: Any) -> str | None:
        """Why the arm cannot reach every waypoint (None: it can): the same IK check the arm
        twin runs, seeded with the arm's measured joints, in this cell's table calibration."""
        from uio2_robot.motion import ur5e

        if self._recv is None:
            raise RuntimeError("URDriver.check_reachable before connect()")
        q = np.asarray(self._recv.getActualQ(), dtype=np.float64)
        return ur5e.check_reachable(list(waypoints), self.tool, self.calib, q_seed=q)

    def _pose(self) -> np.ndarray:
        return tcp_to_table(np.asarray(self._recv.getActualTCPPose()), self.calib)

    def read_state(self) -> RobotState:
        if self._recv is None:
            raise RuntimeError("URDriver.read_state before connect()")
        pose = self._pose()
        if self.contact_input is not None:
            contact = bool(self._recv.getDigitalInState(self.contact_input))
        else:
            contact = False
        proprio = np.array([*pose, float(self._tool_on), float(contact)], dtype=np.float32)
        return RobotState(proprio, time.monotonic())

    def send(self, command: np.ndarray) -> None:
        cmd = np.asarray(command, dtype=np.float64)
        measured = self._pose()
        if self._target is None:
            self._target = measured.copy()
        # Anti wind-up: a target far ahead of a blocked arm would release as a jump.
        lead = self.max_lead_m
        self._target[:3] = np.clip(self._target[:3], measured[:3] - lead, measured[:3] + lead)
        self._target = self._target + cmd[:4]
        self._target[3] = (self._target[3] + math.pi) % (2 * math.pi) - math.pi
        self._ctrl.servoL(
            list(table_to_tcp(self._target, self.calib)),
            0.0,  # speed and acceleration are unused by servoL
            0.0,
            1.0 / self.control_hz,
            self.lookahead_time,
            self.gain,
        )
        self._set_tool(bool(cmd[4] > 0.5))

    def _set_tool(self, on: bool) -> None:
        if self._io is not None and on != self._tool_on:
            self._io.setStandardDigitalOut(self.tool_output, on)
        self._tool_on = on

    def stop(self) -> None:
        if self._ctrl is not None:
            self._ctrl.servoStop(self.stop_deceleration)
        self._target = None  # resume from wherever the arm came to rest

    def close(self) -> None:
        if self._ctrl is not None:
            self.stop()
            self._ctrl.stopScript()
            self._ctrl.disconnect()
        if self._recv is not None:
            self._recv.disconnect()
        self._ctrl = self._recv = self._io = None
