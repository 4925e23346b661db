"""`uio2-robot serve` / `uio2-robot robot` configs compose, validate and run (in-process policy)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from websockets.sync.client import connect

from uio2_robot.cli import compose
from uio2_robot.deploy.commands import (
    build_driver,
    resolve_policy,
    run_robot_command,
    run_serve_command,
)
from uio2_robot.deploy.config import PolicySpec, RobotConfig, ServeConfig
from uio2_robot.deploy.wire import WIRE_VERSION, pack, unpack
from uio2_robot.errors import UsageError


def test_serve_shorthands_pick_the_policy_kind(tmp_path: Path) -> None:
    cfg = compose("serve", [f"bundle={tmp_path}", "port=9000"], ServeConfig)
    spec = resolve_policy(PolicySpec(**cfg.policy), cfg.bundle, cfg.checkpoint)
    assert (spec.name, spec.bundle, cfg.port, cfg.host) == (
        "onnx",
        str(tmp_path),
        9000,
        "127.0.0.1",
    )
    with pytest.raises(FileNotFoundError, match="policy folder not found"):
        resolve_policy(PolicySpec(), str(tmp_path / "nope"), None)


def test_robot_presets_and_type_errors() -> None:
    cfg = compose("robot", ["+deploy=ur5e", "driver.ur.host=192.0.2.7"], RobotConfig)
    assert cfg.driver.name == "ur" and cfg.safety.max_speed_mps == 0.25
    assert [c.source for c in cfg.cameras] == ["0", "1"]
    with pytest.raises(UsageError, match="safety.max_step_m"):
        compose("robot", ["safety.max_step_m=fast"], RobotConfig)
    bad = RobotConfig()
    bad.driver.name = "ur"
    with pytest.raises(ValueError, match="driver.ur.host"):
        build_driver(bad)
    bad.driver.name = "kuka"
    with pytest.raises(ValueError, match="unknown driver 'kuka'"):
        build_driver(bad)


def test_robot_command_runs_and_records_an_in_process_episode(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store, report = tmp_path / "deployed.zarr", tmp_path / "report.json"
    cfg = compose(
        "robot",
        [
            "+deploy=sim_fast",
            "server=null",
            "policy=oracle",
            "episodes=1",
            "max_seconds=20",
            "log_level=WARNING",
            f"record.out={store}",
            f"report={report}",
        ],
        RobotConfig,
    )
    assert run_robot_command(cfg) == 0
    out = capsys.readouterr().out
    assert "success 1/1" in out
    summary = json.loads(report.read_text())[0]
    assert summary["ended"] == "done" and summary["success"] is True
    # the default robot: a simulated UR5e executing the oracle's primitives
    assert summary["meta"]["embodiment"] == "arm" and summary["action_mode"] == "primitive"
    assert summary["primitives"] >= 1 and not summary["rejected_primitives"]
    assert summary["latency"]["loop"]["n"] == summary["primitives"]
    assert summary["arm"] == {"ik_failures": 0, "joint_limit_stops": 0, "self_collisions": 0}

    from uio2_robot.trajectories import EpisodeStore

    with EpisodeStore.open(store) as st:
        assert st.n_episodes == 1 and st.episode_meta(0)["success"] is True
        assert st.episode(0).length == summary["primitives"]  # one step per executed primitive


def _serve_process(port: int) -> subprocess.Popen[str]:
    code = (
        "import sys\n"
        "from omegaconf import OmegaConf\n"
        "from uio2_robot.deploy.commands import run_serve_command\n"
        f"sys.exit(run_serve_command(OmegaConf.create({{'policy': {{'name': 'random'}}, "
        f"'port': {port}, 'duration_s': 60.0}})))\n"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code], stderr=subprocess.PIPE, text=True, env={**os.environ}
    )


def test_serve_command_stops_cleanly_on_sigint_and_names_a_taken_port() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = _serve_process(port)
    try:
        end = time.monotonic() + 30
        while time.monotonic() < end and proc.poll() is None:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        with connect(f"ws://127.0.0.1:{port}", proxy=None, legacy=True) as ws:
            ws.send(pack({"v": WIRE_VERSION, "id": 1, "type": "hello"}))
            assert unpack(ws.recv(timeout=10), 1 << 20)["metadata"]["policy"] == "random"
            # a second server on the same port is a clear user error, not a traceback
            cfg = compose("serve", ["policy=random", f"port={port}"], ServeConfig)
            with pytest.raises(ValueError, match=f"cannot listen on 127.0.0.1:{port}"):
                run_serve_command(cfg)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(15) == 0
        assert "server stopped" in (proc.stderr.read() if proc.stderr else "")
    finally:
        proc.kill()
        proc.wait(5)
