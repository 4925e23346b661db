"""``uio2-robot official import``: a released UIO2 folder -> a project checkpoint folder.

The checkpoint is written by the project's one saver (``policies.pretrained.save_checkpoint``)
with ``LazyWeights``: each project tensor is built from its official sources (mapped through
``keymap.KEY_TABLE``) just before it is written, so peak memory stays near the size of the
weights that are used (the release is memory-mapped; the dropped VQGANs are never read).
Tensors keep their stored dtype (bf16 stays bf16) unless ``dtype`` is given.

The checkpoint's ``config.json`` holds ``{"official": OfficialConfig, "source": ...,
"dropped_keys": [...]}``; ``policies.pretrained.load_official_checkpoint`` reads it back.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from uio2_robot.errors import UsageError
from uio2_robot.official.keymap import build_tensor
from uio2_robot.official.release import open_release_weights, plan_release, read_release_config
from uio2_robot.policies.pretrained import (
    OFFICIAL_PROCESSOR_KIND,
    LazyWeights,
    load_official_checkpoint,
    save_checkpoint,
)

__all__ = ["ImportReport", "import_release", "load_official_checkpoint"]
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class ImportReport:
    out: Path
    n_official_keys: int
    n_used_keys: int
    dropped_keys: tuple[str, ...]
    n_weights: int  # project tensors written
    bytes_written: int
    seconds: float

    def summary(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "official_keys": self.n_official_keys,
            "used_keys": self.n_used_keys,
            "dropped_keys": len(self.dropped_keys),
            "project_weights": self.n_weights,
            "bytes_written": self.bytes_written,
            "seconds": round(self.seconds, 2),
        }


def import_release(
    src: str | Path, out: str | Path, dtype: str | torch.dtype | None = None
) -> ImportReport:
    """Convert a release folder into a checkpoint folder at ``out`` (written atomically)."""
    start = time.perf_counter()
    want = _dtype(dtype)
    cfg, raw = read_release_config(src)
    weights = open_release_weights(src)
    plan = plan_release(cfg, weights, str(src))
    targets = {t.key: t for t in plan.targets}
    specs = {}
    for t in plan.targets:
        stored = weights.dtypes[t.sources[0]]
        specs[t.key] = (t.shape, want or stored)

    def produce(key: str) -> torch.Tensor:
        return build_tensor(targets[key], weights.get).to(specs[key][1])

    config = {
        "official": cfg.to_dict(),
        "source": {"folder": str(Path(src).resolve()), "release_config": raw},
        "dropped_keys": list(plan.dropped),
    }
    processor = {
        "kind": OFFICIAL_PROCESSOR_KIND,
        "vocab_size": cfg.vocab_size,
        "image_size": list(cfg.image_size),
        "history_size": list(cfg.history_size),
    }
    save_checkpoint(out, LazyWeights(specs, produce), config, processor)
    weights.close()
    nbytes = sum(torch.empty((), dtype=d).element_size() * math.prod(s) for s, d in specs.values())
    return ImportReport(
        Path(out),
        len(weights.shapes),
        len(plan.used),
        plan.dropped,
        len(specs),
        nbytes,
        time.perf_counter() - start,
    )


def _dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise UsageError(f"dtype={dtype!r}; expected one of {sorted(DTYPES)} or none (keep)")
    return DTYPES[dtype]
