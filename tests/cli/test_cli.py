"""The console script: help, config composition, and clear errors for bad overrides."""

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
    assert "episodes: 20" in out and "tasks:" in out


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
