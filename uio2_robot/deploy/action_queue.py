"""Actions indexed by the control tick they are meant for, so late ones can be dropped.

A reply to the observation of tick ``t`` holds actions for ticks ``t, t+1, ...``. By the time it
arrives the loop may be at tick ``t + k``: the first ``k`` actions describe motions for moments
that have passed and are dropped (executing them late is how policies overshoot). A newer chunk
replaces an older one from its first still-valid tick on, because it was planned from a fresher
observation.
"""

from __future__ import annotations

import numpy as np


class TimedActionQueue:
    """tick -> (action, origin time); ``merge`` a chunk, ``take`` the action for a tick.

    The origin time is when the observation the action was planned from was captured, so the
    loop can measure capture-to-actuation latency per executed action.
    """

    def __init__(self) -> None:
        self._actions: dict[int, tuple[np.ndarray, float]] = {}
        self.dropped_stale = 0  # actions that arrived after their tick had passed
        self.replaced = 0  # queued actions superseded by a fresher chunk

    def clear(self) -> None:
        self._actions.clear()

    def merge(
        self, start_tick: int, chunk: np.ndarray, now_tick: int, origin_t: float = 0.0
    ) -> int:
        """Insert ``chunk`` (H, D) for ticks ``start_tick..``; drop what is before ``now_tick``.

        Returns how many actions were kept.
        """
        kept = 0
        for i, action in enumerate(np.asarray(chunk, dtype=np.float32)):
            tick = start_tick + i
            if tick < now_tick:
                self.dropped_stale += 1
                continue
            if tick in self._actions:
                self.replaced += 1
            self._actions[tick] = (action, origin_t)
            kept += 1
        return kept

    def take(self, tick: int) -> tuple[np.ndarray, float] | None:
        """(action, origin time) for ``tick`` (removed), discarding anything older; None if
        nothing is queued for it."""
        for old in [t for t in self._actions if t < tick]:
            del self._actions[old]
            self.dropped_stale += 1
        return self._actions.pop(tick, None)

    def ahead(self, tick: int) -> int:
        """How many consecutive ticks from ``tick`` on have an action queued."""
        n = 0
        while tick + n in self._actions:
            n += 1
        return n

    def __len__(self) -> int:
        return len(self._actions)
