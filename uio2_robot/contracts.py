"""The plain-data contract shared by the suite, the policies, the store and the robot.

A leaf module: it imports numpy only (no gymnasium, MuJoCo or torch), so a robot PC that runs
the deploy loop and the ONNX runtime reads the same names and bounds as the simulator.
``uio2_robot.envs.spaces`` builds the gymnasium spaces from these.

Primitive mode (VIMA's): one whole pick-and-place or push per step, written as two poses
``[x0, y0, yaw0, x1, y1, yaw1]``: pose0 is the pick / push start, pose1 the place / push end.
Positions are metres in the table frame, yaw is radians in [-pi, pi).

Delta mode (a real arm's): an end-effector delta and a tool command at a fixed control rate,
``[dx, dy, dz, dyaw, tool]``; ``tool`` > 0.5 means suction on (ignored by the spatula).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

ACTION_MODES = ("primitive", "delta")
LEVELS = ("L1", "L2", "L3", "L4")
CAMERAS = ("front", "top")
TOOLS = ("suction", "spatula")  # VIMA's two end effectors: pick-and-place and push
PRIMITIVE_KINDS = {"suction": "pick_place", "spatula": "push"}

# VIMA-Bench's workspace bounds (REFERENCE.md section 2), table frame, metres.
WORKSPACE_X = (0.25, 0.75)
WORKSPACE_Y = (-0.5, 0.5)
YAW_RANGE = (-math.pi, math.pi)

PRIMITIVE_ACTION_NAMES = ("x0", "y0", "yaw0", "x1", "y1", "yaw1")
PRIMITIVE_LOW = np.array([WORKSPACE_X[0], WORKSPACE_Y[0], YAW_RANGE[0]] * 2, dtype=np.float32)
PRIMITIVE_HIGH = np.array([WORKSPACE_X[1], WORKSPACE_Y[1], YAW_RANGE[1]] * 2, dtype=np.float32)

DELTA_ACTION_NAMES = ("dx", "dy", "dz", "dyaw", "tool")
DELTA_MAX_STEP_M = 0.04  # per control step: 0.4 m/s at 10 Hz
DELTA_MAX_YAW = 0.4  # rad per control step
DELTA_LOW = np.array(
    [-DELTA_MAX_STEP_M, -DELTA_MAX_STEP_M, -DELTA_MAX_STEP_M, -DELTA_MAX_YAW, 0.0],
    dtype=np.float32,
)
DELTA_HIGH = np.array(
    [DELTA_MAX_STEP_M, DELTA_MAX_STEP_M, DELTA_MAX_STEP_M, DELTA_MAX_YAW, 1.0], dtype=np.float32
)
DEFAULT_CONTROL_HZ = 10.0

# proprio: end-effector position (m), yaw (rad), tool command (0/1), holding/contact flag (0/1)
PROPRIO_NAMES = ("ee_x", "ee_y", "ee_z", "ee_yaw", "tool_on", "tool_contact")

# How far outside the workspace the tool itself may go (the sim servo's and the envelope's box).
TOOL_XY_MARGIN = 0.1
TOOL_Z_RANGE = (0.0, 0.3)  # tool tip height above the table
TOOL_HOME = (0.5, 0.0, 0.15)  # where the tool tip rests when an episode starts (yaw 0)


def check_mode(mode: str) -> None:
    """Raise ValueError naming the valid modes when ``mode`` is not one of them."""
    if mode not in ACTION_MODES:
        raise ValueError(f"unknown action mode {mode!r}; expected one of {ACTION_MODES}")


def action_names(mode: str) -> tuple[str, ...]:
    """Names of the action dimensions for an action mode."""
    check_mode(mode)
    return PRIMITIVE_ACTION_NAMES if mode == "primitive" else DELTA_ACTION_NAMES


def action_bounds(mode: str) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) float32 bounds of an action mode."""
    check_mode(mode)
    if mode == "primitive":
        return PRIMITIVE_LOW.copy(), PRIMITIVE_HIGH.copy()
    return DELTA_LOW.copy(), DELTA_HIGH.copy()


@dataclass(frozen=True, eq=False)
class BoxBounds:
    """A box action space as a policy server reads it (``shape``, ``dtype``, ``low``, ``high``),
    for a robot PC without gymnasium (the ``runtime`` install profile): learned policies only
    check the action's shape against it. Where gymnasium is installed, the server uses its
    ``spaces.Box`` (privileged and random policies need more than the bounds)."""

    low: np.ndarray
    high: np.ndarray

    def __post_init__(self) -> None:
        if np.shape(self.low) != np.shape(self.high):
            raise ValueError(f"low {np.shape(self.low)} and high {np.shape(self.high)} differ")

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(np.shape(self.low))

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.float32)


def wrap_angle(a: float) -> float:
    """Wrap an angle to [-pi, pi)."""
    return (a + math.pi) % (2 * math.pi) - math.pi
