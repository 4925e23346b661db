"""Fixed-rate ticking on the monotonic clock, and latency statistics per loop stage.

The loop sleeps until an absolute deadline (``t0 + k * period``) rather than for a fixed
duration, so per-tick jitter does not accumulate into drift. A tick that starts more than
``overrun_tolerance`` of a period late is an overrun; if whole periods were missed the tick
counter jumps ahead (those ticks are skipped, and actions planned for them are dropped as stale).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np


class RateTimer:
    """Yields tick indices at ``hz`` on ``clock`` (monotonic by default)."""

    def __init__(
        self,
        hz: float,
        overrun_tolerance: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not (math.isfinite(hz) and 0 < hz <= 1000):
            raise ValueError(f"rate must be in (0, 1000] Hz, got {hz!r}")
        self.period = 1.0 / hz
        self.overrun_tolerance = overrun_tolerance
        self._clock = clock
        self._sleep = sleep
        self.t0 = clock()
        self.tick = -1
        self.overruns = 0
        self.skipped = 0
        self.max_late_s = 0.0

    def deadline(self, tick: int) -> float:
        """Monotonic time at which ``tick`` starts."""
        return self.t0 + tick * self.period

    def wait(self) -> int:
        """Sleep until the next tick's deadline and return its index (skipping missed ticks)."""
        nxt = self.tick + 1
        now = self._clock()
        late = now - self.deadline(nxt)
        if late < 0:
            self._sleep(-late)
            self.tick = nxt
            return nxt
        if late > self.overrun_tolerance * self.period:
            self.overruns += 1
            self.max_late_s = max(self.max_late_s, late)
            missed = int(late // self.period)
            if missed:
                self.skipped += missed
                nxt += missed
        self.tick = nxt
        return nxt

    def time_left(self, tick: int, fraction: float = 1.0) -> float:
        """Seconds from now until ``fraction`` of ``tick``'s period has elapsed."""
        return self.deadline(tick) + fraction * self.period - self._clock()


class StageStats:
    """Latency samples (seconds) per named stage; percentiles in milliseconds."""

    def __init__(self) -> None:
        self.samples: dict[str, list[float]] = {}

    def add(self, stage: str, seconds: float) -> None:
        self.samples.setdefault(stage, []).append(float(seconds))

    def extend(self, other: StageStats) -> None:
        for stage, values in other.samples.items():
            self.samples.setdefault(stage, []).extend(values)

    def percentile_ms(self, stage: str, q: float) -> float:
        values = self.samples.get(stage)
        if not values:
            return math.nan
        return float(np.percentile(np.asarray(values), q) * 1e3)

    def summary(self) -> dict[str, dict[str, float]]:
        """{stage: {n, p50_ms, p99_ms, max_ms}} for logs and reports."""
        out = {}
        for stage, values in self.samples.items():
            arr = np.asarray(values) * 1e3
            out[stage] = {
                "n": int(arr.size),
                "p50_ms": float(np.percentile(arr, 50)),
                "p99_ms": float(np.percentile(arr, 99)),
                "max_ms": float(arr.max()),
            }
        return out
