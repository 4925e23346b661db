"""`uio2-robot data repair STORE`: drop the damaged episodes of a store, keep every good one.

Why a rebuild rather than an edit in place: the store is append-only and chunks are shared by
neighbouring episodes, so removing one episode shifts every later frame. The good episodes are
copied (bit for bit, verified against their checksums) into a new store beside the old one, the
new store is verified deeply, and only then swapped in with two renames. The damaged original
is kept beside it as ``<name>.damaged-<time>``: repair never deletes recorded data, it sets it
aside, and a rerun of ``collect`` into the repaired store re-collects what was dropped.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from uio2_robot.trajectories.errors import StoreError
from uio2_robot.trajectories.integrity import verify_store
from uio2_robot.trajectories.store import (
    DEFAULT_CHUNK_FRAMES,
    EpisodeStore,
)

COPY_BATCH = 64  # episodes per append (see EpisodeStore.append_episodes)


def _layout(src: EpisodeStore) -> dict[str, Any]:
    """chunk_frames / compressor / level of ``src``, so the rebuilt store matches it."""
    out: dict[str, Any] = {"chunk_frames": DEFAULT_CHUNK_FRAMES}
    images = [k for k, s in src.schema.keys.items() if s.is_image]
    if images:
        out["chunk_frames"] = int(src.raw_array(f"data/{images[0]}").chunks[0])
    codecs = src.raw_array(f"data/{src.data_keys[0]}").compressors
    if codecs and hasattr(codecs[0], "cname"):
        out["compressor"] = str(getattr(codecs[0].cname, "value", codecs[0].cname))
        out["compression_level"] = int(codecs[0].clevel)
    return out


def repair_store(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Rebuild the store at ``path`` without its damaged episodes; returns what was done.

    Damaged: any episode that deep verification flags (a missing or unreadable chunk, a
    checksum mismatch), and every episode past a corrupt ``episode_ends`` entry. A store with
    nothing damaged is left untouched (``"repaired": False``)."""
    root = Path(path)
    src = EpisodeStore.open(root, mode="r", salvage=True)
    # the writer lock: no collector may append while the store is rebuilt
    src.lock()
    try:
        report = verify_store(src, deep=True)
        damaged = set(report.damaged_episodes)
        past_commit = src.salvaged
        if not damaged and not past_commit:
            return {"store": str(root), "repaired": False, "episodes": src.n_episodes}
        keep = [i for i in range(src.n_episodes) if i not in damaged]
        tmp = root.with_name(f".{root.name}.repair-{uuid.uuid4().hex[:8]}")
        try:
            with EpisodeStore.create(tmp, src.schema, **_layout(src)) as dst:
                for first in range(0, len(keep), COPY_BATCH):
                    dst.append_episodes([src.episode(i) for i in keep[first : first + COPY_BATCH]])
                if keep:
                    dst.stats()
                check = verify_store(dst, deep=True)
                if not check.ok:  # cannot happen unless the disk fails under us
                    raise StoreError(
                        f"the rebuilt store {tmp} failed verification: {check.problems()}"
                    )
            backup = root.with_name(f"{root.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
            os.replace(root, backup)
            os.replace(tmp, root)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    finally:
        src.close()
    return {
        "store": str(root),
        "repaired": True,
        "kept": len(keep),
        "dropped": sorted(damaged),
        "dropped_past_commit": past_commit,
        "problems": report.problems(),
        "damaged_original": str(backup),
        "hint": "rerun the same `uio2-robot collect` command into the store to re-collect them",
    }
