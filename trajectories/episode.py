"""The in-memory episode: what a recorder produces, the store appends and reads back.

An episode is time-major: ``steps[key]`` has shape ``(T, *per_step_shape)`` for every key, where
step t pairs the observation seen at t with the action taken at t. Keeping obs and action aligned
(no trailing final observation) means every array has the same length, which is what the store's
single ``episode_ends`` index needs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from uio2_robot.trajectories.errors import StoreError

PromptSegment = str | np.ndarray
ACTION_KEY = "action"
REWARD_KEY = "reward"
# Keys that are not observations; everything else in ``steps`` is one.
NON_OBS_KEYS = (ACTION_KEY, REWARD_KEY)


@dataclass
class Episode:
    """One complete episode with its metadata.

    ``prompt`` is the list of segments the env returned in ``info["prompt"]``: text strings and
    images (numpy arrays, usually (H, W, 3) uint8); the store keeps both bit for bit.
    ``extra`` holds any further JSON-serialisable metadata (robot name, operator, ...).
    """

    steps: dict[str, np.ndarray]  # key -> (T, *shape); must contain "action"
    prompt: list[PromptSegment] = field(default_factory=list)
    task: str = ""
    level: str = ""
    seed: int | None = None
    success: bool = False
    action_mode: str = ""
    control_hz: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def length(self) -> int:
        """Number of steps T."""
        return int(self.steps[ACTION_KEY].shape[0]) if ACTION_KEY in self.steps else 0

    @property
    def obs_keys(self) -> list[str]:
        return [k for k in self.steps if k not in NON_OBS_KEYS]

    def check(self) -> None:
        """Raise StoreError if the episode is malformed (before anything touches the disk)."""
        if ACTION_KEY not in self.steps:
            raise StoreError(f"episode has no {ACTION_KEY!r} array; keys are {sorted(self.steps)}")
        t = self.length
        if t == 0:
            raise StoreError("episode has 0 steps; expected at least one (obs, action) pair")
        for key, arr in self.steps.items():
            if not isinstance(arr, np.ndarray):
                raise StoreError(f"steps[{key!r}] is {type(arr).__name__}, expected a numpy array")
            if arr.ndim == 0 or arr.shape[0] != t:
                raise StoreError(
                    f"steps[{key!r}] has shape {arr.shape}, expected {t} steps on axis 0 "
                    f"(the length of steps['action'])"
                )
            if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
                raise StoreError(f"steps[{key!r}] has dtype {arr.dtype}, expected a numeric dtype")
        action = self.steps[ACTION_KEY]
        if np.issubdtype(action.dtype, np.floating) and not np.all(np.isfinite(action)):
            bad = np.argwhere(~np.isfinite(action.reshape(t, -1)))[0]
            raise StoreError(
                f"action contains NaN or Inf (first at step {bad[0]}); expected finite values"
            )
        for i, seg in enumerate(self.prompt):
            if isinstance(seg, str):
                continue
            if not isinstance(seg, np.ndarray) or not np.issubdtype(seg.dtype, np.number):
                raise StoreError(
                    f"prompt segment {i} is {type(seg).__name__}, expected a str or a numeric "
                    f"numpy array (an image)"
                )
        if self.seed is not None and not isinstance(self.seed, int | np.integer):
            raise StoreError(f"seed is {self.seed!r}, expected an int or None")
        if self.control_hz is not None and not (
            isinstance(self.control_hz, int | float) and math.isfinite(self.control_hz)
        ):
            raise StoreError(f"control_hz is {self.control_hz!r}, expected a finite float or None")
