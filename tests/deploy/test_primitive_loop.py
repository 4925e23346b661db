"""Primitive actions on the robot stack: one VIMA pick-and-place per reply, run as motion.

The robot loop checks a served primitive whole, then executes it at the control rate with the
env's own follower (uio2_robot.motion.primitive), every command through the safety envelope.
These run the real sim driver, a real server on loopback (a killed server process too) and the
scripted oracle on a sim twin; every loop is bounded in ticks and wall time.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pytest
from deploy_sim import (
    HZ,
    LEVEL,
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
from websockets.sync.client import connect

from uio2_robot.deploy.cameras import SimCamera
from uio2_robot.deploy.client import LocalPolicyClient
from uio2_robot.deploy.drivers import SimDriver
from uio2_robot.deploy.estop import EmergencyStop
from uio2_robot.deploy.loop import ControlLoop, LoopSettings
from uio2_robot.deploy.metadata import metadata_for
from uio2_robot.deploy.server import PolicyServer, ServerThread
from uio2_robot.deploy.wire import WIRE_VERSION, pack, unpack
from uio2_robot.envs import make_env, oracle_action

FAST = {"control_hz": HZ, "speedup": 4.0, "keep_ticks": True}


class Fixed:
    """A policy that always answers with the same primitive."""

    def __init__(self, action: np.ndarray) -> None:
        self.action = np.asarray(action, np.float32)

    def reset(self, prompt: Any, action_space: Any, env: Any = None) -> None:
        assert action_space.shape == (6,)

    def act(self, obs: Any) -> np.ndarray:
        return self.action


def local_loop(
    action: np.ndarray, settings: dict[str, Any], driver_cls: type[SimDriver] = SimDriver, **kw: Any
) -> tuple[ControlLoop, SimDriver, LocalPolicyClient]:
    meta = metadata_for("fixed", image_size=SIZE, control_hz=HZ, action_mode="primitive")
    client = LocalPolicyClient(lambda: Fixed(action), meta)
    driver = driver_cls(
        TASK, LEVEL, SEEDS[:1], image_size=SIZE, control_hz=HZ, embodiment="floating"
    )
    loop = ControlLoop(
        driver,
        [SimCamera("front", driver), SimCamera("top", driver)],
        client,
        LoopSettings(**settings),
        **kw,
    )
    loop.start()
    return loop, driver, client


def first_oracle_primitive() -> tuple[np.ndarray, list[np.ndarray]]:
    """The oracle's first primitive for SEEDS[0], and the commands the env's primitive mode
    sends the sim for it (recorded by wrapping the real Sim.command, which still runs)."""
    env = make_env(TASK, LEVEL, action_mode="primitive", image_size=SIZE, control_hz=HZ)
    try:
        env.reset(seed=SEEDS[0])
        action = oracle_action(env)
        sim = env.unwrapped.sim
        sent: list[np.ndarray] = []
        real = sim.command

        def command(delta: np.ndarray, tool_on: bool) -> None:
            sent.append(np.array([*np.asarray(delta, np.float32), float(tool_on)], np.float32))
            real(delta, tool_on)

        sim.command = command
        env.step(action)
    finally:
        env.close()
    return action, sent


def test_the_env_and_the_robot_loop_run_the_same_primitive_motion() -> None:
    action, env_commands = first_oracle_primitive()
    loop, _driver, client = local_loop(action, {**FAST, "max_steps": 120})
    try:
        report = loop.run_episode()
    finally:
        loop.close()
        client.close()
    moving = [t.command for t in report.ticks if t.mode == "policy"]
    assert report.primitives >= 1 and not report.rejected_primitives
    assert len(moving) >= 15
    n = min(len(moving), len(env_commands))
    # same follower, same proprio, same physics: the very same command stream
    np.testing.assert_array_equal(np.stack(moving[:n]), np.stack(env_commands[:n]))
    assert report.success, report.summary()


def test_a_primitive_outside_the_workspace_is_rejected_before_any_motion() -> None:
    bad = np.array([0.95, 0.0, 0.0, 0.5, 0.0, 0.0], np.float32)  # pick beyond x = 0.75
    loop, driver, client = local_loop(bad, {**FAST, "max_steps": 30})
    try:
        report = loop.run_episode()
    finally:
        loop.close()
        client.close()
    assert report.rejected_primitives and "outside the workspace" in report.rejected_primitives[0]
    assert report.ended == "max_primitives" and report.primitives == driver.max_primitives
    assert all(t.mode == "hold" for t in report.ticks)
    pos = np.stack([t.proprio[:3] for t in report.ticks])
    assert np.all(np.ptp(pos, axis=0) < 1e-4)  # nothing moved
    assert "outside the workspace" in report.summary()["rejected_primitives"][0]


class EstopDuringMotion(SimDriver):
    """The sim driver with an operator who hits the e-stop after the 8th motion command."""

    estop: EmergencyStop
    pressed_at: float | None = None
    stopped_at: float | None = None
    sends_after_press = 0

    def send(self, command: np.ndarray) -> None:
        if self.pressed_at is not None:
            self.sends_after_press += 1
        super().send(command)
        if self.steps == 8 and self.pressed_at is None:
            self.pressed_at = time.monotonic()
            self.estop.trigger("operator")

    def stop(self) -> None:
        if self.pressed_at is not None and self.stopped_at is None:
            self.stopped_at = time.monotonic()
        super().stop()


def test_an_estop_mid_primitive_halts_within_one_control_period() -> None:
    action, _ = first_oracle_primitive()
    estop = EmergencyStop()
    EstopDuringMotion.estop = estop
    settings = {"control_hz": HZ, "speedup": 1.0, "keep_ticks": True, "max_steps": 60}
    loop, driver, client = local_loop(action, settings, EstopDuringMotion, estop=estop)
    try:
        report = loop.run_episode()
    finally:
        loop.close()
        client.close()
    assert isinstance(driver, EstopDuringMotion)
    assert report.ended == "estop" and report.estop == "operator"
    assert [t.mode for t in report.ticks[:8]].count("policy") >= 6  # it was mid-motion
    assert driver.sends_after_press == 0  # not one more command
    assert driver.pressed_at is not None and driver.stopped_at is not None
    assert driver.stopped_at - driver.pressed_at <= 1.0 / HZ + 0.02


def test_served_oracle_in_primitive_mode_records_the_executed_primitives(tmp_path: Any) -> None:
    from uio2_robot.deploy.recording import DeployRecorder
    from uio2_robot.trajectories import EpisodeStore

    store = tmp_path / "prim.zarr"
    recorder = DeployRecorder(store)
    with oracle_server(action_mode="primitive") as server:
        assert server.server.metadata.action_mode == "primitive"
        loop, _driver, client = sim_loop(
            server.url, SEEDS[:2], {**FAST, "max_seconds": 40.0}, recorder=recorder
        )
        try:
            reports = [loop.run_episode() for _ in range(2)]
        finally:
            loop.close()
            client.close()
            recorder.close()
    for r in reports:
        assert r.success and r.ended == "done" and not r.server_errors, r.summary()
        assert r.primitives >= 1 and r.action_mode == "primitive"
        assert r.stages["inference"]["n"] >= 1 and r.stages["jitter"]["n"] >= r.steps
    with EpisodeStore.open(store) as st:
        assert st.n_episodes == 2
        assert st.schema.action_names == ("x0", "y0", "yaw0", "x1", "y1", "yaw1")
        for i, r in enumerate(reports):
            ep = st.episode(i)
            assert ep.length == r.primitives and st.episode_meta(i)["action_mode"] == "primitive"


def test_a_server_killed_mid_primitive_leaves_the_arm_holding_and_the_loop_resumes() -> None:
    port = free_port()
    url = f"ws://127.0.0.1:{port}"
    watchdog_s = 0.5
    procs = [spawn_server(port, action_mode="primitive")]
    wait_listening(port, procs[0])
    events: dict[str, float] = {}
    loop, driver, client = sim_loop(
        url,
        SEEDS[:1],
        {"control_hz": HZ, "speedup": 2.0, "keep_ticks": True, "watchdog_s": watchdog_s},
        max_steps=600,
    )

    killer = threading.Thread(
        target=kill_then_restart,
        args=(procs, port, driver, events),
        kwargs={"after_steps": 8, "action_mode": "primitive"},
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
    assert any(t.mode == "policy" for t in ticks if t.t < events["kill"])  # killed mid-motion
    down = [t for t in ticks if events["kill"] + watchdog_s < t.t < events["restart"]]
    assert down and all(t.mode == "stopped" for t in down)
    moved = np.ptp(np.stack([t.proprio[:3] for t in down]), axis=0)
    assert np.all(moved < 0.005), moved  # the arm held still while the server was gone
    assert report.motion_pauses >= 1 and driver.stops >= 1
    resumed = [t for t in ticks if t.t > events["restart"] and t.mode == "policy"]
    assert len(resumed) >= 3, report.summary()
    assert report.success, report.summary()  # the resumed motion completed the task


def test_a_client_of_another_wire_version_is_refused_naming_both() -> None:
    meta = metadata_for("fixed", image_size=SIZE, control_hz=HZ, action_mode="primitive")
    server = ServerThread(PolicyServer(lambda: Fixed(np.zeros(6, np.float32)), meta))
    with server, connect(server.url) as ws:
        ws.send(pack({"v": WIRE_VERSION - 1, "id": 7, "type": "hello"}))
        reply = unpack(ws.recv(timeout=5), 1 << 20)
        ws.send(pack({"v": WIRE_VERSION, "id": 8, "type": "hello"}))
        ok = unpack(ws.recv(timeout=5), 1 << 20)
    assert reply["type"] == "error" and reply["code"] == "version" and reply["id"] == 7
    assert f"wire version {WIRE_VERSION - 1} is not supported" in reply["message"]
    assert f"speaks v{WIRE_VERSION}" in reply["message"]
    assert ok["type"] == "metadata" and ok["metadata"]["action_mode"] == "primitive"


@pytest.mark.parametrize("tool", ["suction", "spatula"])
def test_the_executor_settles_before_the_next_plan(tool: str) -> None:
    from uio2_robot.deploy.primitive_exec import PrimitiveExecutor

    ex = PrimitiveExecutor(tool, HZ, settle_s=0.2)
    assert ex.start(np.array([0.4, 0.0, 0.0, 0.6, 0.1, 0.0], np.float32)) is None
    proprio = np.array([0.5, 0.0, 0.15, 0.0, 0.0, 0.0], np.float32)
    ex.state, ex.follower = "moving", None  # pretend the motion just ended
    ex._begin_settle(proprio)
    holds = 0
    while not ex.idle:
        assert ex.next_command(proprio) is None
        holds += 1
    assert holds == 2  # settle_s = 0.2 s at 10 Hz, tool still
    assert "outside the workspace" in (ex.start(np.array([0.0] * 6, np.float32)) or "")
    assert "NaN" in (ex.start(np.array([np.nan] * 6, np.float32)) or "")
    assert ex.idle  # a rejected primitive changes nothing


class Recording(Fixed):
    """Fixed, and keeps every observation's proprio it was asked to plan from."""

    seen: list[np.ndarray]

    def reset(self, prompt: Any, action_space: Any, env: Any = None) -> None:
        super().reset(prompt, action_space, env)
        self.seen = []

    def act(self, obs: Any) -> np.ndarray:
        self.seen.append(np.array(obs["proprio"]))
        return super().act(obs)


def test_the_arm_plans_from_a_clear_view_with_the_pose_measured_before_it_parked() -> None:
    from uio2_robot.deploy.primitive_exec import HOME_POSE
    from uio2_robot.envs.arm import ARM_PARK

    action, _ = first_oracle_primitive()
    policy = Recording(action)
    meta = metadata_for("fixed", image_size=SIZE, control_hz=HZ, action_mode="primitive")
    client = LocalPolicyClient(lambda: policy, meta)
    driver = SimDriver(TASK, LEVEL, SEEDS[:1], image_size=SIZE, control_hz=HZ, embodiment="arm")
    loop = ControlLoop(
        driver,
        [SimCamera("front", driver), SimCamera("top", driver)],
        client,
        LoopSettings(**FAST, max_steps=150),
    )
    try:
        loop.start()
        assert driver.park_pose == ARM_PARK
        report = loop.run_episode()
    finally:
        loop.close()
        client.close()
    first_plan = next(i for i, t in enumerate(report.ticks) if t.mode == "hold")
    # the episode began with a move home and then out of view; the plan's frame is taken parked
    assert first_plan > 5 and all(t.mode == "policy" for t in report.ticks[:first_plan])
    np.testing.assert_allclose(report.ticks[first_plan].proprio[:3], ARM_PARK[:3], atol=0.01)
    # ... and the proprio it was sent is the pose measured at home, where training episodes start
    np.testing.assert_allclose(policy.seen[0][:3], HOME_POSE[:3], atol=0.005)
    assert report.success and report.arm == {
        "ik_failures": 0,
        "joint_limit_stops": 0,
        "self_collisions": 0,
    }
