"""Deadline ticking, latency statistics, the timed action queue and the emergency stop."""

from __future__ import annotations

import io
import os
import signal
from pathlib import Path

import numpy as np
import pytest

from uio2_robot.deploy.action_queue import TimedActionQueue
from uio2_robot.deploy.estop import EmergencyStop
from uio2_robot.deploy.timing import RateTimer, StageStats


class SimClock:
    """Simulated time: ``sleep`` advances it, ``work`` stands for computation."""

    def __init__(self) -> None:
        self.t = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.t += s

    def work(self, s: float) -> None:
        self.t += s


def test_timer_sleeps_to_absolute_deadlines_without_drift() -> None:
    clock = SimClock()
    timer = RateTimer(10.0, clock=clock, sleep=clock.sleep)
    ticks = []
    for _ in range(50):
        ticks.append(timer.wait())
        assert clock.t == pytest.approx(timer.deadline(ticks[-1]))
        clock.work(0.03)  # 30 % of the period
    assert ticks == list(range(50))
    assert timer.overruns == 0 and timer.skipped == 0
    assert clock.t == pytest.approx(49 * 0.1 + 0.03)


def test_timer_reports_overruns_and_skips_missed_ticks() -> None:
    clock = SimClock()
    timer = RateTimer(10.0, clock=clock, sleep=clock.sleep)
    assert timer.wait() == 0
    clock.work(0.12)  # late for tick 1 by 0.02 s: within tolerance (0.025 s)
    assert timer.wait() == 1 and timer.overruns == 0
    clock.work(0.16)  # tick 2 was due at 0.2; now 0.28: an overrun, nothing skipped
    assert timer.wait() == 2 and timer.overruns == 1 and timer.skipped == 0
    clock.work(0.35)  # now 0.63: ticks 3, 4, 5 are gone; tick 6 is next
    assert timer.wait() == 6
    assert timer.overruns == 2 and timer.skipped == 3
    assert timer.max_late_s == pytest.approx(0.33)
    assert timer.time_left(6, 0.5) == pytest.approx(0.6 + 0.05 - clock.t)


def test_timer_rejects_bad_rates() -> None:
    with pytest.raises(ValueError, match="rate must be in"):
        RateTimer(0.0)


def test_stage_stats_percentiles_in_ms() -> None:
    stats = StageStats()
    for v in range(1, 101):
        stats.add("loop", v / 1000)
    s = stats.summary()["loop"]
    assert (
        s["n"] == 100 and s["p50_ms"] == pytest.approx(50.5) and s["max_ms"] == pytest.approx(100)
    )
    assert np.isnan(stats.percentile_ms("missing", 50))


def test_action_queue_drops_late_actions_and_prefers_fresh_chunks() -> None:
    q = TimedActionQueue()
    chunk = np.arange(12, dtype=np.float32).reshape(4, 3)  # actions for ticks 10..13
    kept = q.merge(10, chunk, now_tick=12, origin_t=1.0)  # arrived at tick 12
    assert kept == 2 and q.dropped_stale == 2
    assert q.ahead(12) == 2 and q.ahead(11) == 0
    action, origin = q.take(12)
    np.testing.assert_array_equal(action, chunk[2])
    assert origin == 1.0
    fresh = np.full((2, 3), -1.0, np.float32)
    q.merge(13, fresh, now_tick=13, origin_t=2.0)  # planned from a newer observation
    assert q.replaced == 1
    assert q.take(13)[1] == 2.0
    q.merge(20, fresh, now_tick=15)
    assert q.take(21) is not None and q.dropped_stale == 4  # tick 20 (and 14) expired unused
    assert q.take(22) is None and len(q) == 0


def test_estop_file_flag_and_latching(tmp_path: Path) -> None:
    flag = tmp_path / "STOP"
    stop = EmergencyStop(flag)
    assert not stop.triggered
    flag.touch()
    assert stop.triggered and "STOP" in (stop.reason or "")
    flag.unlink()
    assert stop.triggered  # latched until a new run


def test_estop_on_signal_instead_of_dying() -> None:
    stop = EmergencyStop()
    stop.install_signal_handlers()
    try:
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.triggered and stop.reason == "signal SIGINT"
    finally:
        stop.restore_signal_handlers()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_estop_on_key() -> None:
    stop = EmergencyStop()
    stop.watch_keys(io.StringIO("hello\n\n q \n")).join(2.0)
    assert stop.triggered and stop.reason == "key 'q'"
