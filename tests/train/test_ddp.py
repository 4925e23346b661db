"""`torchrun` runs the unchanged trainer under DDP (gloo on CPU here, NCCL on GPUs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from uio2_robot.cli import main
from uio2_robot.train.checkpoint import load_train_state

pytestmark = pytest.mark.slow
HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = tmp_path_factory.mktemp("ddp") / "s.zarr"
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
    return store


TINY_RUN = ["model=tiny", "+model_overrides.max_prompt_tokens=96", "batch_size=2"]
TINY_RUN += ["val_fraction=0", "progress=false", "device=cpu"]


def torchrun(port: int, target: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    """Two gloo ranks on this machine running ``target`` (``-m module`` or a script) with a
    tiny train config; asserts they exit cleanly."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MUJOCO_GL": "egl"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2"]
    cmd += [f"--master_port={port}", *target, *args, *TINY_RUN]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def test_torchrun_two_processes_train_and_save(store: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    torchrun(
        29517,
        ["-m", "uio2_robot.cli", "train"],
        f"stores=[{store}]",
        f"out={out}",
        "steps=3",
        "time_limit_s=1e-9",  # every rank must stop after the same (first) step, not hang
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["samples_per_s"] > 0
    assert (out / "checkpoints" / "policy" / "model.safetensors").is_file()
    assert load_train_state(out / "checkpoints" / "last")["step"] == 1


def test_the_two_ranks_end_with_the_same_weights(store: Path, tmp_path: Path) -> None:
    """DDP all-reduces gradients: after 2 steps on different batches the ranks' weights are
    bit-identical, and they moved (ddp_ranks.py writes each rank's digest)."""
    out = tmp_path / "run"
    torchrun(
        29518,
        [str(HERE / "ddp_ranks.py"), str(out)],
        f"stores=[{store}]",
        "steps=2",
        "warmup_steps=1",
    )
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world"] for r in ranks] == [2, 2] and [r["step"] for r in ranks] == [2, 2]
    assert ranks[0]["before"] == ranks[1]["before"]  # same seed, same initial model
    assert ranks[0]["after"] == ranks[1]["after"]  # kept in sync by the all-reduce
    assert ranks[0]["after"] != ranks[0]["before"]  # and trained
