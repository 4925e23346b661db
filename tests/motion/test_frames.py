"""Table <-> base frames (shared by the arm twin and the UR driver): conversions are exact inverses, and a missing ur_rtde gives a clear error."""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest

from uio2_robot.deploy.ur_driver import URDriver
from uio2_robot.motion.frames import (
    TOOL_DOWN,
    TableCalibration,
    matrix_to_rotvec,
    rot_z,
    rotvec_to_matrix,
    table_to_tcp,
    tcp_to_table,
)


def test_rotvec_matrix_round_trip_including_half_turns() -> None:
    rng = np.random.default_rng(0)
    axes = rng.normal(size=(50, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    angles = np.concatenate([rng.uniform(0, math.pi, 46), [0.0, 1e-10, math.pi, math.pi - 1e-8]])
    for axis, angle in zip(axes, angles, strict=True):
        r = rotvec_to_matrix(axis * angle)
        np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-9)
        np.testing.assert_allclose(rotvec_to_matrix(matrix_to_rotvec(r)), r, atol=1e-6)
    np.testing.assert_allclose(rotvec_to_matrix(matrix_to_rotvec(TOOL_DOWN)), TOOL_DOWN, atol=1e-9)


@pytest.mark.parametrize("yaw", [0.0, 0.7, -2.5, math.pi - 1e-3])
def test_table_and_tcp_frames_are_inverse(yaw: float) -> None:
    calib = TableCalibration(origin=(0.1, -0.45, 0.02), yaw=0.3)
    pose = np.array([0.55, 0.12, 0.08, yaw])
    tcp = table_to_tcp(pose, calib)
    back = tcp_to_table(tcp, calib)
    np.testing.assert_allclose(back[:3], pose[:3], atol=1e-9)
    assert math.isclose(math.remainder(back[3] - yaw, 2 * math.pi), 0.0, abs_tol=1e-6)
    # The tool points down in the base frame whatever the yaw.
    r = rotvec_to_matrix(tcp[3:])
    np.testing.assert_allclose(r[:, 2], [0, 0, -1], atol=1e-9)


def test_calibration_moves_the_table_origin() -> None:
    calib = TableCalibration(origin=(1.0, 2.0, 0.5), yaw=math.pi / 2)
    tcp = table_to_tcp(np.array([0.1, 0.0, 0.0, 0.0]), calib)
    np.testing.assert_allclose(tcp[:3], [1.0, 2.1, 0.5], atol=1e-12)  # table x = base y
    np.testing.assert_allclose(rot_z(math.pi / 2) @ [1, 0, 0], [0, 1, 0], atol=1e-12)


@pytest.mark.skipif(
    importlib.util.find_spec("rtde_control") is not None, reason="ur_rtde is installed"
)
def test_missing_ur_rtde_says_how_to_install() -> None:
    driver = URDriver("192.0.2.1")  # TEST-NET address: never contacted, the import fails first
    with pytest.raises(ModuleNotFoundError, match=r'pip install "uio2-robot\[ur\]"'):
        driver.connect()


def test_servo_parameters_are_checked() -> None:
    with pytest.raises(ValueError, match=r"lookahead_time must be in \[0.03, 0.2\]"):
        URDriver("192.0.2.1", lookahead_time=0.5)
    with pytest.raises(ValueError, match=r"gain must be in \[100, 2000\]"):
        URDriver("192.0.2.1", gain=50)
