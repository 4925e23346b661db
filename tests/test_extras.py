"""Install profiles: the robot PC's entry points import with ``uio2-robot[runtime]`` alone, and a
command whose extra is missing says which one to install instead of a bare ImportError.

The children run under tests/runtime_profile.py, which refuses every installed module outside
pyproject's base + ``runtime`` lists (and their own dependencies), as a robot PC would; the
serve + robot loop itself runs that way in tests/export/test_robot_pc.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from uio2_robot.cli import main
from uio2_robot.extras import COMMAND_EXTRAS, extra_for_module, missing_extra_message

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from runtime_profile import profile_distributions, refused_modules  # noqa: E402

sys.path.remove(str(HERE))

ROBOT_PC_MODULES = (
    "uio2_robot.cli",
    "uio2_robot.deploy.commands",
    "uio2_robot.deploy.server",
    "uio2_robot.deploy.client",
    "uio2_robot.deploy.loop",
    "uio2_robot.deploy.factory",
    "uio2_robot.deploy.recording",
    "uio2_robot.deploy.ur_driver",
    "uio2_robot.policies.onnx_policy",
    "uio2_robot.runtime.runner",
    "uio2_robot.trajectories",
)


def run_as_robot_pc(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(HERE / "runtime_profile.py"), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_runtime_profile_is_what_pyproject_lists() -> None:
    dists = profile_distributions()
    assert {"onnxruntime", "numpy", "opencv-python-headless", "websockets", "msgpack"} <= dists
    refused = refused_modules()
    assert {"torch", "mujoco", "gymnasium", "tqdm", "matplotlib", "av", "pyarrow"} <= refused
    assert not {"numpy", "cv2", "onnxruntime", "zarr", "websockets", "msgpack"} & refused


def test_robot_pc_modules_import_with_the_runtime_profile_only() -> None:
    code = "import importlib, sys\n" + "".join(
        f"importlib.import_module({m!r})\n" for m in ROBOT_PC_MODULES
    )
    code += "from uio2_robot.deploy.metadata import metadata_for\n"
    done = run_as_robot_pc("-c", code)
    assert done.returncode == 0, done.stderr[-3000:]
    for command in ("--help", "serve --help", "robot --help"):
        done = run_as_robot_pc("-m", "uio2_robot.cli", *command.split())
        assert done.returncode == 0, (command, done.stderr[-3000:])


@pytest.mark.parametrize(
    ("argv", "extra"),
    [
        (["rollout", "policy=oracle", "episodes=1"], "sim"),
        (["collect", "tasks=[visual_manipulation]", "levels=[L1]", "episodes=1", "out=x"], "sim"),
        (["train", "stores=[x]", "out=y"], "train"),
        (["robot", "driver.name=sim", "episodes=1"], "sim"),
    ],
)
def test_a_command_without_its_extra_says_which_to_install(argv: list[str], extra: str) -> None:
    done = run_as_robot_pc("-m", "uio2_robot.cli", *argv)
    assert done.returncode == 2, done.stderr[-3000:]
    assert f'pip install "uio2-robot[{extra}]"' in done.stderr, done.stderr[-3000:]
    assert "Traceback" not in done.stderr


def test_missing_modules_map_to_the_extra_that_ships_them() -> None:
    assert extra_for_module("mujoco") == "sim"
    assert extra_for_module("torch.nn.functional") == "train"
    assert extra_for_module("tqdm", "collect") == "sim"  # in sim and train: the command's wins
    assert extra_for_module("tqdm", "train") == "train"
    assert extra_for_module("pyarrow") == "lerobot"
    assert extra_for_module("rtde_control") == "ur"
    assert extra_for_module("cv2") is None  # a base dependency
    message = missing_extra_message(ModuleNotFoundError("x", name="not_ours"), "export")
    assert 'pip install "uio2-robot[train,runtime]"' in message


def test_help_says_what_each_command_needs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    listed = {line.split()[0] for line in out.splitlines() if line[:2] == "  " and line[2] != " "}
    assert listed == set(COMMAND_EXTRAS)  # a new command needs its extras in COMMAND_EXTRAS
    assert (
        "needs: sim" in out and "needs: runtime" in out and 'pip install "uio2-robot[sim]"' in out
    )
