"""A real network behind the server: the UIO2 policy from a (random-weight) checkpoint.

The served actions must be bit-identical to the same policy called in-process on the same
prompt and observations (the wire must not alter a float), and the robot loop must resize its
camera frames to what the checkpoint's processor expects.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from websockets.sync.client import connect

from uio2_robot.deploy.cameras import SimCamera
from uio2_robot.deploy.client import RemotePolicyClient
from uio2_robot.deploy.commands import build_metadata
from uio2_robot.deploy.config import PolicySpec
from uio2_robot.deploy.drivers import SimDriver
from uio2_robot.deploy.factory import policy_factory
from uio2_robot.deploy.loop import ControlLoop, LoopSettings
from uio2_robot.deploy.recording import DeployRecorder
from uio2_robot.deploy.server import PolicyServer, ServerThread
from uio2_robot.deploy.wire import WIRE_VERSION, pack, unpack
from uio2_robot.envs import spaces
from uio2_robot.trajectories import EpisodeStore

# The slowest allowed rate and a long reply window: torch eager on two shared, busy cores is not
# fast, and these tests are about the pipeline, not its speed (benchmarks/bench_loop_latency.py).
HZ = 5.0


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from uio2_robot.export.random_checkpoint import make_random_checkpoint

    root = tmp_path_factory.mktemp("net")
    # the suite's prompts ("Put the {img} into the {img}.") need more than tiny's 16 tokens
    return make_random_checkpoint(root / "ckpt", "tiny", seed=3, max_prompt_tokens=64)


@pytest.fixture(scope="module")
def server(checkpoint: Path):
    spec = PolicySpec(name="uio2", checkpoint=str(checkpoint))
    meta = build_metadata(
        spec, cameras=["front", "top"], image_size=128, control_hz=HZ, action_mode="delta"
    )
    factory = policy_factory("uio2", HZ, checkpoint=str(checkpoint))
    with ServerThread(PolicyServer(factory, meta)) as thread:
        yield thread


def test_metadata_comes_from_the_checkpoint_processor(server: ServerThread) -> None:
    meta = server.server.metadata
    assert meta.cameras == ("front", "top") and meta.image_size == (32, 32)
    assert not meta.privileged_sim


def test_served_actions_equal_in_process_actions_bit_for_bit(
    server: ServerThread, checkpoint: Path
) -> None:
    from uio2_robot.policies.factory import make_policy

    rng = np.random.default_rng(0)
    prompt = ["Put the ", rng.integers(0, 255, (16, 16, 3), dtype=np.uint8), " into the bowl."]
    steps = [
        {
            "front": rng.integers(0, 255, (32, 32, 3), dtype=np.uint8),
            "top": rng.integers(0, 255, (32, 32, 3), dtype=np.uint8),
            "proprio": rng.normal(size=6).astype(np.float32),
        }
        for _ in range(4)
    ]
    local = make_policy("uio2", checkpoint=str(checkpoint))
    local.reset(prompt, spaces.action_space("delta"))
    expected = [local.act(o) for o in steps]
    with connect(server.url, proxy=None, compression=None, legacy=True) as ws:

        def call(msg: dict) -> dict:
            ws.send(pack({"v": WIRE_VERSION, "id": 1, **msg}))
            return unpack(ws.recv(timeout=30), 1 << 24)

        assert call({"type": "reset", "prompt": prompt})["type"] == "reset_ok"
        for i, (o, want) in enumerate(zip(steps, expected, strict=True)):
            reply = call({"type": "infer", "tick": i, "step": i, "obs": o})
            np.testing.assert_array_equal(reply["actions"][0], want)
            assert reply["infer_ms"] > 0


def test_robot_loop_runs_the_network_and_resizes_frames(
    server: ServerThread, tmp_path: Path
) -> None:
    driver = SimDriver(
        "visual_manipulation", "L1", [11], image_size=64, control_hz=HZ, embodiment="floating"
    )
    client = RemotePolicyClient(server.url, request_timeout_s=5.0)
    recorder = DeployRecorder(tmp_path / "net.zarr")
    loop = ControlLoop(
        driver,
        [SimCamera("front", driver), SimCamera("top", driver)],
        client,
        LoopSettings(control_hz=HZ, max_steps=12, reply_wait_fraction=0.95, watchdog_s=2.0),
        recorder=recorder,
    )
    try:
        loop.start()
        report = loop.run_episode()
    finally:
        loop.close()
        client.close()
        recorder.close()
    assert report.ended == "max_steps" and not report.server_errors
    assert report.policy_steps >= 6, (report.summary(), report.stages)
    assert report.stages["inference"]["n"] >= 6
    with EpisodeStore.open(tmp_path / "net.zarr") as store:
        ep = store.episode(0)
        assert ep.steps["front"].shape == (12, 32, 32, 3)  # the processor's size, not the sim's
