"""A robot PC with only ``uio2-robot[runtime]`` installed: run as ``python robot_pc.py serve
BUNDLE PORT`` or ``python robot_pc.py robot PORT OUT.json``. Every module outside the runtime
profile (torch, mujoco, gymnasium, tqdm, ...: tests/runtime_profile.py) raises ImportError here,
exactly as on a machine where it is not installed (tests/export/test_robot_pc.py)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from runtime_profile import install  # noqa: E402 (tests/runtime_profile.py, by path)

install()
sys.path.pop(0)

import numpy as np  # noqa: E402


class PointArm:
    """A driver whose arm is a point that moves exactly as commanded: no simulator needed."""

    name, realtime, tool = "point", False, "suction"

    def __init__(self, control_hz: float) -> None:
        self.control_hz = control_hz
        self.pose = np.array([0.5, 0.0, 0.15, 0.0])
        self.tool_on = 0.0
        self.sent = 0

    def connect(self) -> None: ...

    def start_episode(self):
        from uio2_robot.deploy.drivers import EpisodeStart

        return EpisodeStart(prompt=["push the block"], meta={})

    def read_state(self):
        from uio2_robot.deploy.drivers import RobotState

        proprio = np.array([*self.pose, self.tool_on, 0.0], np.float32)
        return RobotState(proprio, time.monotonic())

    def send(self, command: np.ndarray) -> None:
        self.pose = self.pose + np.asarray(command[:4], np.float64)
        self.tool_on = float(command[4] > 0.5)
        self.sent += 1

    def stop(self) -> None: ...

    def close(self) -> None: ...


class NoiseCamera:
    """A camera that sees a seeded noise image (the policy's weights are random anyway)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.rng = np.random.default_rng(0)

    def open(self) -> None: ...

    def read(self):
        from uio2_robot.deploy.cameras import Frame

        return Frame(self.rng.integers(0, 255, (64, 64, 3), dtype=np.uint8), time.monotonic())

    def close(self) -> None: ...


def serve(bundle: str, port: int) -> int:
    from omegaconf import OmegaConf

    from uio2_robot.deploy.commands import run_serve_command

    cfg = {"bundle": bundle, "port": port, "duration_s": 120.0, "log_level": "WARNING"}
    return run_serve_command(OmegaConf.create(cfg))


def robot(port: int, out: str) -> int:
    from uio2_robot.deploy.client import RemotePolicyClient
    from uio2_robot.deploy.loop import ControlLoop, LoopSettings

    client = RemotePolicyClient(f"ws://127.0.0.1:{port}", request_timeout_s=10.0)
    arm = PointArm(10.0)
    loop = ControlLoop(
        arm,
        [NoiseCamera("front"), NoiseCamera("top")],
        client,
        LoopSettings(control_hz=10.0, speedup=4.0, max_steps=60, reply_wait_fraction=0.9),
    )
    try:
        meta = loop.start(30.0)
        report = loop.run_episode()
    finally:
        loop.close()
        client.close()
    heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "mujoco"))
    summary = {
        **report.summary(),
        "served_mode": meta.action_mode,
        "sent": arm.sent,
        "heavy": heavy,
    }
    with open(out, "w") as f:
        json.dump(summary, f, default=str)
    return 0


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        sys.exit(serve(sys.argv[2], int(sys.argv[3])))
    sys.exit(robot(int(sys.argv[2]), sys.argv[3]))
