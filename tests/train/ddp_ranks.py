"""Run under ``torchrun``: the CLI's own train path (compose, TrainConfig, Trainer), then this
rank's view of the result written to ``OUT/rank<RANK>.json`` (a digest of its weights, its step
and last loss), so tests/train/test_ddp.py can check that the ranks hold the same model after
DDP's gradient all-reduce while each trained on its own batches.

    torchrun --nproc_per_node=2 tests/train/ddp_ranks.py OUT train_override ...
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import torch
from omegaconf import OmegaConf

from uio2_robot.cli import compose
from uio2_robot.train.config import TrainConfig
from uio2_robot.train.loop import Trainer


def weights_digest(model: torch.nn.Module) -> str:
    """sha256 over every parameter and buffer, in name order (bit-exact comparison)."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def main(out: str, overrides: list[str]) -> int:
    cfg = OmegaConf.to_object(compose("train", [f"out={out}", *overrides], TrainConfig))
    assert isinstance(cfg, TrainConfig)
    trainer = Trainer(cfg)
    before = weights_digest(trainer.model)
    metrics = trainer.train()
    rank = int(os.environ["RANK"])
    report = {
        "rank": rank,
        "world": int(os.environ["WORLD_SIZE"]),
        "step": trainer.step,
        "before": before,
        "after": weights_digest(trainer.model),
        "loss": metrics["loss"],
    }
    (Path(out) / f"rank{rank}.json").write_text(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
