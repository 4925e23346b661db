"""Store-level tools behind ``uio2-robot data info|validate|merge`` and the trainer's statistics."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from uio2_robot.trajectories.errors import StoreError
from uio2_robot.trajectories.schema import SCHEMA_VERSION
from uio2_robot.trajectories.stats import NormStats, compute_norm_stats
from uio2_robot.trajectories.store import EpisodeStore

PathLike = str | os.PathLike[str]

MERGE_BATCH = 64  # episodes per append when merging (see EpisodeStore.append_episodes)


def store_info(path: PathLike) -> dict[str, Any]:
    """Summary of a store: episodes and success rate per task and level, frames, keys, size."""
    with EpisodeStore.open(path, mode="r") as store:
        per: dict[str, dict[str, dict[str, Any]]] = {}
        for m in store.all_meta():
            cell = per.setdefault(m["task"], {}).setdefault(
                m["level"], {"episodes": 0, "successes": 0, "frames": 0}
            )
            cell["episodes"] += 1
            cell["successes"] += int(m["success"])
            cell["frames"] += m["length"]
        for levels in per.values():
            for cell in levels.values():
                cell["success_rate"] = cell["successes"] / cell["episodes"]
        metas = store.all_meta()
        return {
            "path": str(store.path),
            "schema_version": SCHEMA_VERSION,
            "episodes": store.n_episodes,
            "frames": store.n_frames,
            "success_rate": (
                float(np.mean([m["success"] for m in metas])) if metas else float("nan")
            ),
            "action_modes": sorted({m["action_mode"] for m in metas}),
            "per_task": per,
            "keys": {
                k: {"shape": list(v.shape), "dtype": v.dtype} for k, v in store.schema.keys.items()
            },
            "action_names": list(store.schema.action_names),
            "size_bytes": _disk_size(store.path),
        }


def validate_store(path: PathLike, deep: bool = False, notes: list[str] | None = None) -> list[str]:
    """Problems found in the store at ``path`` (empty list = OK). Never raises for a bad store:
    a folder that cannot be opened as a store is reported as one problem. ``notes`` receives
    what could not be verified (see ``EpisodeStore.validate``)."""
    try:
        with EpisodeStore.open(path, mode="r") as store:
            return store.validate(deep=deep, notes=notes)
    except StoreError as e:
        return [str(e)]


def merge_stores(
    inputs: Sequence[PathLike], out: PathLike, overwrite: bool = False
) -> dict[str, Any]:
    """Append every episode of ``inputs`` (in order) to a new store ``out``. All inputs need the
    same schema; the result's statistics are computed over the merged data."""
    if not inputs:
        raise StoreError("merge_stores needs at least one input store")
    sources = [EpisodeStore.open(p, mode="r") for p in inputs]
    schema = sources[0].schema
    for src in sources[1:]:
        diff = schema.describe_difference(src.schema)
        if diff:
            raise StoreError(
                f"cannot merge {src.path} into {sources[0].path}: schemas differ: {diff}"
            )
    if Path(out).resolve() in {s.path.resolve() for s in sources}:
        raise StoreError(f"output {out} is one of the inputs; expected a new path")
    episodes = 0
    with EpisodeStore.create(out, schema, overwrite=overwrite) as dst:
        for src in sources:
            for first in range(0, src.n_episodes, MERGE_BATCH):
                batch = range(first, min(first + MERGE_BATCH, src.n_episodes))
                dst.append_episodes([src.episode(i) for i in batch])  # one write per chunk
                episodes += len(batch)
        if episodes:
            dst.stats()
        frames = dst.n_frames
    return {
        "store": str(out),
        "inputs": [str(p) for p in inputs],
        "episodes": episodes,
        "frames": frames,
    }


def compute_stats(
    stores: Sequence[PathLike | EpisodeStore], keys: Sequence[str] | None = None
) -> dict[str, NormStats]:
    """Normalisation statistics over one or several stores (what the trainer saves with its
    processor). One store uses its cached statistics; several are pooled frame by frame, since
    percentiles cannot be combined from per-store numbers."""
    if not stores:
        raise StoreError("compute_stats needs at least one store")
    opened = [s if isinstance(s, EpisodeStore) else EpisodeStore.open(s, mode="r") for s in stores]
    if len(opened) == 1:
        return opened[0].stats(list(keys) if keys is not None else None)
    low_dim = [k for k, s in opened[0].schema.keys.items() if s.is_low_dim]
    wanted = list(keys) if keys is not None else low_dim
    out = {}
    for k in wanted:
        if k not in low_dim:
            raise StoreError(f"no statistics for key {k!r}; expected one of {low_dim}")
        parts = []
        for st in opened:
            if k not in st.schema.keys or st.schema.keys[k] != opened[0].schema.keys.get(k):
                raise StoreError(
                    f"key {k!r} is missing or differs in {st.path}; expected {opened[0].schema.keys.get(k)}"
                )
            parts.append(st.read_key(k))
        out[k] = compute_norm_stats(np.concatenate(parts))
    return out


def _disk_size(root: Path) -> int:
    return sum(f.stat().st_size for f in root.rglob("*") if f.is_file())
