"""Latency of one full control step: torch eager vs onnxruntime fp32 and int8, in one process.

A control step is ``policy.act(obs)`` with re-planning at every step: preprocess the camera
frames and proprio, encode prompt + observation + history, decode every action token greedily
under the action-bin constraint, detokenize, clip. The three policies take turns on the same
observations in blocks of ``--block`` consecutive steps (round-robin over blocks, so load
spikes on a shared machine hit them alike, while each block runs with warm caches as a control
loop that runs one policy does; alternating every step measured cache refills, ~1.5 ms per
step) with the same thread count (``torch.set_num_threads`` and onnxruntime's ``intra_op_num_threads``), after a
warm-up, and the ratios are against torch eager measured in the same run.

Usage::

    python benchmarks/bench_control_step.py                      # shipped policy or random `small`
    python benchmarks/bench_control_step.py --checkpoint CKPT --iters 200 --threads 2

Prints a markdown table for the README and which weights were used. The latency does not
depend on the weights, so a random `small` model stands in when no trained policy ships.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

os.environ.setdefault("MUJOCO_GL", "egl")  # before anything can import mujoco

import numpy as np  # noqa: E402

if TYPE_CHECKING:
    from uio2_robot.runtime.manifest import Bundle


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from uio2_robot.policies.factory import DEFAULT_POLICY_DIR

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--checkpoint",
        type=Path,
        default=DEFAULT_POLICY_DIR if (DEFAULT_POLICY_DIR / "config.json").is_file() else None,
        help="checkpoint folder (default: the shipped policy if present, else random `small`)",
    )
    p.add_argument("--preset", default="small", help="preset of the random model (no checkpoint)")
    p.add_argument("--iters", type=int, default=200, help="timed control steps per policy")
    p.add_argument("--warmup", type=int, default=20, help="untimed steps per policy first")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch and onnxruntime threads (1: on this 2-vCPU machine 2 threads are slower)",
    )
    p.add_argument("--block", type=int, default=10, help="consecutive steps per policy turn")
    p.add_argument(
        "--episode-starts", type=int, default=20, help="resets timed for the first-step column"
    )
    p.add_argument("--variants", default="fp32,int8", help="ONNX variants to time")
    p.add_argument("--image", type=int, default=128, help="camera frame size fed to the policy")
    p.add_argument(
        "--full-encoder",
        action="store_true",
        help="also time an fp32 bundle whose encoder runs on the padded static sequence",
    )
    p.add_argument(
        "--cuda",
        action="store_true",
        help="also time the torch policy on the GPU (fp32; each step ends with the action on the host)",
    )
    p.add_argument(
        "--scene",
        action="store_true",
        help="a rearrange-style prompt whose image is a whole camera frame (a goal scene), so "
        "policies with prompt scenes guide their placement; adds an unguided fp32 row",
    )
    p.add_argument("--work-dir", type=Path, default=None, help="where bundles go (default: temp)")
    p.add_argument(
        "--reuse",
        action="store_true",
        help="reuse the checkpoint and bundles a previous run left in --work-dir",
    )
    return p.parse_args(argv)


def percentiles(samples: list[float]) -> tuple[float, float]:
    arr = np.asarray(samples) * 1e3
    return float(np.percentile(arr, 50)), float(np.percentile(arr, 99))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    from uio2_robot.envs.spaces import CAMERAS, action_space
    from uio2_robot.export.bundle import convert_bundle, export_bundle
    from uio2_robot.export.random_checkpoint import make_random_checkpoint
    from uio2_robot.policies.onnx_policy import OnnxPolicy
    from uio2_robot.policies.uio2 import UIO2Policy
    from uio2_robot.runtime.manifest import load_bundle

    torch.set_num_threads(args.threads)
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="bench_control_step."))
    if args.checkpoint is not None:
        # a snapshot: a training run may overwrite its `last` checkpoint while we export
        checkpoint, weights = work / "ckpt", f"checkpoint {args.checkpoint}"
        if not (args.reuse and (checkpoint / "config.json").is_file()):
            shutil.copytree(args.checkpoint, checkpoint, dirs_exist_ok=True)
    else:
        checkpoint = work / "ckpt"
        if not (args.reuse and (checkpoint / "config.json").is_file()):
            make_random_checkpoint(checkpoint, args.preset, seed=0)
        weights = f"randomly initialised `{args.preset}` (latency does not depend on weights)"
    print(f"weights: {weights}", file=sys.stderr)

    def bundle(name: str, make: Callable[[Path], Bundle]) -> Bundle:
        folder = work / name.replace(" ", "_")
        if args.reuse and (folder / "manifest.json").is_file():
            return load_bundle(folder)
        return make(folder)

    t0 = time.perf_counter()
    bundles = {"fp32": bundle("fp32", lambda f: export_bundle(checkpoint, f, overwrite=True))}
    for variant in args.variants.split(","):
        if variant != "fp32":
            bundles[variant] = bundle(
                variant,
                lambda f, v=variant: convert_bundle(bundles["fp32"].root, f, v, overwrite=True),
            )
    if args.full_encoder:
        bundles["fp32 full S"] = bundle(
            "fp32_full",
            lambda f: export_bundle(checkpoint, f, overwrite=True, compact_encoder=False),
        )
    print(f"exported {sorted(bundles)} in {time.perf_counter() - t0:.0f} s", file=sys.stderr)

    policies = {"torch eager": UIO2Policy.from_checkpoint(checkpoint)}
    if args.cuda:
        if not torch.cuda.is_available():
            raise SystemExit("--cuda: torch sees no GPU on this machine")
        name = f"torch eager, CUDA ({torch.cuda.get_device_name()})"
        policies[name] = UIO2Policy.from_checkpoint(checkpoint, device="cuda")
    for variant in bundles:
        policies[f"onnxruntime {variant}"] = OnnxPolicy(bundles[variant].root, threads=args.threads)
    guided = policies["onnxruntime fp32"].guide_place
    if args.scene and guided:  # what guidance costs: the same bundle without it
        policies["onnxruntime fp32, unguided"] = OnnxPolicy(
            bundles["fp32"].root, threads=args.threads, guide_place=False
        )
    if policies["onnxruntime fp32"].runner.has_prompt_cache and not args.scene:
        # the uncached baseline (guidance reads the scene from the cache; no scene here anyway)
        policies["onnxruntime fp32, prompt re-encoded every step"] = OnnxPolicy(
            bundles["fp32"].root, threads=args.threads, cache_prompt=False, guide_place=False
        )
    cfg = bundles["fp32"].manifest["model_config"]
    processor = policies["torch eager"].processor

    # A VIMA-style prompt (text + two object crops) and camera frames at the suite's size.
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 256, (48, 48, 3), dtype=np.uint8) for _ in range(2)]
    prompt = ["Put the ", crops[0], " into the ", crops[1], "."]
    if args.scene:
        if processor.frame_size is None:
            raise SystemExit("--scene: this policy's processor has no frame_size (no scenes)")
        prompt = ["Rearrange to this ", rng.integers(0, 256, (*processor.frame_size, 3), np.uint8)]
    frame = processor.frame_size if args.scene else (args.image, args.image)
    observations = []
    for _ in range(16):
        obs = {k: rng.integers(0, 256, (*frame, 3), dtype=np.uint8) for k in CAMERAS}
        obs[processor.proprio_key] = rng.normal(size=processor.proprio_dim).astype(np.float32)
        observations.append(obs)
    space = action_space("primitive")
    for policy in policies.values():
        policy.reset(prompt, space)

    load_before = os.getloadavg()[0]  # other processes on a shared machine skew every row
    times: dict[str, list[float]] = {name: [] for name in policies}
    actions: dict[str, list[np.ndarray]] = {name: [] for name in policies}
    for first in range(0, args.warmup + args.iters, args.block):
        for name, policy in policies.items():
            for i in range(first, min(first + args.block, args.warmup + args.iters)):
                obs = observations[i % len(observations)]
                start = time.perf_counter()
                action = policy.act(obs)
                elapsed = time.perf_counter() - start
                if i >= args.warmup:
                    times[name].append(elapsed)
                    actions[name].append(action)
    # The first step of an episode also encodes the prompt (a prefix model caches it after).
    first_step: dict[str, list[float]] = {name: [] for name in policies}
    for i in range(args.episode_starts):
        for name, policy in policies.items():
            policy.reset(prompt, space)
            start = time.perf_counter()
            policy.act(observations[i % len(observations)])
            first_step[name].append(time.perf_counter() - start)

    base_p50, _ = percentiles(times["torch eager"])
    n_tokens = processor.n_action_tokens("primitive")
    onnx_fp32 = policies["onnxruntime fp32"]
    _, _, enc_mask = onnx_fp32.runner.encode(onnx_fp32.encoder_arrays(observations[0]))
    model_cfg = policies["torch eager"].model.cfg
    static_len = model_cfg.encoder_seq_len
    if onnx_fp32.runner.has_prompt_cache:
        step_len = static_len - model_cfg.prompt_seq_len
        encode = (
            f"encode observation + history + proprio ({step_len} positions) against the prompt "
            f"encoded once per episode ({enc_mask.shape[1] - step_len} real prompt positions)"
        )
    else:
        encode = (
            f"encode prompt + observation + history: {static_len} encoder positions, "
            f"{enc_mask.shape[1]} of them real"
        )
    print(
        f"\nOne control step of the `{cfg['name']}` policy (preprocess 2 x {frame[0]}px frames, "
        f"a prompt {'with a goal scene, placement guided' if args.scene else 'without a scene'}, "
        f"{encode}, decode {n_tokens} action tokens, detokenize); "
        f"{args.threads} threads, {args.iters} steps after {args.warmup} warm-up, in blocks of "
        f"{args.block}; {weights}; "
        f"load average before/after {load_before:.1f}/{os.getloadavg()[0]:.1f} on "
        f"{os.cpu_count()} CPUs.\n"
    )
    print(
        "| runtime | p50 ms | p99 ms | speed-up vs torch (p50) | actions equal to torch "
        f"| first step of an episode p50 ms ({args.episode_starts} resets) |"
    )
    print("|---|---|---|---|---|---|")
    for name in policies:
        p50, p99 = percentiles(times[name])
        first_p50, _ = percentiles(first_step[name])
        same = np.mean(
            [
                np.array_equal(a, b)
                for a, b in zip(actions[name], actions["torch eager"], strict=True)
            ]
        )
        print(
            f"| {name} | {p50:.2f} | {p99:.2f} | {base_p50 / p50:.2f}x | {same:.0%} "
            f"| {first_p50:.2f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
