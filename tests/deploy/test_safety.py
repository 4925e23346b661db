"""The safety envelope and watchdog, with a hand-driven clock."""

from __future__ import annotations

import math

import numpy as np
import pytest

from uio2_robot.deploy.safety import SafetyEnvelope, SafetyLimits, Watchdog


class Clock:
    """A settable monotonic clock (the envelope and watchdog take the clock as a parameter)."""

    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


HOME = np.array([0.5, 0.0, 0.1, 0.0, 0.0, 0.0], np.float32)  # proprio: x y z yaw tool contact


def envelope(clock: Clock | None = None, **limits: object) -> SafetyEnvelope:
    del clock  # the envelope runs on control time (one tick per call), not a wall clock
    env = SafetyEnvelope(SafetyLimits(**limits), control_hz=10.0)
    env.reset(HOME)
    return env


@pytest.mark.parametrize(
    "bad", [np.array([np.nan, 0, 0, 0, 0]), np.array([0, 0, np.inf, 0, 1]), np.zeros(4), None]
)
def test_non_finite_or_misshaped_actions_become_holds(bad: np.ndarray | None) -> None:
    env = envelope()
    out, report = env.filter(bad, HOME)
    assert report.rejected
    np.testing.assert_array_equal(out, [0, 0, 0, 0, 0])
    assert env.counts.rejected == 1


def test_hold_keeps_the_tool_state() -> None:
    env = envelope()
    env.filter(np.array([0, 0, 0, 0, 1.0]), HOME)
    np.testing.assert_array_equal(env.hold(), [0, 0, 0, 0, 1.0])


def test_in_bounds_actions_pass_unchanged() -> None:
    env = envelope()
    a = np.array([0.01, -0.02, 0.005, 0.1, 0.0], np.float32)
    out, report = env.filter(a, HOME)
    np.testing.assert_allclose(out, a, atol=1e-7)
    assert not report.modified


def test_out_of_bounds_values_are_clipped_and_step_capped() -> None:
    env = envelope()
    out, report = env.filter(np.array([1.0, -1.0, 0.5, 3.0, 7.0]), HOME)
    assert report.clipped and report.step_limited
    assert np.linalg.norm(out[:3]) <= 0.05 + 1e-6
    assert abs(out[3]) <= 0.4 + 1e-6
    assert out[4] == 1.0


def test_speed_limit_tightens_the_step_cap() -> None:
    env = envelope(max_speed_mps=0.2)  # 0.02 m per step at 10 Hz
    out, report = env.filter(np.array([0.04, 0.0, 0.0, 0.0, 0.0]), HOME)
    assert report.step_limited
    assert out[0] == pytest.approx(0.02)


def test_workspace_box_holds_the_target_inside() -> None:
    env = envelope(workspace_low=(0.2, -0.3, 0.05), workspace_high=(0.51, 0.3, 0.3))
    near_edge = HOME.copy()
    out, report = env.filter(np.array([0.04, 0.0, -0.04, 0.0, 0.0]), near_edge)
    assert report.box_limited
    target = near_edge[:3] + out[:3]
    assert target[0] <= 0.51 + 1e-6 and target[2] >= 0.05 - 1e-6
    # Outside the box (e.g. after a manual jog): moves that go back in are allowed, capped.
    outside = HOME.copy()
    outside[0] = 0.7
    out, _ = env.filter(np.array([0.0, 0.0, 0.0, 0.0, 0.0]), outside)
    assert out[0] < 0 and np.linalg.norm(out[:3]) <= 0.05 + 1e-6


def test_tool_toggles_are_rate_limited_in_control_time() -> None:
    env = envelope(min_tool_interval_s=0.5)  # 5 ticks at 10 Hz, whatever the wall clock says
    out, r = env.filter(np.array([0, 0, 0, 0, 1.0]), HOME)
    assert out[4] == 1.0 and not r.tool_limited
    out, r = env.filter(np.array([0, 0, 0, 0, 0.0]), HOME)
    assert out[4] == 1.0 and r.tool_limited  # one tick later: too soon, keep suction on
    for _ in range(3):
        env.hold()
    out, r = env.filter(np.array([0, 0, 0, 0, 0.0]), HOME)
    assert out[4] == 0.0 and not r.tool_limited  # five ticks after the change


def test_disabled_envelope_still_rejects_nan_but_passes_the_rest() -> None:
    env = envelope(enabled=False)
    out, r = env.filter(np.array([1.0, 0, 0, 0, 0]), HOME)
    assert out[0] == 1.0 and not r.modified
    _, r = env.filter(np.array([math.nan, 0, 0, 0, 0]), HOME)
    assert r.rejected


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError, match="must be below workspace_high"):
        SafetyLimits(workspace_low=(1, 0, 0), workspace_high=(0, 1, 1))
    with pytest.raises(ValueError, match="max_speed_mps must be a positive"):
        SafetyLimits(max_speed_mps=0)


def test_watchdog_expires_without_fresh_actions() -> None:
    clock = Clock()
    dog = Watchdog(0.5, clock=clock)
    assert not dog.expired
    clock.t += 0.4
    assert not dog.expired
    clock.t += 0.2
    assert dog.expired
    dog.feed()
    assert not dog.expired and dog.age() == 0.0
    with pytest.raises(ValueError, match="positive number"):
        Watchdog(0)
