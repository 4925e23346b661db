"""Shared pieces of the deploy loop tests: the sim driver loop, an oracle server (in a thread, or
a real process that can be SIGKILLed), free ports. This folder is put on sys.path by conftest."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from typing import Any

from uio2_robot.deploy.cameras import SimCamera
from uio2_robot.deploy.client import RemotePolicyClient
from uio2_robot.deploy.drivers import SimDriver
from uio2_robot.deploy.factory import policy_factory
from uio2_robot.deploy.loop import ControlLoop, LoopSettings
from uio2_robot.deploy.metadata import metadata_for
from uio2_robot.deploy.server import PolicyServer, ServerThread
from uio2_robot.seeding import episode_seed

TASK, LEVEL, SIZE, HZ = "visual_manipulation", "L1", 64, 10.0
SEEDS = [episode_seed(2000, TASK, LEVEL, i) for i in range(3)]
FAST = {"control_hz": HZ, "speedup": 2.0, "keep_ticks": True}
# Real time for the success comparison: holds caused by a busy machine would change the oracle's
# motion (its contact detection reads a hold as "blocked"), which is not what is being compared.
REAL_TIME = {"control_hz": HZ, "speedup": 1.0, "keep_ticks": True}


def oracle_server(port: int = 0, action_mode: str = "delta") -> ServerThread:
    meta = metadata_for(
        "oracle", image_size=SIZE, control_hz=HZ, privileged_sim=True, action_mode=action_mode
    )
    return ServerThread(PolicyServer(policy_factory("oracle", HZ), meta, port=port))


def sim_loop(
    url: str, seeds: list[int], settings: dict[str, Any], **kwargs: Any
) -> tuple[ControlLoop, SimDriver, RemotePolicyClient]:
    driver = SimDriver(
        kwargs.pop("task", TASK),
        LEVEL,
        seeds,
        image_size=SIZE,
        control_hz=HZ,
        max_steps=kwargs.pop("max_steps", None),
        embodiment=kwargs.pop("embodiment", "floating"),
    )
    client = RemotePolicyClient(url, reconnect_interval_s=0.2, request_timeout_s=2.0)
    cams = [SimCamera("front", driver), SimCamera("top", driver)]
    loop = ControlLoop(driver, cams, client, LoopSettings(**settings), **kwargs)
    try:
        loop.start()
    except BaseException:
        loop.close()
        client.close()
        raise
    return loop, driver, client


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spawn_server(port: int, action_mode: str = "delta") -> subprocess.Popen[bytes]:
    """`run_serve_command` in its own process, so it can be killed for real (SIGKILL)."""
    code = (
        "from omegaconf import OmegaConf\n"
        "from uio2_robot.deploy.commands import run_serve_command\n"
        f"run_serve_command(OmegaConf.create({{'policy': {{'name': 'oracle'}}, 'port': {port}, "
        f"'image_size': {SIZE}, 'control_hz': {HZ}, 'duration_s': 60.0, 'log_level': 'WARNING', "
        f"'action_mode': '{action_mode}'}}))\n"
    )
    env = {**os.environ, "MUJOCO_GL": "egl"}
    return subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.DEVNULL)


def wait_listening(port: int, proc: subprocess.Popen[bytes], timeout_s: float = 30.0) -> float:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        assert proc.poll() is None, "the server process died while starting"
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return time.monotonic()
        time.sleep(0.05)
    raise TimeoutError(f"no server on port {port} after {timeout_s} s")


def kill_then_restart(
    procs: list[subprocess.Popen[bytes]],
    port: int,
    driver: SimDriver,
    events: dict[str, float],
    *,
    after_steps: int = 8,
    action_mode: str = "delta",
) -> None:
    """Once the robot has applied ``after_steps`` commands: SIGKILL the server process, wait 1 s,
    start a new one on the same port; ``events`` gets the times of the kill and the restart."""
    end = time.monotonic() + 20.0
    while driver.steps < after_steps and time.monotonic() < end:
        time.sleep(0.005)
    procs[0].send_signal(signal.SIGKILL)
    events["kill"] = time.monotonic()
    procs[0].wait(5)
    time.sleep(1.0)
    procs.append(spawn_server(port, action_mode=action_mode))
    events["restart"] = wait_listening(port, procs[-1], timeout_s=30.0)
