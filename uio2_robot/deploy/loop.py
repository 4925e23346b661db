"""The robot-side control loop: fixed rate, asynchronous inference, safety, watchdog, recording.

One tick (period ``1 / control_hz``, on the monotonic clock)::

    wait for the tick's deadline -> e-stop? -> capture cameras + arm state
    -> collect any reply (its actions are queued by tick; late ones dropped)
    -> if the queue runs dry soon and nothing is in flight: submit this observation
    -> wait (at most ``reply_wait_fraction`` of the period) for this tick's action
    -> safety envelope -> driver.send -> record

That is delta mode. In primitive mode (the metadata's ``action_mode``) a reply is one VIMA
pick-and-place or push: it is checked whole (workspace, the arm's reach) and then executed at the
same fixed rate by :class:`~uio2_robot.deploy.primitive_exec.PrimitiveExecutor`, one follower
command per tick through the same safety envelope; the next observation is submitted once the
motion has settled. During a motion the client pings the server every tick, and the watchdog,
e-stop and server-loss rules hold: no reply for ``watchdog_s`` or a lost server stops the arm
mid-motion (tool unchanged, so a held part is not dropped) and the motion resumes from the
arm's pose when the server answers again.

Without an action for the tick, or when the watchdog says the newest reply is older than
``watchdog_s``, the arm holds (zero delta, tool unchanged). When the server is unreachable the
loop stops the arm (``driver.stop``) and keeps holding while the client reconnects in the
background; the first fresh reply resumes control. Per stage latencies are measured on the
monotonic clock: ``capture``, ``round_trip``, ``transfer`` (round trip minus server time),
``inference`` (server-reported), ``actuation``, ``loop`` (capture start -> command applied,
for each executed delta action; in primitive mode, capture -> the first command of the motion
planned from that frame), ``motion`` (a primitive's execution, received to settled, in
control time) and ``jitter`` (how late each tick started against its deadline).
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from uio2_robot.deploy.action_queue import TimedActionQueue
from uio2_robot.deploy.cameras import Camera, Frame, resize_to
from uio2_robot.deploy.client import PolicyClient, Reply
from uio2_robot.deploy.drivers import RobotDriver, RobotState
from uio2_robot.deploy.estop import EmergencyStop
from uio2_robot.deploy.metadata import PolicyMetadata
from uio2_robot.deploy.primitive_exec import PrimitiveExecutor
from uio2_robot.deploy.recording import DeployRecorder
from uio2_robot.deploy.safety import SafetyCounts, SafetyEnvelope, SafetyLimits, Watchdog
from uio2_robot.deploy.timing import RateTimer, StageStats
from uio2_robot.policies.base import PromptSegment

log = logging.getLogger("uio2_robot.deploy.loop")

MIN_HZ, MAX_HZ = 5.0, 50.0
LOGGED_STAGES = ("capture", "transfer", "inference", "actuation", "loop")
STALE_MOVE_M = 0.005  # a primitive planned from a pose the arm has since left by more is stale


@dataclass
class LoopSettings:
    """Timing and behaviour of the loop (``RobotConfig`` maps onto this)."""

    control_hz: float = 10.0  # the arm's control rate; must equal the policy's
    speedup: float = 1.0  # simulators only: wall-clock rate = control_hz * speedup
    max_steps: int | None = None  # per episode; None = until the sim ends it or an e-stop
    max_seconds: float | None = None  # wall-clock bound per episode
    watchdog_s: float = 0.5  # newest reply older than this: hold
    reply_wait_fraction: float = 0.8  # of a period, waiting for this tick's action
    request_ahead: int = 1  # request when fewer future ticks than this are queued
    reset_timeout_s: float = 30.0
    log_every_s: float = 5.0
    keep_ticks: bool = False  # keep a per-tick log in the report (tests, debugging)
    settle_s: float = 0.1  # primitive mode: hold this long after a motion before observing
    primitive_max_ticks: int = 300  # primitive mode: a motion longer than this is cut off

    def __post_init__(self) -> None:
        if not (MIN_HZ <= self.control_hz <= MAX_HZ):
            raise ValueError(f"control_hz must be in [{MIN_HZ}, {MAX_HZ}], got {self.control_hz}")
        if not (math.isfinite(self.speedup) and 1.0 <= self.speedup <= 20.0):
            raise ValueError(f"speedup must be in [1, 20], got {self.speedup}")
        if not 0.0 < self.reply_wait_fraction < 1.0:
            raise ValueError(
                f"reply_wait_fraction must be in (0, 1), got {self.reply_wait_fraction}"
            )
        if self.request_ahead < 1:
            raise ValueError(f"request_ahead must be >= 1, got {self.request_ahead}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1 or None, got {self.max_steps}")


@dataclass
class TickLog:
    """One tick, for tests and debugging."""

    tick: int
    step: int
    t: float  # monotonic time the capture started
    mode: str  # "policy" | "hold" | "stopped" | "settle"
    proprio: np.ndarray
    command: np.ndarray
    latency_s: float | None  # capture -> applied for a policy action


@dataclass
class EpisodeReport:
    """What happened in one deployed episode."""

    meta: dict[str, Any]
    ended: str  # "done" | "max_steps" | "max_seconds" | "estop" | "unreachable" (see run_episode)
    success: bool | None
    steps: int = 0
    policy_steps: int = 0
    holds: int = 0
    stopped_steps: int = 0
    overruns: int = 0
    skipped_ticks: int = 0
    dropped_stale: int = 0
    server_errors: Counter[str] = field(default_factory=Counter)
    # connection losses during the episode: count, total seconds, reconnects that ended one
    server_outages: dict[str, float] = field(default_factory=dict)
    safety: SafetyCounts = field(default_factory=SafetyCounts)
    action_mode: str = "delta"
    primitives: int = 0  # primitive mode: primitives executed
    rejected_primitives: list[str] = field(default_factory=list)  # why each rejected one was
    primitive_cutoffs: int = 0
    motion_pauses: int = 0  # motions stopped mid-way (server lost or silent), then resumed
    arm: dict[str, int] = field(default_factory=dict)  # the driver's IK / limit / collision counts
    stages: dict[str, dict[str, float]] = field(default_factory=dict)
    estop: str | None = None
    wall_s: float = 0.0
    stored_index: int | None = None
    ticks: list[TickLog] = field(default_factory=list)
    samples: StageStats = field(default_factory=StageStats)  # raw per-stage latencies (s)

    def summary(self) -> dict[str, Any]:
        """JSON-friendly summary (no per-tick log)."""
        return {
            "meta": self.meta,
            "ended": self.ended,
            "success": self.success,
            "steps": self.steps,
            "policy_steps": self.policy_steps,
            "holds": self.holds,
            "stopped_steps": self.stopped_steps,
            "overruns": self.overruns,
            "skipped_ticks": self.skipped_ticks,
            "dropped_stale": self.dropped_stale,
            "server_errors": dict(self.server_errors),
            "server_outages": dict(self.server_outages),
            "action_mode": self.action_mode,
            "primitives": self.primitives,
            "rejected_primitives": list(self.rejected_primitives),
            "primitive_cutoffs": self.primitive_cutoffs,
            "motion_pauses": self.motion_pauses,
            "arm": dict(self.arm),
            "safety": {
                "rejected": self.safety.rejected,
                "clipped": self.safety.clipped,
                "box_limited": self.safety.box_limited,
                "step_limited": self.safety.step_limited,
                "tool_limited": self.safety.tool_limited,
            },
            "latency": self.stages,
            "estop": self.estop,
            "wall_s": self.wall_s,
            "stored_index": self.stored_index,
        }


def check_compatible(
    meta: PolicyMetadata, settings: LoopSettings, driver: RobotDriver, cameras: Sequence[Camera]
) -> None:
    """Refuse to run a policy under a contract it was not built for, naming the mismatch."""
    if abs(meta.control_hz - settings.control_hz) > 1e-6:
        raise ValueError(
            f"the policy expects {meta.control_hz} Hz control but the loop runs at "
            f"{settings.control_hz} Hz; delta actions are per period, so the rates must match"
        )
    if abs(driver.control_hz - settings.control_hz) > 1e-6:
        raise ValueError(
            f"driver {driver.name!r} runs at {driver.control_hz} Hz but the loop at "
            f"{settings.control_hz} Hz"
        )
    if settings.speedup != 1.0 and driver.realtime:
        raise ValueError(
            f"speedup={settings.speedup} is for simulators; driver {driver.name!r} is real"
        )
    if meta.action_mode == "primitive" and getattr(driver, "tool", None) is None:
        raise ValueError(
            f"the policy acts in primitive mode, so the robot must say which tool is mounted; "
            f"driver {driver.name!r} has no tool (set driver.ur.tool=suction|spatula)"
        )
    names = [c.name for c in cameras]
    missing = [c for c in meta.cameras if c not in names]
    if missing:
        raise ValueError(
            f"the policy needs cameras {list(meta.cameras)}; missing {missing} (have {names})"
        )


class ControlLoop:
    """Runs episodes of ``client``'s policy on ``driver`` (see the module docstring)."""

    def __init__(
        self,
        driver: RobotDriver,
        cameras: Sequence[Camera],
        client: PolicyClient,
        settings: LoopSettings | None = None,
        limits: SafetyLimits | None = None,
        estop: EmergencyStop | None = None,
        recorder: DeployRecorder | None = None,
        prompt: list[PromptSegment] | None = None,
        clock: Any = time.monotonic,
    ) -> None:
        self.driver = driver
        self.cameras = list(cameras)
        self.client = client
        self.settings = settings or LoopSettings()
        self.limits = limits or SafetyLimits()
        self.estop = estop or EmergencyStop()
        self.recorder = recorder
        self.prompt = prompt
        self._clock = clock
        self.metadata: PolicyMetadata | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self, connect_timeout_s: float = 10.0) -> PolicyMetadata:
        """Connect the arm, open the cameras, fetch and check the policy's metadata."""
        self.driver.connect()
        for cam in self.cameras:
            cam.open()
        self.metadata = self.client.connect(connect_timeout_s)
        check_compatible(self.metadata, self.settings, self.driver, self.cameras)
        return self.metadata

    def close(self) -> None:
        for cam in self.cameras:
            cam.close()
        try:
            self.driver.stop()
        finally:
            self.driver.close()

    # ------------------------------------------------------------------ one episode
    def run_episode(self) -> EpisodeReport:
        """Run one episode to its end (sim done, max_steps/max_seconds, or e-stop)."""
        if self.metadata is None:
            raise RuntimeError("ControlLoop.run_episode before start()")
        s = self.settings
        primitive = self.metadata.action_mode == "primitive"
        start = self.driver.start_episode()
        prompt = start.prompt if start.prompt is not None else self.prompt
        if not prompt:
            raise ValueError("no prompt for the episode: the driver gives none, so set prompt=")
        self.client.begin_episode(prompt, start.meta or None, timeout_s=s.reset_timeout_s)
        state = self.driver.read_state()
        envelope = SafetyEnvelope(self.limits, s.control_hz)
        envelope.reset(state.proprio)
        watchdog = Watchdog(s.watchdog_s, clock=self._clock)
        queue = TimedActionQueue()
        stages = StageStats()
        executor = (
            PrimitiveExecutor(
                self.driver.tool,  # type: ignore[attr-defined]
                s.control_hz,
                settle_s=s.settle_s,
                max_ticks=s.primitive_max_ticks,
                reach=getattr(self.driver, "check_reachable", None),
                park=getattr(self.driver, "park_pose", None),
            )
            if primitive
            else None
        )
        if executor is not None:
            executor.begin_episode()
        max_primitives = getattr(self.driver, "max_primitives", None)
        meta = {**start.meta, "control_hz": s.control_hz, "action_mode": self.metadata.action_mode}
        report = EpisodeReport(
            meta=meta, ended="", success=None, action_mode=self.metadata.action_mode
        )
        if self.recorder is not None:
            self.recorder.start(prompt, {**meta, "source": "deploy", "driver": self.driver.name})
        timer = RateTimer(s.control_hz * s.speedup, clock=self._clock)
        outages = getattr(self.client, "outages", None)  # remote clients only
        outages_before = outages() if callable(outages) else None
        t_begin = self._clock()
        next_log = t_begin + s.log_every_s
        step, stopped, paused = 0, False, False
        # primitive mode: the observation and proprio the pending plan was made from
        plan_obs: dict[str, np.ndarray] | None = None
        plan_proprio: np.ndarray | None = None
        motion_t0: int | None = None  # tick a primitive's motion began
        motion_capture_t: float | None = None  # capture time of the frame it was planned from
        # Hard bound on ticks whatever happens (a sim that never ends, a stuck server).
        max_ticks = 100_000 if s.max_steps is None else 50 * s.max_steps + 1000

        def collect(reply: Reply | None, tick: int, proprio: np.ndarray) -> None:
            nonlocal stopped, plan_obs, motion_t0, motion_capture_t
            if reply is None:
                return
            if reply.error is not None:
                code = reply.error.code
                report.server_errors[code] += 1
                if report.server_errors[code] <= 3:
                    log.warning("server error at tick %d: %s", tick, reply.error)
                return
            if reply.kind == "pong":
                watchdog.feed()
                if stopped:
                    log.info("the server answers again at tick %d", tick)
                    stopped = False
                return
            if reply.actions is None:
                report.server_errors["no_actions"] += 1
                return
            stages.add("round_trip", reply.rtt_ms / 1e3)
            stages.add("inference", reply.infer_ms / 1e3)
            stages.add("transfer", reply.transfer_ms / 1e3)
            watchdog.feed()
            if stopped:
                log.info("fresh actions again at tick %d: resuming", tick)
                stopped = False
            if executor is None:
                queue.merge(reply.tick, reply.actions, tick, reply.capture_t)
                return
            # primitive mode: a plan made from a pose the arm has left, or too old, is stale
            moved = (
                math.inf
                if plan_proprio is None
                else float(np.linalg.norm(proprio[:3] - plan_proprio[:3]))
            )
            if (
                not executor.idle
                or moved > STALE_MOVE_M
                or self._clock() - reply.capture_t > s.watchdog_s
            ):
                queue.dropped_stale += 1
                return
            action = reply.actions[0]
            reason = executor.start(action)
            report.primitives += 1
            if reason is not None:
                report.rejected_primitives.append(reason)
                log.warning(
                    "primitive %d rejected before any motion: %s", report.primitives, reason
                )
            else:
                motion_t0, motion_capture_t = tick, reply.capture_t
                if self.recorder is not None and plan_obs is not None:
                    self.recorder.add(plan_obs, action)
            plan_obs = None

        try:
            while True:
                k = timer.wait()
                if self.estop.triggered:
                    self.driver.stop()
                    report.ended, report.estop = "estop", self.estop.reason
                    break
                t0 = self._clock()
                stages.add("jitter", max(0.0, t0 - timer.deadline(k)) * s.speedup)
                if s.max_seconds is not None and t0 - t_begin > s.max_seconds:
                    report.ended = "max_seconds"
                    break
                if k > max_ticks:
                    report.ended = "max_ticks"
                    break
                frames = {cam.name: cam.read() for cam in self.cameras}
                state = self.driver.read_state()
                t_cap = self._clock()
                stages.add("capture", t_cap - t0)
                stages.add("frame_age", t0 - min(f.t for f in frames.values()))
                if state.done:
                    report.ended = "done"
                    break
                proprio = np.asarray(state.proprio, dtype=np.float64)
                obs = self._observation(frames, state)
                state_ok = bool(np.all(np.isfinite(state.proprio)))
                if not state_ok:
                    report.server_errors["bad_state"] += 1

                collect(self.client.poll(0.0), k, proprio)
                if not self.client.connected and not stopped:
                    log.warning("policy server unreachable at tick %d: stopping the arm", k)
                    self.driver.stop()
                    queue.clear()
                    stopped = True
                item = None
                if executor is None:  # delta mode: a queue of per-tick actions
                    if (
                        state_ok
                        and self.client.connected
                        and not self.client.in_flight
                        and queue.ahead(k) < s.request_ahead
                    ):
                        self.client.submit(k, step, obs, t0)
                    while queue.ahead(k) == 0 and self.client.in_flight:
                        left = timer.time_left(k, s.reply_wait_fraction)
                        if left <= 0:
                            break
                        collect(self.client.poll(left), k, proprio)
                    if watchdog.expired:
                        queue.clear()
                    item = queue.take(k)
                    command_in = None if item is None or not state_ok or stopped else item[0]
                else:  # primitive mode: plan when idle, else follow the motion
                    if executor.idle and max_primitives and report.primitives >= max_primitives:
                        report.ended = "max_primitives"
                        break
                    if executor.idle and state_ok and not stopped:
                        can_submit = self.client.connected and not self.client.in_flight
                        seen = executor.observed_proprio
                        if seen is not None and not self.metadata.privileged_sim:
                            obs = {**obs, "proprio": seen}  # measured before the arm parked
                        if can_submit and self.client.submit(k, step, obs, t0):
                            plan_obs, plan_proprio = obs, proprio.copy()
                        while executor.idle and self.client.in_flight:
                            left = timer.time_left(k, s.reply_wait_fraction)
                            if left <= 0:
                                break
                            collect(self.client.poll(left), k, proprio)
                    command_in = None
                    if not executor.idle and state_ok:
                        lost = stopped or watchdog.expired
                        if lost and not paused:
                            log.warning("no word from the server at tick %d: motion paused", k)
                            self.driver.stop()
                            report.motion_pauses += 1
                        elif paused and not lost:
                            log.info("server answers again at tick %d: motion resumes", k)
                        paused = lost
                        if not paused:
                            command_in = executor.next_command(proprio)
                            if command_in is None and executor.idle and motion_t0 is not None:
                                stages.add("motion", (k - motion_t0) / s.control_hz)
                                motion_t0 = None
                        if self.client.connected and not self.client.in_flight:
                            self.client.ping(t0)  # heartbeat, also while paused: the way back
                latency = None
                if command_in is None:
                    command = envelope.hold()
                    if stopped or paused:
                        mode = "stopped"
                    elif executor is not None and not executor.idle:
                        mode = "settle"
                    else:
                        mode = "hold"
                else:
                    command, _ = envelope.filter(command_in, state.proprio)
                    mode = "policy"
                t_act = self._clock()
                self.driver.send(command)
                t_done = self._clock()
                stages.add("actuation", t_done - t_act)
                if mode == "policy":
                    if item is not None:  # delta: capture -> this action applied
                        latency = t_done - item[1]
                        stages.add("loop", latency)
                    elif motion_capture_t is not None:  # primitive: capture -> motion starts
                        latency = t_done - motion_capture_t
                        stages.add("loop", latency)
                        motion_capture_t = None
                    report.policy_steps += 1
                elif mode in ("hold", "settle"):
                    report.holds += 1
                else:
                    report.stopped_steps += 1
                self.client.record_applied(command)
                if self.recorder is not None and executor is None:
                    self.recorder.add(obs, command)
                if s.keep_ticks:
                    report.ticks.append(
                        TickLog(k, step, t0, mode, state.proprio.copy(), command, latency)
                    )
                step += 1
                if s.max_steps is not None and step >= s.max_steps:
                    report.ended = "max_steps"
                    break
                if t_done >= next_log:
                    next_log = t_done + s.log_every_s
                    p50 = {n: stages.percentile_ms(n, 50) for n in LOGGED_STAGES}
                    log.info(
                        "tick %d step %d: %d policy / %d hold / %d stopped, %d overruns; p50 ms: %s",
                        k,
                        step,
                        report.policy_steps,
                        report.holds,
                        report.stopped_steps,
                        timer.overruns,
                        " ".join(f"{n} {v:.1f}" for n, v in p50.items()),
                    )
        finally:
            self.driver.stop()
            report.steps = step
            report.overruns, report.skipped_ticks = timer.overruns, timer.skipped
            report.dropped_stale = queue.dropped_stale
            report.safety = envelope.counts
            if executor is not None:
                report.primitive_cutoffs = executor.cutoffs
            stats = getattr(self.driver, "arm_stats", None)
            report.arm = dict(stats()) if callable(stats) else {}
            report.stages = stages.summary()
            report.samples = stages
            report.wall_s = self._clock() - t_begin
            report.success = self.driver.read_state().success if step else None
            if report.ended == "":
                report.ended = "error"
            if outages_before is not None:
                report.server_outages = _outage_delta(outages_before, outages())  # type: ignore[misc]
            if stopped and not self.client.connected and report.ended != "estop":
                # ran out of time or ticks while the policy could not be reached: the episode
                # ended because of the outage, whatever bound stopped it
                log.warning("episode ended with the policy server unreachable (%s)", report.ended)
                report.ended = "unreachable"
            if self.recorder is not None:
                keep = report.ended != "error"
                report.stored_index = self.recorder.finish(bool(report.success), keep=keep)
        return report

    def _observation(self, frames: dict[str, Frame], state: RobotState) -> dict[str, np.ndarray]:
        """The wire observation: the policy's cameras at its image size, plus proprio."""
        assert self.metadata is not None
        size = self.metadata.image_size
        obs = {name: resize_to(frames[name].image, size) for name in self.metadata.cameras}
        obs["proprio"] = np.asarray(state.proprio, dtype=np.float32)
        return obs


def _outage_delta(before: Any, after: Any) -> dict[str, float]:
    """Outages between two :class:`~uio2_robot.deploy.client.OutageStats` snapshots, the one
    still going on at the end included: what the episode report shows."""
    now = time.monotonic()
    return {
        "count": after.count - before.count,
        "total_s": round(after.total_at(now) - before.total_at(now), 3),
        "reconnects": after.reconnects - before.reconnects,
    }
