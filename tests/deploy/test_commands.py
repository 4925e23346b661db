"""`uio2-robot serve` / `uio2-robot robot` configs compose, validate and run (in-process policy)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from uio2_robot.cli import CLIError, compose
from uio2_robot.deploy.commands import build_driver, resolve_policy, run_robot_command
from uio2_robot.deploy.config import PolicySpec, RobotConfig, ServeConfig


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
    with pytest.raises(CLIError, match="safety.max_step_m"):
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
    assert summary["latency"]["loop"]["n"] == summary["policy_steps"] > 0

    from uio2_robot.trajectories import EpisodeStore

    with EpisodeStore.open(store) as st:
        assert st.n_episodes == 1 and st.episode_meta(0)["success"] is True
        assert st.episode(0).length == summary["steps"]
