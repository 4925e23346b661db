"""The action and observation contract shared by the suite, the policies, the store and the robot.

Every consumer (trajectory store, action tokenizer, safety envelope) reads bounds and names from
here, so a change of bounds is one edit.

Primitive mode (VIMA's): one whole pick-and-place or push per step, written as two poses
``[x0, y0, yaw0, x1, y1, yaw1]``: pose0 is the pick / push start, pose1 the place / push end.
Positions are metres in the table frame, yaw is radians in [-pi, pi).

Delta mode (a real arm's): an end-effector delta and a tool command at a fixed control rate,
``[dx, dy, dz, dyaw, tool]``; ``tool`` > 0.5 means suction on (ignored by the spatula).

Out-of-bounds actions are clipped to these bounds (``info["action_clipped"]`` says so); actions of
the wrong shape, or with NaN/Inf, are refused with a ValueError.
"""

from __future__ import annotations

import math

import numpy as np
from gymnasium import spaces

ACTION_MODES = ("primitive", "delta")
LEVELS = ("L1", "L2", "L3", "L4")
CAMERAS = ("front", "top")

# VIMA-Bench's workspace bounds (REFERENCE.md section 2).
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


def action_names(mode: str) -> tuple[str, ...]:
    """Names of the action dimensions for an action mode."""
    _check_mode(mode)
    return PRIMITIVE_ACTION_NAMES if mode == "primitive" else DELTA_ACTION_NAMES


def action_space(mode: str) -> spaces.Box:
    """The gymnasium action space of an action mode."""
    _check_mode(mode)
    if mode == "primitive":
        return spaces.Box(PRIMITIVE_LOW, PRIMITIVE_HIGH, dtype=np.float32)
    return spaces.Box(DELTA_LOW, DELTA_HIGH, dtype=np.float32)


def _check_mode(mode: str) -> None:
    if mode not in ACTION_MODES:
        raise ValueError(f"unknown action mode {mode!r}; expected one of {ACTION_MODES}")
