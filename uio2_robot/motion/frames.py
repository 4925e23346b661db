"""Frames shared by the arm twin and the real arm: table frame <-> robot base frame, tool down.

The policy works in the table frame of the suite (x forward, y left, z up, metres); a UR arm
reports its TCP in its base frame as ``[x, y, z, rx, ry, rz]`` (a rotation vector). A
:class:`TableCalibration` (the table origin and heading measured in the base frame) maps one to
the other, and the tool points straight down, so the only rotation the policy controls is yaw
about the vertical. numpy only: the robot PC runs this without MuJoCo.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

TOOL_DOWN = np.diag([1.0, -1.0, -1.0])  # tool z axis pointing down: a half turn about base x


@dataclass(frozen=True)
class TableCalibration:
    """Pose of the table frame in the robot base frame (measured once per set-up)."""

    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)  # table origin in base, m
    yaw: float = 0.0  # table x axis heading in base, rad

    def rotation(self) -> np.ndarray:
        return rot_z(self.yaw)


def rot_z(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def rotvec_to_matrix(rv: np.ndarray) -> np.ndarray:
    """Rodrigues: rotation vector (axis * angle) -> 3x3 matrix."""
    rv = np.asarray(rv, dtype=np.float64)
    theta = float(np.linalg.norm(rv))
    if theta < 1e-12:
        return np.eye(3)
    k = rv / theta
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + math.sin(theta) * kx + (1 - math.cos(theta)) * (kx @ kx)


def matrix_to_rotvec(r: np.ndarray) -> np.ndarray:
    """3x3 rotation matrix -> rotation vector, stable near 0 and pi."""
    r = np.asarray(r, dtype=np.float64)
    cos = max(-1.0, min(1.0, (np.trace(r) - 1.0) / 2.0))
    theta = math.acos(cos)
    if theta < 1e-9:
        return np.zeros(3)
    if math.pi - theta < 1e-6:  # near a half turn: axis from the diagonal
        axis = np.sqrt(np.maximum((np.diag(r) + 1.0) / 2.0, 0.0))
        i = int(np.argmax(axis))
        for j in range(3):  # fix signs relative to the largest component
            if j != i and r[i, j] + r[j, i] < 0:
                axis[j] = -axis[j]
        return axis / np.linalg.norm(axis) * theta
    w = np.array([r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1]])
    return w / (2.0 * math.sin(theta)) * theta


def tcp_to_table(tcp: np.ndarray, calib: TableCalibration) -> np.ndarray:
    """Base-frame TCP pose [x, y, z, rx, ry, rz] -> table-frame (x, y, z, yaw)."""
    tcp = np.asarray(tcp, dtype=np.float64)
    rt = calib.rotation()
    pos = rt.T @ (tcp[:3] - np.asarray(calib.origin))
    r = rt.T @ rotvec_to_matrix(tcp[3:6]) @ TOOL_DOWN.T  # = rot_z(yaw) for a downward tool
    yaw = math.atan2(r[1, 0], r[0, 0])
    return np.array([pos[0], pos[1], pos[2], yaw])


def table_to_tcp(pose: np.ndarray, calib: TableCalibration) -> np.ndarray:
    """Table-frame (x, y, z, yaw) with the tool pointing down -> base-frame TCP pose."""
    pose = np.asarray(pose, dtype=np.float64)
    rt = calib.rotation()
    pos = rt @ pose[:3] + np.asarray(calib.origin)
    r = rt @ rot_z(float(pose[3])) @ TOOL_DOWN
    return np.concatenate([pos, matrix_to_rotvec(r)])
