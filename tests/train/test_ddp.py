"""`torchrun` runs the unchanged trainer under DDP (gloo on CPU here, NCCL on GPUs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from uio2_robot.cli import main
from uio2_robot.train.checkpoint import load_train_state

pytestmark = pytest.mark.slow


def test_torchrun_two_processes_train_and_save(tmp_path):
    store = tmp_path / "s.zarr"
    assert (
        main(
            [
                "collect",
                "tasks=[visual_manipulation]",
                "levels=[L1]",
                "episodes=4",
                "workers=0",
                "image_size=64",
                f"out={store}",
                "progress=false",
            ]
        )
        == 0
    )
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MUJOCO_GL": "egl"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_port=29517",
        "-m",
        "uio2_robot.cli",
        "train",
        f"stores=[{store}]",
        f"out={out}",
        "model=tiny",
        "+model_overrides.max_prompt_tokens=96",
        "steps=3",
        "time_limit_s=1e-9",  # every rank must stop after the same (first) step, not hang
        "batch_size=2",
        "val_fraction=0",
        "progress=false",
        "device=cpu",
    ]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["samples_per_s"] > 0
    assert (out / "checkpoints" / "policy" / "model.safetensors").is_file()
    assert load_train_state(out / "checkpoints" / "last")["step"] == 1
