"""The UR driver streams a primitive's waypoints as servoL at the RTDE rate, checks reach with the
arm twin's IK, and stops streaming on stop().

No UR arm or URSim is reachable from here, so the three ur_rtde interfaces are played by a small
kinematic controller (``FakeUR``): its TCP follows the servoL targets, and its joints are the
twin's own IK of that TCP, which is what getActualQ would report.
"""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import numpy as np

from uio2_robot.deploy.primitive_exec import PrimitiveExecutor
from uio2_robot.deploy.ur_driver import URDriver
from uio2_robot.motion import ur5e
from uio2_robot.motion.frames import TableCalibration, rotvec_to_matrix, table_to_tcp

HZ, RTDE_HZ = 10.0, 250.0


class FakeUR:
    """One object playing RTDEControl-, RTDEReceive- and RTDEIOInterface for one arm."""

    def __init__(self, calib: TableCalibration, tool: str) -> None:
        self.calib, self.tool = calib, tool
        self.tcp = np.asarray(table_to_tcp(np.array([0.5, 0.0, 0.15, 0.0]), calib), float)
        self.servol: list[tuple[float, list[float], float]] = []
        self.stops = 0
        self.tcp_offset: list[float] | None = None
        self.outputs: dict[int, bool] = {}
        self.lock = threading.Lock()

    # control
    def setTcp(self, offset: list[float]) -> None:  # noqa: N802 (ur_rtde's names)
        self.tcp_offset = list(offset)

    def initPeriod(self) -> float:  # noqa: N802
        return time.monotonic()

    def waitPeriod(self, t_start: float) -> None:  # noqa: N802
        time.sleep(max(0.0, t_start + 1.0 / RTDE_HZ - time.monotonic()))

    def servoL(
        self, pose: list[float], v: float, a: float, t: float, look: float, gain: float
    ) -> None:  # noqa: N802
        with self.lock:
            self.servol.append((time.monotonic(), list(pose), t))
            self.tcp = np.asarray(pose, float)

    def servoStop(self, a: float) -> None:  # noqa: N802
        self.stops += 1

    def stopScript(self) -> None:  # noqa: N802
        pass

    def disconnect(self) -> None:
        pass

    # receive
    def getActualTCPPose(self) -> list[float]:  # noqa: N802
        with self.lock:
            return list(self.tcp)

    def getActualQ(self) -> list[float]:  # noqa: N802
        from uio2_robot.motion.frames import tcp_to_table

        pose = tcp_to_table(np.asarray(self.getActualTCPPose()), self.calib)
        res = ur5e.solve_ik(pose, ur5e.home_seed(self.calib), self.tool, self.calib)
        return list(res.q)

    def getDigitalInState(self, i: int) -> bool:  # noqa: N802
        return False

    # io
    def setStandardDigitalOut(self, i: int, on: bool) -> None:  # noqa: N802
        self.outputs[i] = on


def driver_on(fake: FakeUR, calib: TableCalibration) -> URDriver:
    modules = (
        SimpleNamespace(RTDEControlInterface=lambda host, freq: fake),
        SimpleNamespace(RTDEReceiveInterface=lambda host: fake),
        SimpleNamespace(RTDEIOInterface=lambda host: fake),
    )
    d = URDriver(
        "ursim", control_hz=HZ, calibration=calib, rtde_frequency=RTDE_HZ, rtde_modules=modules
    )
    d.connect()
    return d


def test_a_primitive_streams_to_the_arm_as_servol_at_the_rtde_rate() -> None:
    calib = ur5e.TWIN_CALIBRATION
    fake = FakeUR(calib, "suction")
    driver = driver_on(fake, calib)
    try:
        assert fake.tcp_offset == [0.0, 0.0, ur5e.TOOL_LENGTH["suction"], 0.0, 0.0, 0.0]
        ex = PrimitiveExecutor("suction", HZ, reach=driver.check_reachable)
        assert ex.start(np.array([0.40, -0.10, 0.0, 0.60, 0.20, 0.5], np.float32)) is None
        t_next = time.monotonic()
        ticks = 0
        while not ex.idle and ticks < 12:  # 1.2 s of the approach at 10 Hz
            state = driver.read_state()
            command = ex.next_command(state.proprio)
            driver.send(command if command is not None else np.zeros(5, np.float32))
            ticks += 1
            t_next += 1.0 / HZ
            time.sleep(max(0.0, t_next - time.monotonic()))
        sent = list(fake.servol)
    finally:
        driver.close()
    assert ticks == 12 and len(sent) >= 0.5 * RTDE_HZ * ticks / HZ  # ~25 servoL per tick
    assert all(abs(t - 1.0 / RTDE_HZ) < 1e-9 for _, _, t in sent)
    poses = np.array([p for _, p, _ in sent])
    steps = np.linalg.norm(np.diff(poses[:, :3], axis=0), axis=1)
    assert steps.max() < 0.04 / 5  # interpolated: no servoL jumps a whole tick's motion
    for p in poses[:: max(1, len(poses) // 20)]:  # the tool points straight down throughout
        z_axis = rotvec_to_matrix(p[3:]) @ np.array([0.0, 0.0, 1.0])
        np.testing.assert_allclose(z_axis, [0.0, 0.0, -1.0], atol=1e-6)


def test_stop_halts_the_stream_and_unreachable_primitives_are_refused() -> None:
    far = TableCalibration(origin=(1.6, 0.0, 0.0), yaw=0.0)  # the table is out of reach
    fake = FakeUR(far, "suction")
    driver = driver_on(fake, far)
    try:
        ex = PrimitiveExecutor("suction", HZ, reach=driver.check_reachable)
        reason = ex.start(np.array([0.40, -0.10, 0.0, 0.60, 0.20, 0.5], np.float32))
        assert reason is not None and "reach" in reason and ex.idle
        driver.send(np.array([0.01, 0.0, 0.0, 0.0, 0.0], np.float32))
        time.sleep(0.05)
        driver.stop()
        n = len(fake.servol)
        time.sleep(0.05)
        assert len(fake.servol) == n and fake.stops == 1  # no servoL after the stop
    finally:
        driver.close()
