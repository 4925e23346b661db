"""Pointing probe: where a checkpoint looks, on the demonstrations of one task.

Closed-loop success says *that* a policy fails; this says *where*. On a store's samples of one
task it reports, per demonstrated point, how often the pointing heads put the point in the right
observation patch (pick, place) and how often the picked patch finds the place point's patch in
the prompt's goal scene (the scene-pointing term). Seeing pick at 93% and place at 75% on
rearrange, for instance, is what located v10's failure in binding the object to its goal.

    python -m uio2_robot.train.probe --checkpoint uio2_robot/assets/default_policy \\
        --store data/oracle.zarr --task rearrange --samples 256
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from uio2_robot.policies.pretrained import load_pretrained
from uio2_robot.train.batching import POINT_TARGETS, batch_to_torch, encoder_inputs_from_numpy
from uio2_robot.train.objectives import PREFIXES, scene_point_scores, with_prefix
from uio2_robot.train.transform import TrainingTransform, collate_arrays
from uio2_robot.trajectories.dataset import WindowDataset


@dataclass
class PointScore:
    """Top-1 patch accuracy and cross-entropy of one pointing target over ``n`` samples."""

    accuracy: float
    cross_entropy: float
    n: int


def _score(scores: torch.Tensor, targets: torch.Tensor) -> PointScore | None:
    if len(targets) == 0:
        return None
    return PointScore(
        accuracy=float((scores.argmax(-1) == targets).float().mean()),
        cross_entropy=float(F.cross_entropy(scores.float(), targets)),
        n=len(targets),
    )


@torch.no_grad()
def probe_pointing(
    checkpoint: str, store: str, task: str, samples: int = 256, seed: int = 0
) -> dict[str, PointScore | None]:
    """Pick / place / scene pointing scores of ``checkpoint`` on ``samples`` windows of
    ``task`` drawn from ``store`` (None where the task has no such target)."""
    loaded = load_pretrained(checkpoint)
    model, processor, config = loaded.model, loaded.processor, loaded.config
    if model.point_head is None or not processor.point_maps:
        raise ValueError(f"{checkpoint} was not trained with pointing heads and point maps")
    action_mode = config.get("train", {}).get("action_mode", "primitive")
    transform = TrainingTransform(processor, action_mode, model.cfg.grid_hw)
    dataset = WindowDataset(
        [store],
        n_obs_history=model.cfg.max_history + 1,
        action_chunk=processor.action_horizon,
        keys=[*processor.camera_keys, processor.proprio_key],
        split="all",
        transform=transform,
    )
    of_task = np.flatnonzero(dataset.task_of_samples() == task)
    if not len(of_task):
        tasks = sorted(set(dataset.task_of_samples().tolist()))
        raise ValueError(f"store {store} holds no {task!r} episodes; it has {tasks}")
    index = np.random.default_rng(seed).choice(of_task, samples)
    batch = batch_to_torch(collate_arrays([dataset[int(i)] for i in index]), torch.device("cpu"))
    inputs = with_prefix(encoder_inputs_from_numpy(batch), *PREFIXES["s_action"], processor.vocab)
    enc = model.encode(inputs)
    points = batch[POINT_TARGETS]
    heads = model.point_logits(enc)
    out: dict[str, PointScore | None] = {}
    for k, name in enumerate(("pick", "place")):
        valid = points[:, k] >= 0
        out[name] = _score(heads[valid, k], points[valid, k])
    out["scene"] = None
    if model.cfg.max_prompt_scenes:
        scored = scene_point_scores(model, enc, inputs, points)
        out["scene"] = _score(*scored) if scored is not None else None
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--store", required=True)
    parser.add_argument("--task", required=True)
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    result = probe_pointing(args.checkpoint, args.store, args.task, args.samples, args.seed)
    print(json.dumps({k: asdict(v) if v else None for k, v in result.items()}, indent=2))


if __name__ == "__main__":
    main()
