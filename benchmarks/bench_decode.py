"""Decoding latency with and without the KV cache, and the whole control step, in torch eager.

A control step is: encode the observation once, then decode one action token per action
dimension. With the cache, cross-attention keys/values are computed once and each token costs
one ``decode_step``; without it, every token re-runs the decoder over the whole prefix (and the
cross-attention projections). Both paths are timed interleaved in one process, so the ratio is
robust to a noisy machine. Torch eager is the proxy for the exported ONNX graphs.

    python benchmarks/bench_decode.py --preset small --tokens 6 --threads 2 --repeats 30
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("MUJOCO_GL", "egl")

import torch

from uio2_robot.model import UIO2Model, get_config, random_encoder_inputs


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="small")
    ap.add_argument("--tokens", type=int, default=6, help="tokens decoded per control step")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--batch", type=int, default=1)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = get_config(args.preset)
    model = UIO2Model(cfg).eval()
    inputs = random_encoder_inputs(cfg, args.batch, generator=torch.Generator().manual_seed(0))
    b, n, bos = args.batch, args.tokens, cfg.vocab_size - 3

    with torch.inference_mode():
        enc = model.encode(inputs)

        def cached() -> torch.Tensor:
            cross_k, cross_v = model.precompute_cross_kv(enc.hidden, enc.positions, enc.rope_2d)
            self_k = self_v = model.empty_cache(b)
            tok = torch.full((b, 1), bos, dtype=torch.int64)
            for i in range(n):
                pos = torch.full((b,), i, dtype=torch.int64)
                logits, self_k, self_v = model.decode_step(
                    tok, pos, self_k, self_v, cross_k, cross_v, enc.mask
                )
                tok = logits.argmax(-1, keepdim=True)
            return tok

        def uncached() -> torch.Tensor:
            seq = torch.full((b, 1), bos, dtype=torch.int64)
            for _ in range(n):
                nxt = model.decode(seq, enc)[:, -1].argmax(-1, keepdim=True)
                seq = torch.cat([seq, nxt], dim=1)
            return seq[:, -1:]

        assert torch.equal(cached(), uncached()), "cached and uncached decoding disagree"
        fns = {
            "decode, KV cache": cached,
            "decode, no cache": uncached,
            "encode": lambda: model.encode(inputs),
            "control step (encode + cached decode)": lambda: model.generate(inputs, n, bos_id=bos),
        }
        for fn in fns.values():  # warm-up
            fn()
        times: dict[str, list[float]] = {k: [] for k in fns}
        for _ in range(args.repeats):
            for name, fn in fns.items():
                times[name].append(_timed(fn))

    p50 = {k: statistics.median(v) for k, v in times.items()}
    print(
        f"preset={cfg.name} batch={b} tokens={n} threads={args.threads} "
        f"repeats={args.repeats} encoder_seq_len={cfg.encoder_seq_len}"
    )
    print(f"{'what':40s} {'p50 ms':>9s} {'per token ms':>13s} {'vs cached':>10s}")
    for name, ms in p50.items():
        per_tok = f"{ms / n:13.3f}" if name.startswith("decode") else " " * 13
        ratio = p50[name] / p50["decode, KV cache"]
        print(f"{name:40s} {ms:9.2f} {per_tok} {ratio:9.2f}x")
    print(
        f"KV-cache speed-up on {n} tokens: {p50['decode, no cache'] / p50['decode, KV cache']:.2f}x"
    )


if __name__ == "__main__":
    main()
