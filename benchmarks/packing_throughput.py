"""Training-step throughput with and without packing (UIO2 reports ~4x from packing).

Builds a batch of VIMA-like examples (short interleaved prompts, 0-3 prompt images, early
episodes with partial history), then times forward + backward of the [S] action loss
unpacked and packed (capacity S and 2S), interleaved in one process so the ratio is robust to
machine noise. Prints encoder tokens computed per step and the speed ratios.

    python benchmarks/packing_throughput.py --preset small --batch 16 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np
import torch

from uio2_robot.model.config import get_config
from uio2_robot.model.uio2 import UIO2Model
from uio2_robot.tokenize import Processor
from uio2_robot.train.batching import encoder_inputs_from_numpy, processor_sizes
from uio2_robot.train.objectives import sequence_loss
from uio2_robot.train.packing import plan_packs

WORDS = [
    "put",
    "the",
    "red",
    "block",
    "into",
    "green",
    "bowl",
    "then",
    "rotate",
    "it",
    "degrees",
    "stack",
    "objects",
    "in",
    "order",
]


def make_batch(proc: Processor, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    examples = []
    for _ in range(n):
        n_img = int(rng.integers(0, proc.max_prompt_images + 1)) if proc.max_prompt_images else 0
        n_img = min(n_img, 3)
        prompt: list = []
        for k in range(n_img + 1):
            prompt.append(" ".join(rng.choice(WORDS, size=int(rng.integers(2, 6)))) + " ")
            if k < n_img:
                prompt.append(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8))
        frame = {c: rng.integers(0, 256, (96, 96, 3), dtype=np.uint8) for c in proc.camera_keys}
        history = [frame] * int(rng.integers(0, proc.max_history + 1))
        ex = proc.encode_inputs(prompt, {**frame, "proprio": rng.normal(size=6)}, history)
        ex["action_tokens"] = proc.action_target_tokens(rng.uniform(-0.3, 0.6, 6))
        examples.append(ex)
    return proc.collate(examples)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="small")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = get_config(args.preset)
    proc = Processor.for_suite(n_bins=256, **processor_sizes(cfg))
    model = UIO2Model(cfg)
    batch = make_batch(proc, args.batch, np.random.default_rng(0))
    inputs = encoder_inputs_from_numpy(batch)
    targets = torch.from_numpy(batch["action_tokens"])
    mask = torch.ones_like(targets, dtype=torch.bool)
    s = cfg.encoder_seq_len
    with torch.no_grad():
        lengths = model.embed(inputs).mask.sum(1).tolist()
    variants = {"unpacked": 0, "packed S": s, "packed 2S": 2 * s}
    rows = {"unpacked": args.batch}
    for name, cap in variants.items():
        if cap:
            rows[name] = len(
                plan_packs(lengths, cap, [targets.shape[1]] * args.batch, cfg.max_dec_len)
            )
    times: dict[str, list[float]] = {k: [] for k in variants}
    losses = {}
    for rep in range(args.repeats + 1):  # first round is warm-up
        for name, cap in variants.items():
            model.zero_grad(set_to_none=True)
            t0 = time.perf_counter()
            res = sequence_loss(
                model, inputs, targets, mask, proc.vocab, pack=cap > 0, pack_capacity=cap
            )
            res.loss.backward()
            dt = time.perf_counter() - t0
            if rep:
                times[name].append(dt)
            losses[name] = res.loss.item()
    base = float(np.median(times["unpacked"]))
    print(f"preset={args.preset} batch={args.batch} S={s} threads={args.threads}")
    print(f"real encoder tokens: mean {np.mean(lengths):.1f} of S={s} ({np.mean(lengths) / s:.0%})")
    for name, cap in variants.items():
        med = float(np.median(times[name]))
        print(
            f"{name:10s} rows={rows[name]:3d} x {cap or s:4d} tokens  step {med * 1e3:8.1f} ms  "
            f"speed x{base / med:.2f}  loss {losses[name]:.6f}"
        )


if __name__ == "__main__":
    main()
