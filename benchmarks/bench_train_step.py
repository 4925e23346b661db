"""Training-step throughput (forward + backward + AdamW) on the CPU or a GPU, in samples per second.

Times, interleaved in one process: forward only (no grad), forward + backward, and the full
step with AdamW, for a few batch sizes. The loss is cross-entropy on ``--tokens`` action tokens
(the [S] action objective's shape). Ratios are against forward-only at the same batch size and
against batch 1, so they survive a noisy machine.

    python benchmarks/bench_train_step.py --preset small --batch 1 4 16 --threads 2 --repeats 5
    python benchmarks/bench_train_step.py --device cuda --amp --batch 32 128 512 --repeats 20

On a GPU each timing waits for the device (``torch.cuda.synchronize``) and ``--amp`` runs under
bf16 autocast, as ``uio2-robot train`` does there.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("MUJOCO_GL", "egl")

import torch
import torch.nn.functional as F

from uio2_robot.model import UIO2Model, get_config, random_encoder_inputs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="small")
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--tokens", type=int, default=6)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cpu", help="cpu | cuda")
    ap.add_argument("--amp", action="store_true", help="bf16 autocast (GPU training's default)")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    cfg = get_config(args.preset)
    model = UIO2Model(cfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(0)
    data = {}
    for b in args.batch:
        targets = torch.randint(0, cfg.vocab_size, (b, args.tokens), generator=g)
        dec_in = torch.cat([torch.zeros(b, 1, dtype=torch.int64), targets[:, :-1]], dim=1)
        inputs = random_encoder_inputs(cfg, b, generator=g).to(device)
        data[b] = (inputs, dec_in.to(device), targets.to(device))

    def loss_of(b: int) -> torch.Tensor:
        inputs, dec_in, targets = data[b]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.amp):
            logits = model(inputs, dec_in)
        return F.cross_entropy(logits.float().flatten(0, 1), targets.flatten())

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def forward(b: int) -> None:
        with torch.no_grad():
            loss_of(b)

    def fwd_bwd(b: int) -> None:
        model.zero_grad(set_to_none=True)
        loss_of(b).backward()

    def train_step(b: int) -> None:
        opt.zero_grad(set_to_none=True)
        loss_of(b).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    modes = {"forward": forward, "forward+backward": fwd_bwd, "train step (AdamW)": train_step}
    for b in args.batch:  # warm-up
        for fn in modes.values():
            fn(b)
    times: dict[tuple[str, int], list[float]] = {(m, b): [] for m in modes for b in args.batch}
    for _ in range(args.repeats):
        for b in args.batch:
            for name, fn in modes.items():
                sync()
                start = time.perf_counter()
                fn(b)
                sync()
                times[(name, b)].append(time.perf_counter() - start)

    p50 = {k: statistics.median(v) for k, v in times.items()}
    print(
        f"preset={cfg.name} params={sum(p.numel() for p in model.parameters()) / 1e6:.2f}M "
        f"encoder_seq_len={cfg.encoder_seq_len} tokens={args.tokens} threads={args.threads} "
        f"repeats={args.repeats} device={_device_name(device)} amp={args.amp}"
    )
    b0 = args.batch[0]
    print(
        f"{'mode':20s} {'batch':>5s} {'p50 ms':>9s} {'samples/s':>10s} "
        f"{'vs forward':>11s} {f'vs batch {b0}':>11s}"
    )
    for name in modes:
        for b in args.batch:
            t = p50[(name, b)]
            per_sample_gain = (p50[(name, b0)] / b0) / (t / b)
            print(
                f"{name:20s} {b:5d} {t * 1e3:9.1f} {b / t:10.1f} "
                f"{t / p50[('forward', b)]:10.2f}x {per_sample_gain:10.2f}x"
            )


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return "cpu"


if __name__ == "__main__":
    main()
