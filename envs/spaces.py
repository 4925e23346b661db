"""The gymnasium side of the action and observation contract (``uio2_robot.contracts``).

Names, bounds and modes live in the numpy-only :mod:`uio2_robot.contracts` (so the robot PC
reads them without gymnasium or MuJoCo); this module re-exports them and builds the gymnasium
spaces the env and the policies use.

Out-of-bounds actions are clipped to these bounds (``info["action_clipped"]`` says so); actions of
the wrong shape, or with NaN/Inf, are refused with a ValueError.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from uio2_robot.contracts import (  # noqa: F401  (re-exported: the suite's public contract)
    ACTION_MODES,
    CAMERAS,
    DEFAULT_CONTROL_HZ,
    DELTA_ACTION_NAMES,
    DELTA_HIGH,
    DELTA_LOW,
    DELTA_MAX_STEP_M,
    DELTA_MAX_YAW,
    LEVELS,
    PRIMITIVE_ACTION_NAMES,
    PRIMITIVE_HIGH,
    PRIMITIVE_LOW,
    PROPRIO_NAMES,
    WORKSPACE_X,
    WORKSPACE_Y,
    YAW_RANGE,
    action_bounds,
    action_names,
)


def action_space(mode: str) -> spaces.Box:
    """The gymnasium action space of an action mode."""
    low, high = action_bounds(mode)
    return spaces.Box(low, high, dtype=np.float32)
