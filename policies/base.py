"""The `Policy` contract: what a rollout, the trainer's evaluator and the robot loop call.

Torch, ONNX, scripted, random and replay policies all implement it, so a rollout cannot tell
them apart. A prompt is a list of segments, each a text string or an RGB image (H, W, 3) uint8,
exactly as the env returns it in ``info["prompt"]`` at reset.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:  # only for annotations: the robot PC (runtime profile) has no gymnasium
    from gymnasium import spaces

PromptSegment = str | np.ndarray
Observation = dict[str, np.ndarray]


@runtime_checkable
class Policy(Protocol):
    """A closed-loop controller for one episode at a time."""

    def reset(
        self, prompt: list[PromptSegment], action_space: spaces.Box, env: Any | None = None
    ) -> None:
        """Start an episode.

        ``env`` is given only so privileged policies (the scripted oracle) can read simulator
        state; learned policies must ignore it, because a robot has no such thing.
        """
        ...

    def act(self, obs: Observation) -> np.ndarray:
        """One action (float32, shape ``action_space.shape``) for the current observation."""
        ...


def check_action(action: np.ndarray, action_space: spaces.Box) -> np.ndarray:
    """Validate a policy's output against the action space; raise a clear error if it is off."""
    arr = np.asarray(action)
    if arr.shape != action_space.shape:
        raise ValueError(f"action has shape {arr.shape}, expected {action_space.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"action has dtype {arr.dtype}, expected a float dtype")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"action contains NaN or Inf: {arr.tolist()}")
    return arr.astype(np.float32, copy=False)
