"""Universal Robots arms over RTDE (the optional ``ur`` extra: ``pip install -e ".[ur]"``).

Built on ur_rtde's documented API: ``RTDEReceiveInterface.getActualTCPPose()`` for the state,
``RTDEControlInterface.servoL(pose, speed, acceleration, time, lookahead_time, gain)`` for motion,
``servoStop(a)`` to decelerate, and ``RTDEIOInterface.setStandardDigitalOut(id, level)`` for the
suction valve.

Motion is streamed at the RTDE rate (:class:`ServoLStream`): the loop's command of each control
tick sets a new table-frame target, and a streaming thread interpolates from the previous target
to it over one control period, sending one ``servoL`` per RTDE period between
``initPeriod()`` / ``waitPeriod()`` as ur_rtde's servo examples do. So a primitive's waypoint
stream (the same follower commands the simulated UR5e executes) reaches the arm as a smooth
500 Hz servo trajectory rather than a 10 Hz staircase. The TCP is the tool tip, with the flange
offset of :mod:`uio2_robot.motion.ur5e`; ``check_reachable`` runs that module's IK in this cell's
calibration, so what the twin accepts is what this arm is sent.

Frames: the policy works in the table frame of the suite (x forward, y left, z up, metres); the
arm reports its TCP in its base frame as ``[x, y, z, rx, ry, rz]`` (rotation vector). A
:class:`TableCalibration` (the table origin and heading measured in the base frame) maps one to
the other, and the tool is assumed to point straight down, so the only rotation the policy
controls is yaw about the vertical, as in the sim.
"""

from __future__ import annotations

import math
import threading
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
    except ImportError as exc:  # the CLI reports a ModuleNotFoundError with the extra to install
        raise ModuleNotFoundError(
            "the 'ur' driver needs the ur_rtde package, which is not installed; install the "
            'optional extra with: pip install "uio2-robot[ur]"',
            name=exc.name or "rtde_control",
        ) from None
    return rtde_control, rtde_receive, rtde_io


class ServoLStream:
    """Sends ``servoL`` at the RTDE rate, interpolating each control period's target segment.

    ``move(start, goal)`` starts a new segment (table-frame x, y, z, yaw) that the stream walks
    over one control period; ``halt()`` stops streaming (the caller then ``servoStop``s). All
    calls into the control interface happen under one lock, since ur_rtde's interfaces are not
    meant to be driven from two threads at once.
    """

    def __init__(
        self,
        ctrl: Any,
        calib: TableCalibration,
        *,
        rtde_hz: float,
        control_hz: float,
        lookahead_time: float,
        gain: float,
        lock: threading.Lock,
    ) -> None:
        self.ctrl = ctrl
        self.calib = calib
        self.dt = 1.0 / rtde_hz
        self.segment_s = 1.0 / control_hz
        self.lookahead_time = lookahead_time
        self.gain = gain
        self.lock = lock
        self.sent = 0  # servoL calls so far
        self._segment: tuple[np.ndarray, np.ndarray, float] | None = None
        self._seg_lock = threading.Lock()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ur-servol", daemon=True)
        self._thread.start()

    def move(self, start: np.ndarray, goal: np.ndarray) -> None:
        goal = np.asarray(goal, dtype=np.float64).copy()
        start = np.asarray(start, dtype=np.float64).copy()
        goal[3] = start[3] + (goal[3] - start[3] + math.pi) % (2 * math.pi) - math.pi
        with self._seg_lock:
            self._segment = (start, goal, time.monotonic())

    def halt(self) -> None:
        with self._seg_lock:
            self._segment = None

    def pose_at(self, now: float) -> np.ndarray | None:
        """The interpolated target at monotonic time ``now`` (None when halted)."""
        with self._seg_lock:
            seg = self._segment
        if seg is None:
            return None
        start, goal, t0 = seg
        frac = min(1.0, max(0.0, (now - t0) / self.segment_s))
        return start + (goal - start) * frac

    def close(self) -> None:
        self._closed.set()
        self._thread.join(2.0)

    def _run(self) -> None:
        while not self._closed.is_set():
            with self.lock:
                t_start = self.ctrl.initPeriod()
                pose = self.pose_at(time.monotonic())
                if pose is not None:
                    tcp = table_to_tcp(pose, self.calib)
                    self.ctrl.servoL(list(tcp), 0.0, 0.0, self.dt, self.lookahead_time, self.gain)
                    self.sent += 1
            self.ctrl.waitPeriod(t_start)


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
        rtde_modules: tuple[Any, Any, Any] | None = None,  # (control, receive, io); None: ur_rtde
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
        self._modules = rtde_modules
        self._stream: ServoLStream | None = None
        self._lock = threading.Lock()
        self._ctrl: Any = None
        self._recv: Any = None
        self._io: Any = None
        self._target: np.ndarray | None = None  # table-frame (x, y, z, yaw) servo target
        self._tool_on = False

    def connect(self) -> None:
        rtde_control, rtde_receive, rtde_io = self._modules or _import_rtde()
        from uio2_robot.motion import ur5e

        self._ctrl = rtde_control.RTDEControlInterface(self.host, self.rtde_frequency)
        # the TCP is the tool tip, with the same flange offset the arm twin uses
        self._ctrl.setTcp([0.0, 0.0, ur5e.TOOL_LENGTH[self.tool], 0.0, 0.0, 0.0])
        self._recv = rtde_receive.RTDEReceiveInterface(self.host)
        self._io = rtde_io.RTDEIOInterface(self.host) if self.tool_output is not None else None
        rtde_hz = self.rtde_frequency if self.rtde_frequency > 0 else 500.0
        self._stream = ServoLStream(
            self._ctrl,
            self.calib,
            rtde_hz=rtde_hz,
            control_hz=self.control_hz,
            lookahead_time=self.lookahead_time,
            gain=self.gain,
            lock=self._lock,
        )

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
        start = self._target.copy()
        self._target = self._target + cmd[:4]
        self._target[3] = (self._target[3] + math.pi) % (2 * math.pi) - math.pi
        assert self._stream is not None
        self._stream.move(start, self._target)  # streamed at the RTDE rate over this period
        self._set_tool(bool(cmd[4] > 0.5))

    def _set_tool(self, on: bool) -> None:
        if self._io is not None and on != self._tool_on:
            self._io.setStandardDigitalOut(self.tool_output, on)
        self._tool_on = on

    def stop(self) -> None:
        if self._stream is not None:
            self._stream.halt()
        if self._ctrl is not None:
            with self._lock:
                self._ctrl.servoStop(self.stop_deceleration)
        self._target = None  # resume from wherever the arm came to rest

    def close(self) -> None:
        if self._ctrl is not None:
            self.stop()
            if self._stream is not None:
                self._stream.close()
                self._stream = None
            self._ctrl.stopScript()
            self._ctrl.disconnect()
        if self._recv is not None:
            self._recv.disconnect()
        self._ctrl = self._recv = self._io = None
