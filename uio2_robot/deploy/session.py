"""One robot's episode state around one Policy: shared by the server and the in-process client.

Keeping this in one place means a policy behind the socket and the same policy called
in-process go through identical calls (hooks, chunking, output checks), so the latency
benchmark compares transport, not two different code paths.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from uio2_robot.deploy.metadata import PolicyMetadata
from uio2_robot.deploy.protocol import APPLIED_DIM
from uio2_robot.deploy.wire import WireError
from uio2_robot.policies.base import Policy, PromptSegment

PolicyFactory = Callable[[], Policy]
SERVE_MODES = ("action", "chunk")


class PolicySession:
    """Builds its policy lazily (first reset) and turns every policy failure into a WireError.

    Optional policy hooks (used by :class:`~uio2_robot.deploy.twin.SimTwinPolicy`):
    ``set_episode(episode)`` before ``reset``; ``observe_applied(applied, applied_from, step)``
    before each act; ``close()`` at the end.
    """

    def __init__(
        self, factory: PolicyFactory, metadata: PolicyMetadata, mode: str = "action"
    ) -> None:
        if mode not in SERVE_MODES:
            raise ValueError(f"serve mode must be one of {SERVE_MODES}, got {mode!r}")
        self.factory = factory
        self.metadata = metadata
        self.mode = mode
        self.policy: Policy | None = None
        self.episode = False

    def reset(self, prompt: list[PromptSegment], episode: dict[str, Any]) -> float:
        """Start an episode; returns the policy's reset time in ms."""
        start = time.perf_counter()
        self.episode = False
        try:
            if self.policy is None:
                self.policy = self.factory()
            hook = getattr(self.policy, "set_episode", None)
            if callable(hook):
                hook(episode)
            self.policy.reset(prompt, self.metadata.action_space)
        except Exception as exc:
            raise WireError("policy_error", f"reset failed: {type(exc).__name__}: {exc}") from None
        self.episode = True
        return (time.perf_counter() - start) * 1e3

    def infer(
        self,
        obs: dict[str, np.ndarray],
        step: int,
        applied: np.ndarray | None = None,
        applied_from: int | None = None,
    ) -> tuple[np.ndarray, float]:
        """(actions (H, D) float32, inference ms) for one validated observation."""
        if not self.episode or self.policy is None:
            raise WireError("no_episode", "send a reset (the episode's prompt) before infer")
        policy = self.policy
        start = time.perf_counter()
        try:
            hook = getattr(policy, "observe_applied", None)
            if callable(hook):
                if applied is None:
                    applied = np.zeros((0, APPLIED_DIM), np.float32)
                    applied_from = step
                hook(applied, step if applied_from is None else applied_from, step)
            if self.mode == "chunk":
                out = np.asarray(policy.act_chunk(obs))  # type: ignore[attr-defined]
            else:
                out = np.asarray(policy.act(obs))[None]
        except Exception as exc:
            raise WireError("policy_error", f"{type(exc).__name__}: {exc}") from None
        ms = (time.perf_counter() - start) * 1e3
        d = self.metadata.action_dim
        if out.ndim != 2 or out.shape[1] != d or not np.issubdtype(out.dtype, np.floating):
            raise WireError(
                "policy_error", f"policy returned {out.dtype}{list(out.shape)}, expected (H, {d})"
            )
        if not np.all(np.isfinite(out)):
            raise WireError("policy_error", "policy returned NaN or Inf actions")
        return out.astype(np.float32), ms

    def close(self) -> None:
        """Drop the policy (and whatever it holds, e.g. a sim twin)."""
        closer = getattr(self.policy, "close", None)
        self.policy = None
        self.episode = False
        if callable(closer):
            closer()
