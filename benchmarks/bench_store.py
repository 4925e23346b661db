"""Trajectory store speed: write MB/s, random window reads vs in-memory numpy, DataLoader samples/s.

Every figure is measured in this one process against a baseline from the same run (the machines
are noisy): window reads against the same windows sliced from numpy arrays in memory, 16-frame
chunks against one chunk per episode (REFERENCE.md section 4), 2 DataLoader workers against 0.

    python benchmarks/bench_store.py                       # ~1 minute on 2 cores
    python benchmarks/bench_store.py --episodes 10 --windows 200   # quick look
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # before anything can import mujoco
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from uio2_robot.trajectories import (  # noqa: E402
    Episode,
    EpisodeStore,
    StoreSchema,
    WindowDataset,
    collate,
)

CAMERAS = ("front", "top")


def rendered_like_frames(rng: np.random.Generator, length: int, size: int) -> np.ndarray:
    """(T, size, size, 3) uint8 frames that compress like noise-free renders: a shaded table
    with a fine texture and a few flat coloured objects that move a little each step."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    grain = rng.integers(0, 6, (size, size, 1)).astype(np.float32)  # wood-like texture
    table = np.stack([150 + 40 * yy, 120 + 30 * xx, 90 + 20 * (xx + yy)], axis=-1) + grain
    objects = [
        (rng.uniform(0.1, 0.8, 2), rng.uniform(0.05, 0.15), rng.integers(0, 256, 3))
        for _ in range(4)
    ]
    frames = np.empty((length, size, size, 3), dtype=np.uint8)
    for t in range(length):
        img = table.copy()
        for (cy, cx), r, color in objects:
            cy, cx = cy + 0.002 * t, cx - 0.003 * t
            mask = (np.abs(yy - cy) < r) & (np.abs(xx - cx) < r)
            img[mask] = color
        frames[t] = np.clip(img, 0, 255).astype(np.uint8)
    return frames


def make_episodes(n: int, length: int, size: int, seed: int = 0) -> list[Episode]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        steps = {c: rendered_like_frames(rng, length, size) for c in CAMERAS}
        steps["proprio"] = rng.normal(size=(length, 6)).astype(np.float32)
        steps["action"] = rng.uniform(-0.04, 0.04, size=(length, 5)).astype(np.float32)
        crop = rendered_like_frames(rng, 1, 32)[0]
        out.append(
            Episode(
                steps, ["Put the", crop, "into the bowl."], "bench", "L1", i, True, "delta", 10.0
            )
        )
    return out


def write_store(
    path: Path,
    episodes: list[Episode],
    chunk_frames: int,
    compressor: str = "zstd",
    batch: int = 1,
) -> float:
    """Seconds to append all episodes to a fresh store, ``batch`` episodes per append."""
    schema = StoreSchema.from_episode(episodes[0])
    t0 = time.perf_counter()
    with EpisodeStore.create(
        path, schema, chunk_frames=chunk_frames, compressor=compressor, overwrite=True
    ) as store:
        for first in range(0, len(episodes), batch):
            store.append_episodes(episodes[first : first + batch])
    return time.perf_counter() - t0


def window_latencies(
    store: EpisodeStore, windows: list[tuple[int, int]], n_hist: int, chunk: int
) -> np.ndarray:
    """Per-window seconds: n_hist frames of every camera + the action chunk, via get_window."""
    out = np.empty(len(windows))
    for j, (ep, t) in enumerate(windows):
        t0 = time.perf_counter()
        store.get_window(ep, t, n_hist, list(CAMERAS))
        store.get_window(ep, t, chunk, ["action"])
        out[j] = time.perf_counter() - t0
    return out


def numpy_latencies(
    arrays: dict[str, np.ndarray],
    ends: np.ndarray,
    windows: list[tuple[int, int]],
    n_hist: int,
    chunk: int,
) -> np.ndarray:
    """The same windows sliced (and copied, as a read must) from in-memory numpy arrays."""
    out = np.empty(len(windows))
    for j, (ep, t) in enumerate(windows):
        start = int(ends[ep - 1]) if ep else 0
        t0 = time.perf_counter()
        for c in CAMERAS:
            arrays[c][start + t : start + t + n_hist].copy()
        arrays["action"][start + t : start + t + chunk].copy()
        out[j] = time.perf_counter() - t0
    return out


def loader_rate(path: Path, workers: int, batches: int, batch_size: int) -> float:
    """Samples per second through WindowDataset + DataLoader (history 2, action chunk 4)."""
    ds = WindowDataset([path], n_obs_history=2, action_chunk=4, split="all")
    loader = DataLoader(
        ds,
        batch_size=batch_size,
        sampler=ds.sampler(batches * batch_size, seed=1),
        collate_fn=collate,
        num_workers=workers,
    )
    it = iter(loader)
    next(it)  # worker start-up and first zarr open are not steady-state throughput
    t0 = time.perf_counter()
    n = sum(len(b["prompt"]) for b in it)
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--episodes", type=int, default=40)
    ap.add_argument("--length", type=int, default=50, help="frames per episode")
    ap.add_argument("--image", type=int, default=128, help="camera image side (pixels)")
    ap.add_argument("--short-episodes", type=int, default=256, help="2-frame episodes to append")
    ap.add_argument("--windows", type=int, default=500, help="random windows to time")
    ap.add_argument("--batches", type=int, default=30, help="DataLoader batches to time")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--dir", type=Path, default=None, help="where to write stores (default: temp)")
    args = ap.parse_args()

    root = Path(args.dir or tempfile.mkdtemp(prefix="bench_store_"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        episodes = make_episodes(args.episodes, args.length, args.image)
        raw_mb = sum(v.nbytes for ep in episodes for v in ep.steps.values()) / 1e6
        rows: list[tuple[str, str]] = []

        chunked, per_episode = root / "chunk16.zarr", root / "per_episode.zarr"
        lz4hc = root / "chunk16_lz4hc.zarr"
        t16 = write_store(chunked, episodes, 16)
        tep = write_store(per_episode, episodes, args.length)
        tlz = write_store(lz4hc, episodes, 16, "lz4hc")
        size16, size_lz = (
            sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) / 1e6
            for p in (chunked, lz4hc)
        )
        rows.append(
            (
                "raw data written",
                f"{raw_mb:.0f} MB ({args.episodes} eps x {args.length} frames, 2 x {args.image}px views)",
            )
        )
        rows.append(
            (
                "write, 16-frame chunks",
                f"{raw_mb / t16:.0f} MB/s (on disk {size16:.0f} MB, {raw_mb / size16:.1f}x smaller)",
            )
        )
        rows.append(("write, per-episode chunks", f"{raw_mb / tep:.0f} MB/s"))
        rows.append(
            ("write, 16-frame lz4hc", f"{raw_mb / tlz:.0f} MB/s (on disk {size_lz:.0f} MB)")
        )

        # Primitive-mode episodes are 1-3 frames: one append per episode re-compresses the
        # partly filled last chunk each time; `collect` appends batches of 32 instead.
        short = make_episodes(args.short_episodes, 2, args.image, seed=1)
        t_one = write_store(root / "short_one.zarr", short, 16)
        t_batch = write_store(root / "short_batch.zarr", short, 16, batch=32)
        rows.append(
            (
                f"append {args.short_episodes} 2-frame episodes",
                f"one at a time {len(short) / t_one:.0f} eps/s, batches of 32 "
                f"{len(short) / t_batch:.0f} eps/s ({t_one / t_batch:.1f}x)",
            )
        )

        rng = np.random.default_rng(0)
        store16 = EpisodeStore.open(chunked)
        store_ep = EpisodeStore.open(per_episode)
        n_hist, chunk = 2, 4
        windows = []
        for _ in range(args.windows):
            ep = int(rng.integers(store16.n_episodes))
            windows.append((ep, int(rng.integers(store16.episode_length(ep) - chunk + 1))))
        arrays = {k: store16.read_key(k) for k in (*CAMERAS, "action")}
        lat16 = window_latencies(store16, windows, n_hist, chunk)
        lat_ep = window_latencies(store_ep, windows, n_hist, chunk)
        lat_lz = window_latencies(EpisodeStore.open(lz4hc), windows, n_hist, chunk)
        lat_np = numpy_latencies(arrays, store16.episode_ends, windows, n_hist, chunk)
        p = lambda a, q: float(np.percentile(a, q)) * 1e3  # noqa: E731
        rows.append(
            (
                "window read, 16-frame chunks",
                f"p50 {p(lat16, 50):.2f} ms  p99 {p(lat16, 99):.2f} ms",
            )
        )
        rows.append(
            (
                "window read, per-episode chunks",
                f"p50 {p(lat_ep, 50):.2f} ms  p99 {p(lat_ep, 99):.2f} ms",
            )
        )
        rows.append(
            (
                "window read, numpy in memory",
                f"p50 {p(lat_np, 50) * 1e3:.1f} us  p99 {p(lat_np, 99) * 1e3:.1f} us",
            )
        )
        rows.append(("ratio zarr16 / numpy (p50)", f"{p(lat16, 50) / p(lat_np, 50):.0f}x"))
        rows.append(("ratio per-episode / 16-frame (p50)", f"{p(lat_ep, 50) / p(lat16, 50):.1f}x"))
        rows.append(("ratio lz4hc / zstd 16-frame (p50)", f"{p(lat_lz, 50) / p(lat16, 50):.2f}x"))
        rows.append(("window = ", f"{n_hist} frames x {len(CAMERAS)} views + {chunk} actions"))

        r0 = loader_rate(chunked, 0, args.batches, args.batch_size)
        r2 = loader_rate(chunked, 2, args.batches, args.batch_size)
        rows.append(("DataLoader, 0 workers", f"{r0:.0f} samples/s"))
        rows.append(("DataLoader, 2 workers", f"{r2:.0f} samples/s ({r2 / r0:.2f}x of 0 workers)"))

        width = max(len(k) for k, _ in rows)
        print(f"\nbench_store: {os.cpu_count()} CPUs, stores in {root}")
        for key, value in rows:
            print(f"  {key:<{width}}  {value}")
    finally:
        if args.dir is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
