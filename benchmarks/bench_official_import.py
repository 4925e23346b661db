"""Import cost of a released-size UIO2 checkpoint: wall time and peak memory of
`uio2-robot official import` on a synthetic release written in the released format.

The synthetic release has every key and shape of the released model (the state-dict manifest
in tests/data/uio2_official, VQGANs and audio included), random bf16 weights, and a
config.json in the official format. The import runs in a fresh process; its peak resident
memory (ru_maxrss, which counts the memory-mapped release pages it touched) is reported
against the bytes of the weights it writes. Everything is written under --tmp and deleted.

    python benchmarks/bench_official_import.py --size xl      # ~6.4 GB release, a few minutes
    python benchmarks/bench_official_import.py --size xxl --format safetensors  # ~13 GB, streamed
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "uio2_official"


def release_config(size: str) -> dict:
    """The fixture's official config.json with the released sizes of ``size``."""
    from uio2_robot.model.official.config import RELEASED

    cfg = RELEASED[size]
    raw = json.loads((DATA / "config.json").read_text())
    t5, vit, hist = raw["t5_config"], raw["image_vit_cfg"], raw["image_history_cfg"]
    t5.update(
        emb_dim=cfg.d_model, num_heads=cfg.n_heads, head_dim=cfg.head_dim, mlp_dim=cfg.mlp_hidden,
        num_encoder_layers=cfg.n_enc_layers, num_decoder_layers=cfg.n_dec_layers,
        image_vocab_size=16512, audio_vocab_size=8320, default_image_vit_size=[384, 384],
        default_image_history_vit_size=[256, 256],
    )  # fmt: skip
    vit.update(emb_dim=768, num_heads=12, head_dim=64, mlp_dim=3072, num_layers=11, num_pos=197)
    hist.update(
        emb_dim=cfg.resampler_dim, num_heads=cfg.resampler_heads,
        head_dim=cfg.resampler_dim // cfg.resampler_heads, mlp_dim=cfg.resampler_mlp,
        latents_size=32, max_frames=8, xattn_qk_norm=size != "xxl", attn_qk_norm=size != "xxl",
        xattn_scaled_cosine=size == "xxl", attn_scaled_cosine=size == "xxl",
    )  # fmt: skip
    raw["input_modalities"] = ["text", "image", "image_history", "audio", "audio_history"]
    raw["target_modalities"] = ["text", "image", "audio"]
    return raw


def write_release(folder: Path, size: str, fmt: str) -> int:
    """Random bf16 weights with the manifest's keys and shapes; returns the file's bytes."""
    manifest = json.loads((DATA / "official_state_dict_manifest.json").read_text())[size]["keys"]
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(release_config(size)))
    gen = torch.Generator().manual_seed(0)

    def make(key: str) -> torch.Tensor:
        return (torch.randn(manifest[key], generator=gen) * 0.02).to(torch.bfloat16)

    if fmt == "bin":  # torch.save needs the whole dict in memory (xxl: 13 GB)
        path = folder / "pytorch_model.bin"
        torch.save({k: make(k) for k in manifest}, path)
    else:  # streamed with the project's own writer: one tensor in memory at a time
        from uio2_robot.policies.pretrained import LazyWeights, save_checkpoint

        specs = {k: (tuple(shape), torch.bfloat16) for k, shape in manifest.items()}
        save_checkpoint(folder / "tmp", LazyWeights(specs, make), {}, {})
        path = folder / "model.safetensors"
        (folder / "tmp" / "model.safetensors").rename(path)
        shutil.rmtree(folder / "tmp")
    return path.stat().st_size


# VmHWM (this process image's peak RSS), not ru_maxrss: Linux carries ru_maxrss over from the
# forking parent, so a child of a parent that held the synthetic weights would report theirs.
IMPORT = """
import json, sys, time
t = time.perf_counter()
from uio2_robot.official.convert import import_release
r = import_release(sys.argv[1], sys.argv[2])
hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({**r.summary(), "total_s": time.perf_counter() - t,
                  "peak_rss_bytes": int(hwm.split()[1]) * 1024}))
"""
WRITE = """
import sys
sys.path.insert(0, sys.argv[1])
from bench_official_import import write_release
from pathlib import Path
print(write_release(Path(sys.argv[2]), sys.argv[3], sys.argv[4]))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", default="xl", choices=["large", "xl", "xxl"])
    ap.add_argument("--format", default="bin", choices=["bin", "safetensors"])
    ap.add_argument("--tmp", default=tempfile.gettempdir())
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="uio2_import_bench_", dir=args.tmp))
    try:
        t0 = time.perf_counter()
        # in its own process, so the weights it generates never inflate this one
        made = subprocess.run(
            [sys.executable, "-c", WRITE, str(Path(__file__).parent), str(root / "release"),
             args.size, args.format],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        release_bytes = int(made.stdout.strip().splitlines()[-1])
        print(f"synthetic {args.size} release ({args.format}): {release_bytes / 2**30:.2f} GiB "
              f"written in {time.perf_counter() - t0:.0f} s")  # fmt: skip
        out = subprocess.run(
            [sys.executable, "-c", IMPORT, str(root / "release"), str(root / "ckpt")],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        result = json.loads(out.stdout.strip().splitlines()[-1])
        written = result["bytes_written"]
        peak = result["peak_rss_bytes"]
        print(json.dumps(result, indent=2))
        print(
            f"import: {result['total_s']:.1f} s; peak RSS {peak / 2**30:.2f} GiB = "
            f"{peak / written:.2f} x the imported weights ({written / 2**30:.2f} GiB), "
            f"{peak / release_bytes:.2f} x the release file"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
