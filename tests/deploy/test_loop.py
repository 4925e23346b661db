"""Server + robot loop end to end on loopback, with the `sim` driver (the suite as digital twin).

The scripted oracle reads privileged sim state, so the server runs it on a sim twin kept in
lockstep by the actions the robot applied (uio2_robot.deploy.twin): images, proprio, prompt and
actions all cross the socket. Every loop is bounded in steps and wall time.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from deploy_sim import (
    FAST,
    HZ,
    LEVEL,
    REAL_TIME,
    SEEDS,
    SIZE,
    TASK,
    free_port,
    kill_then_restart,
    oracle_server,
    sim_loop,
    spawn_server,
    wait_listening,
)

from uio2_robot.deploy.cameras import SimCamera
from uio2_robot.deploy.client import RemotePolicyClient
from uio2_robot.deploy.drivers import SimDriver
from uio2_robot.deploy.estop import EmergencyStop
from uio2_robot.deploy.factory import policy_factory
from uio2_robot.deploy.loop import ControlLoop, LoopSettings
from uio2_robot.deploy.metadata import metadata_for
from uio2_robot.deploy.recording import DeployRecorder
from uio2_robot.deploy.safety import SafetyLimits
from uio2_robot.deploy.server import PolicyServer, ServerThread
from uio2_robot.eval.rollout import run_episode
from uio2_robot.eval.stats import wilson_interval


def test_served_oracle_succeeds_like_the_in_process_rollout(tmp_path: Path) -> None:
    from uio2_robot.envs import make_env
    from uio2_robot.policies.factory import make_policy

    env = make_env(TASK, LEVEL, action_mode="delta", image_size=SIZE, control_hz=HZ)
    try:
        local = [run_episode(env, make_policy("oracle"), s)[0].success for s in SEEDS]
    finally:
        env.close()
    store = tmp_path / "deployed.zarr"
    recorder = DeployRecorder(store)
    with oracle_server() as server:
        loop, _driver, client = sim_loop(
            server.url, SEEDS, {**REAL_TIME, "max_seconds": 40.0}, recorder=recorder
        )
        try:
            reports = [loop.run_episode() for _ in SEEDS]
        finally:
            loop.close()
            client.close()
            recorder.close()
    served = [r.success for r in reports]
    low, high = wilson_interval(sum(local), len(local))
    assert low <= sum(served) / len(served) <= high, (local, served)
    for r in reports:
        assert r.ended == "done" and not r.server_errors, r.summary()
        assert r.policy_steps >= 0.5 * r.steps  # the policy drove; holds only on overruns
        assert r.stages["loop"]["n"] == r.policy_steps and r.stages["inference"]["p50_ms"] > 0

    from uio2_robot.trajectories import EpisodeStore

    with EpisodeStore.open(store) as st:
        assert st.n_episodes == 3
        for i, r in enumerate(reports):
            meta = st.episode_meta(i)
            assert meta["seed"] == SEEDS[i] and meta["success"] == r.success
            ep = st.episode(i)
            assert ep.length == r.steps and ep.steps["front"].shape[1:] == (SIZE, SIZE, 3)
            applied = np.stack([t.command for t in r.ticks])
            np.testing.assert_array_equal(ep.steps["action"], applied)


def test_killed_server_makes_the_arm_hold_and_the_loop_resumes_after_a_restart() -> None:
    port = free_port()
    url = f"ws://127.0.0.1:{port}"
    watchdog_s = 0.5
    procs = [spawn_server(port)]
    wait_listening(port, procs[0])
    events: dict[str, float] = {}
    loop, driver, client = sim_loop(
        url,
        SEEDS[:1],
        {**FAST, "watchdog_s": watchdog_s, "max_seconds": 40.0},
        max_steps=600,  # the env's own limit: room for a slow restart on a busy machine
    )

    killer = threading.Thread(
        target=kill_then_restart,
        args=(procs, port, driver, events),
        kwargs={"after_steps": 8},
        daemon=True,
    )
    killer.start()
    try:
        report = loop.run_episode()
    finally:
        killer.join(30)
        loop.close()
        client.close()
        for p in procs:
            p.kill()
            p.wait(5)
    assert "kill" in events and "restart" in events, events
    ticks = report.ticks
    after_kill = [t for t in ticks if t.t > events["kill"]]
    first_hold = next(t for t in after_kill if t.mode != "policy")
    assert first_hold.t - events["kill"] <= watchdog_s + 1.0 / (HZ * FAST["speedup"])
    down = [t for t in ticks if events["kill"] + watchdog_s < t.t < events["restart"]]
    assert down and all(t.mode != "policy" for t in down)
    assert any(t.mode == "stopped" for t in down) and driver.stops >= 1
    moved = np.ptp(np.stack([t.proprio[:3] for t in down]), axis=0)
    assert np.all(moved < 0.005), moved  # the arm held still while the server was gone
    resumed = [t for t in ticks if t.t > events["restart"] and t.mode == "policy"]
    assert len(resumed) >= 5, report.summary()
    assert client.reconnects >= 2
    # the outage is in the report (issue #24: it showed `server_errors: {}` only)
    outages = report.summary()["server_outages"]
    assert outages["count"] == 1 and outages["reconnects"] == 1, outages
    assert 0.0 < outages["total_s"] <= events["restart"] - events["kill"] + 2.0, (outages, events)
    assert report.ended != "unreachable"


def test_robot_exits_nonzero_when_the_policy_stays_unreachable(tmp_path: Path) -> None:
    """The server goes away mid-episode and never comes back: the episode ends as
    "unreachable", the report counts the outage, and `robot` exits 1 (it exited 0)."""
    import json

    from uio2_robot.cli import main

    meta = metadata_for("random", image_size=SIZE, control_hz=HZ, action_mode="delta")
    server = ServerThread(PolicyServer(policy_factory("random", HZ), meta))
    report_file = tmp_path / "report.json"

    def stop_once_serving() -> None:  # after a few actions, however slow the robot's start
        deadline = time.monotonic() + 60
        while server.server.stats.inferences < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        server.stop()

    stopper = threading.Thread(target=stop_once_serving, daemon=True)
    stopper.start()
    try:
        status = main(
            [
                "robot",
                f"server={server.url}",
                "driver.sim.embodiment=floating",
                f"driver.sim.image_size={SIZE}",
                "episodes=1",
                "max_seconds=8",
                "speedup=2.0",
                "reconnect_interval_s=0.2",
                "log_level=ERROR",
                f"report={report_file}",
            ]
        )
    finally:
        stopper.join(60)
        server.stop()
    summary = json.loads(report_file.read_text())[0]
    assert status == 1, summary
    assert summary["ended"] == "unreachable", summary
    assert summary["server_outages"]["count"] == 1
    assert summary["server_outages"]["reconnects"] == 0
    assert summary["server_outages"]["total_s"] > 1.0


class Overshoot:
    """A policy gone wrong: huge deltas, wild yaw, tool chattering every step."""

    def __init__(self) -> None:
        self.n = 0

    def reset(self, prompt: Any, action_space: Any, env: Any = None) -> None:
        self.n = 0

    def act(self, obs: Any) -> np.ndarray:
        self.n += 1
        return np.array([0.9, 0.7, -0.8, 5.0, float(self.n % 2)], np.float32)


def test_out_of_bounds_actions_are_clamped_by_the_envelope(tmp_path: Path) -> None:
    limits = SafetyLimits(workspace_low=(0.3, -0.2, 0.05), workspace_high=(0.6, 0.1, 0.3))
    meta = metadata_for("overshoot", image_size=SIZE, control_hz=HZ, action_mode="delta")
    with ServerThread(PolicyServer(Overshoot, meta)) as server:
        loop, _driver, client = sim_loop(
            server.url, SEEDS[:1], {**FAST, "max_steps": 20}, limits=limits
        )
        try:
            report = loop.run_episode()
        finally:
            loop.close()
            client.close()
    policy = [t for t in report.ticks if t.mode == "policy"]
    assert len(policy) >= 10
    cap = min(limits.max_step_m, limits.max_speed_mps / HZ)
    for t in policy:
        assert np.linalg.norm(t.command[:3]) <= cap + 1e-6
        assert abs(t.command[3]) <= limits.max_yaw_step + 1e-6
        target = t.proprio[:3] + t.command[:3]
        assert np.all(target >= np.array(limits.workspace_low) - 1e-6)
        assert np.all(target <= np.array(limits.workspace_high) + 1e-6)
    final = report.ticks[-1].proprio
    assert final[0] <= 0.6 + 0.01 and final[1] <= 0.1 + 0.01 and final[2] >= 0.05 - 0.01
    toggles = np.count_nonzero(np.diff([t.command[4] for t in report.ticks]))
    assert toggles <= report.steps / HZ / limits.min_tool_interval_s + 1  # control time
    s = report.safety
    assert (
        s.clipped == len(policy) and s.step_limited > 0 and s.box_limited > 0 and s.tool_limited > 0
    )


def test_stop_file_brings_the_arm_to_a_safe_stop(tmp_path: Path) -> None:
    flag = tmp_path / "STOP"
    with oracle_server() as server:
        loop, driver, client = sim_loop(
            server.url,
            SEEDS[:1],
            {**FAST, "max_seconds": 20.0},
            estop=EmergencyStop(flag),
        )
        try:

            def press() -> None:
                end = time.monotonic() + 15
                while driver.steps < 6 and time.monotonic() < end:
                    time.sleep(0.005)
                flag.touch()

            presser = threading.Thread(target=press, daemon=True)
            presser.start()
            report = loop.run_episode()
            presser.join(5)
        finally:
            loop.close()
            client.close()
    assert report.ended == "estop" and "STOP" in (report.estop or "")
    assert 6 <= report.steps <= 9 and driver.stops >= 1


def test_loop_refuses_a_policy_built_for_another_rate() -> None:
    meta = metadata_for("overshoot", image_size=SIZE, control_hz=20.0, action_mode="delta")
    expected = "policy expects 20.0 Hz control but the loop runs at 10.0"
    with (
        ServerThread(PolicyServer(Overshoot, meta)) as server,
        pytest.raises(ValueError, match=expected),
    ):
        sim_loop(server.url, SEEDS[:1], FAST)


def test_two_robots_share_one_server_with_separate_episodes() -> None:
    """Two loops at once, different seeds: each connection gets its own sim twin and oracle."""
    reports: dict[int, Any] = {}
    errors: list[BaseException] = []

    def robot(i: int, url: str) -> None:
        try:
            loop, _driver, client = sim_loop(url, [SEEDS[i]], {**REAL_TIME, "max_seconds": 30.0})
            try:
                reports[i] = loop.run_episode()
            finally:
                loop.close()
                client.close()
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    with oracle_server() as server:
        threads = [threading.Thread(target=robot, args=(i, server.url)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        stats = server.server.stats
    assert not errors, errors
    assert stats.connections == 2 and stats.active == 0
    assert {r.meta["seed"] for r in reports.values()} == {SEEDS[0], SEEDS[1]}
    for r in reports.values():
        assert r.ended == "done" and not r.server_errors and r.policy_steps > 0, r.summary()


class FlakySensorDriver(SimDriver):
    """The sim driver with an encoder glitch: NaN proprio on steps 3, 4 and 5."""

    def read_state(self):  # type: ignore[no-untyped-def]
        state = super().read_state()
        if 3 <= self.steps <= 5:
            state.proprio[:] = np.nan
        return state


def test_nan_state_holds_the_arm_and_is_never_sent() -> None:
    meta = metadata_for("random", image_size=SIZE, control_hz=HZ, action_mode="delta")
    with ServerThread(PolicyServer(policy_factory("random", HZ), meta)) as server:
        driver = FlakySensorDriver(
            TASK, LEVEL, SEEDS[:1], image_size=SIZE, control_hz=HZ, embodiment="floating"
        )
        client = RemotePolicyClient(server.url)
        loop = ControlLoop(
            driver,
            [SimCamera("front", driver), SimCamera("top", driver)],
            client,
            LoopSettings(**FAST, max_steps=10),
        )
        try:
            loop.start()
            report = loop.run_episode()
        finally:
            loop.close()
            client.close()
        server_errors = dict(server.server.stats.errors)
    glitch = [t for t in report.ticks if 3 <= t.step <= 5]
    assert [t.mode for t in glitch] == ["hold"] * 3
    assert all(np.all(t.command[:4] == 0) for t in glitch)
    assert report.server_errors["bad_state"] == 3 and not server_errors
    assert report.steps == 10 and report.policy_steps >= 5
