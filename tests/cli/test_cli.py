"""The console script: help, config composition, and clear errors for bad overrides."""

import json
import subprocess
import sys

from uio2_robot.cli import main


def test_help_lists_subcommands(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in ("rollout", "info"):
        assert name in out


def test_command_help_prints_default_config(capsys):
    assert main(["rollout", "--help"]) == 0
    out = capsys.readouterr().out
    assert "episodes: 10  # per task and level" in out and "tasks:" in out


def test_unknown_command_is_an_error(capsys):
    assert main(["fly"]) == 2
    assert "unknown command" in capsys.readouterr().err


def test_unknown_override_key_is_a_clear_error(capsys):
    assert main(["rollout", "episodez=3"]) == 2
    assert "episodez" in capsys.readouterr().err


def test_wrong_type_override_is_a_clear_error(capsys):
    assert main(["rollout", "episodes=many"]) == 2
    assert "episodes" in capsys.readouterr().err


def test_console_script_is_installed():
    out = subprocess.run(
        [sys.executable, "-m", "uio2_robot.cli", "--help"], capture_output=True, text=True
    )
    assert out.returncode == 0 and "rollout" in out.stdout


def test_ctrl_c_during_collect_keeps_stored_episodes_and_says_how_to_resume(tmp_path):
    """A real SIGINT to the console script: exit 130 with a one-line message, not a traceback,
    and the episodes already flushed to the store stay readable."""
    import os
    import signal
    import time

    from uio2_robot.trajectories import EpisodeStore

    out = tmp_path / "demo.zarr"
    proc = subprocess.Popen(
        [sys.executable, "-m", "uio2_robot.cli", "collect", f"out={out}",
         "tasks=[visual_manipulation]", "episodes=2000", "workers=0", "image_size=32",
         "progress=false"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ},
        # a shell running the suite in the background ignores SIGINT, and a child inherits
        # that (Python then installs no KeyboardInterrupt handler): give it back the default
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    deadline = time.time() + 120
    while not (out / "zarr.json").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert (out / "zarr.json").exists(), proc.communicate()[1][-2000:]

    def stored() -> int:
        try:
            return EpisodeStore.open(out, mode="r").n_episodes
        except Exception:  # the store's first commit may not be written yet
            return 0

    while stored() < 1 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)  # interrupt mid-run, once an episode is committed (slow hosts)
    assert proc.poll() is None, "collect finished before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert "collect: interrupted; rerun the same command to resume" in err
    assert "Traceback" not in err
    store = EpisodeStore.open(out)
    assert store.n_episodes >= 1 and store.validate() == []


def test_train_task_weights_compose_from_the_command_line():
    from uio2_robot.cli import _commands, compose

    schema = _commands()["train"].schema
    cfg = compose("train", ["task_weights={rearrange:1.5,rotate:2}"], schema)
    assert dict(cfg.task_weights) == {"rearrange": 1.5, "rotate": 2.0}
    assert dict(compose("train", [], schema).task_weights) == {}
    assert main(["train", "task_weights={rearrange:lots}"]) == 2


def test_a_bad_objective_mix_is_refused_before_training(capsys, tmp_path):
    """The mixture's own checks (MixtureConfig, the one dataclass for it) run on the command
    line's values: exit 2, the rule named, no run folder written."""
    out = tmp_path / "run"
    code = main(
        ["train", "stores=[x.zarr]", f"out={out}", "mixture.s_action=0", "mixture.r_image=0"]
    )
    assert code == 2
    assert "at least one positive weight" in capsys.readouterr().err
    assert not out.exists()


def test_policy_groups_compose_and_name_what_they_need(capsys):
    """``policy=onnx bundle=DIR`` and ``policy=uio2 checkpoint=DIR`` are the spelled-out forms of
    the ``bundle=`` / ``checkpoint=`` shorthands; without the folder the error says so."""
    from uio2_robot.cli import _commands, compose
    from uio2_robot.eval.runner import policy_kwargs

    schema = _commands()["rollout"].schema
    onnx = compose("rollout", ["policy=onnx", "bundle=exports/b", "policy.threads=2"], schema)
    kwargs = policy_kwargs(onnx)
    assert (kwargs["name"], kwargs["bundle"], kwargs["threads"]) == ("onnx", "exports/b", 2)
    torch_cfg = compose("rollout", ["policy=uio2", "checkpoint=runs/c"], schema)
    assert policy_kwargs(torch_cfg)["name"] == "uio2"
    assert main(["rollout", "policy=onnx", "episodes=1"]) != 0
    assert "policy=onnx needs bundle=DIR" in capsys.readouterr().err


def test_collect_runs_each_task_at_the_requested_levels_it_has(tmp_path, capsys):
    """VIMA has no L3 sweep_without_exceeding: collecting levels=[L2,L3] stores its L2 episode
    and says so, instead of failing one episode per seed (as rollout skips it too)."""
    from uio2_robot.trajectories import EpisodeStore

    out = tmp_path / "s.zarr"
    code = main(
        ["collect", f"out={out}", "tasks=[sweep_without_exceeding]", "levels=[L2,L3]",
         "episodes=1", "workers=0", "image_size=32", "progress=false"]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err[-2000:]
    assert "sweep_without_exceeding has no level ['L3']" in captured.err
    metas = EpisodeStore.open(out, mode="r").all_meta()
    assert [(m["task"], m["level"]) for m in metas] == [("sweep_without_exceeding", "L2")]


def test_collect_runs_a_trained_policy_and_keeps_its_successes(tmp_path, capsys):
    """``collect checkpoint=DIR`` (or ``policy=default``) records a trained policy's episodes,
    the data of a self-improvement round; with only_success its failures are not stored."""
    from uio2_robot.policies.factory import DEFAULT_POLICY_DIR
    from uio2_robot.trajectories import EpisodeStore

    out = tmp_path / "s.zarr"
    args = ["collect", f"out={out}", "tasks=[visual_manipulation]", "levels=[L1]",
            "episodes=2", "workers=0", "progress=false", "seed=3000000"]  # fmt: skip
    assert main([*args, f"checkpoint={DEFAULT_POLICY_DIR}", "only_success=false"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["policy"] == "uio2" and summary["stored"] == 2
    metas = EpisodeStore.open(out, mode="r").all_meta()
    assert {m["extra"]["policy"] for m in metas} == {"uio2"}
    kept = tmp_path / "kept.zarr"
    assert main([*args[:1], f"out={kept}", *args[2:], "policy=default"]) == 0
    summary = json.loads(capsys.readouterr().out)
    successes = sum(m["success"] for m in metas)
    assert (summary["stored"], summary["discarded"]) == (successes, 2 - successes)
