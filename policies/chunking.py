"""Action chunks in closed loop: a queue of planned actions, with optional temporal ensembling.

A policy that predicts a chunk of H future actions can execute them one by one (a queue, as
Diffusion Policy's "execute 8 of 16") or re-plan at every step and blend the overlapping
predictions for the current step (ACT's temporal ensembling), which smooths the jerks users see
at chunk boundaries. Both are numpy-only so the ONNX runtime shares them.
"""

from __future__ import annotations

from collections import deque

import numpy as np


class ActionQueue:
    """Executes up to ``execute_steps`` actions of each predicted chunk, then asks for a new one."""

    def __init__(self, execute_steps: int) -> None:
        if execute_steps < 1:
            raise ValueError(f"execute_steps must be >= 1, got {execute_steps}")
        self.execute_steps = execute_steps
        self._queue: deque[np.ndarray] = deque()

    def reset(self) -> None:
        self._queue.clear()

    def needs_plan(self) -> bool:
        return not self._queue

    def push(self, chunk: np.ndarray) -> None:
        """chunk: (H, D) actions, oldest first; keeps the first ``execute_steps``."""
        self._queue.extend(np.asarray(chunk, dtype=np.float32)[: self.execute_steps])

    def pop(self) -> np.ndarray:
        return self._queue.popleft()


class TemporalEnsembler:
    """ACT's temporal ensembling: average every chunk's prediction for the current step.

    As in ACT, prediction ``i`` (``i = 0`` the oldest still covering this step) gets weight
    ``exp(-decay * i)``, so older plans anchor the action and new ones bend it gradually.
    Wrapping dimensions (yaw) are averaged on the circle.
    """

    def __init__(self, horizon: int, decay: float = 0.01, wrap: np.ndarray | None = None) -> None:
        if horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {horizon}")
        self.horizon = horizon
        self.decay = decay
        self.wrap = None if wrap is None else np.asarray(wrap, dtype=bool)
        self._chunks: deque[tuple[int, np.ndarray]] = deque()
        self._t = 0

    def reset(self) -> None:
        self._chunks.clear()
        self._t = 0

    def add(self, chunk: np.ndarray) -> np.ndarray:
        """Add the chunk predicted at the current step; return the blended action for it."""
        chunk = np.asarray(chunk, dtype=np.float64)
        self._chunks.append((self._t, chunk))
        while self._chunks and self._t - self._chunks[0][0] >= self.horizon:
            self._chunks.popleft()
        preds = np.stack([c[self._t - t0] for t0, c in self._chunks])  # oldest first
        weights = np.exp(-self.decay * np.arange(len(preds)))
        weights /= weights.sum()
        out = (weights[:, None] * preds).sum(0)
        if self.wrap is not None and self.wrap.any():
            angles = preds[:, self.wrap]
            out[self.wrap] = np.arctan2(
                (weights[:, None] * np.sin(angles)).sum(0),
                (weights[:, None] * np.cos(angles)).sum(0),
            )
        self._t += 1
        return out.astype(np.float32)
