"""Cost of the mixture of denoisers per training step, relative to the action loss alone.

With ``assignment="all"`` every active term is one more forward/backward pass over the batch;
``assignment="split"`` (UIO2's sampling) shares the batch among the terms. Variants are timed
interleaved in one process, so the ratios hold on a noisy machine.

    python benchmarks/mixture_cost.py --preset small --batch 8 --repeats 2
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from packing_throughput import make_batch  # noqa: E402

from uio2_robot.model.config import get_config  # noqa: E402
from uio2_robot.model.uio2 import UIO2Model  # noqa: E402
from uio2_robot.tokenize import Processor  # noqa: E402
from uio2_robot.train.batching import processor_sizes  # noqa: E402
from uio2_robot.train.config import MixtureConfig  # noqa: E402
from uio2_robot.train.objectives import compute_losses  # noqa: E402

FIVE = {"x_text": 0.25, "r_text": 0.25, "s_text": 0.25}
VARIANTS = {
    "s_action only": MixtureConfig(r_image=0.0),
    "default (s_action + r_image)": MixtureConfig(),
    "five terms, all": MixtureConfig(**FIVE),
    "five terms, split": MixtureConfig(**FIVE, assignment="split"),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="small")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = get_config(args.preset)
    proc = Processor.for_suite(n_bins=256, **processor_sizes(cfg))
    model = UIO2Model(cfg)
    batch = make_batch(proc, args.batch, np.random.default_rng(0))
    times: dict[str, list[float]] = {k: [] for k in VARIANTS}
    for rep in range(args.repeats + 1):  # first round is warm-up
        for name, mix in VARIANTS.items():
            model.zero_grad(set_to_none=True)
            t0 = time.perf_counter()
            out = compute_losses(model, batch, mix, torch.Generator().manual_seed(rep), proc.vocab)
            out["loss"].backward()
            if rep:
                times[name].append(time.perf_counter() - t0)
    base = float(np.median(times["s_action only"]))
    print(f"preset={args.preset} batch={args.batch} threads={args.threads}")
    for name, ts in times.items():
        med = float(np.median(ts))
        print(f"{name:30s} step {med * 1e3:8.1f} ms  cost x{med / base:.2f}")


if __name__ == "__main__":
    main()
