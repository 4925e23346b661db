"""What store integrity costs: checksums at append, coverage and deep verification vs size.

Stores of render-like episodes (``bench_store.make_episodes``) at two sizes, so the scaling of
deep verification (linear: each chunk decompressed once, streamed into per-episode sha256s) is
measured in the same run. Checksums cannot be switched off at append, so their share of the
append time is given as sha256 throughput on the same frames next to the write time.

    python benchmarks/bench_store_verify.py                 # ~30 s on 2 cores
    python benchmarks/bench_store_verify.py --episodes 10   # quick look
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_store import make_episodes, write_store

from uio2_robot.trajectories import EpisodeStore


def measure(path: Path, episodes: list, chunk_frames: int) -> dict[str, float]:
    write_s = write_store(path, episodes, chunk_frames, batch=8)
    with EpisodeStore.open(path) as store:
        t0 = time.perf_counter()
        fast = store.verify(deep=False)
        fast_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        deep = store.verify(deep=True)
        deep_s = time.perf_counter() - t0
        assert fast.ok and deep.ok
        raw = sum(store.raw_array(f"data/{k}").nbytes for k in store.data_keys)
        return {
            "episodes": store.n_episodes,
            "frames": store.n_frames,
            "raw_mib": round(raw / 2**20, 1),
            "write_s": round(write_s, 2),
            "coverage_s": round(fast_s, 4),
            "deep_s": round(deep_s, 3),
            "deep_mib_per_s": round(raw / 2**20 / deep_s, 1),
        }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=40)
    ap.add_argument("--length", type=int, default=40)
    ap.add_argument("--size", type=int, default=128)
    args = ap.parse_args()
    episodes = make_episodes(2 * args.episodes, args.length, args.size)
    frames = np.concatenate([ep.steps["front"] for ep in episodes[: args.episodes]])
    t0 = time.perf_counter()
    hashlib.sha256(frames.tobytes()).hexdigest()
    sha_mib_s = frames.nbytes / 2**20 / (time.perf_counter() - t0)
    with tempfile.TemporaryDirectory() as tmp:
        small = measure(Path(tmp) / "small.zarr", episodes[: args.episodes], 16)
        large = measure(Path(tmp) / "large.zarr", episodes, 16)
    print(
        json.dumps(
            {
                "sha256_mib_per_s": round(sha_mib_s, 1),
                "small": small,
                "large": large,
                "deep_time_ratio_for_2x_size": round(large["deep_s"] / small["deep_s"], 2),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
