"""Normalisation statistics of low-dimensional keys (actions, proprio).

The action tokenizer bins actions after 1st/99th-percentile scaling (as OpenVLA does) and the
encoder normalises proprio, so both need the same numbers at training, export and deploy time.
They are computed from the stored data once and cached in the store (see ``EpisodeStore.stats``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class NormStats:
    """Per-dimension statistics of one key over all frames; every array has shape (D,)."""

    min: np.ndarray
    max: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    p01: np.ndarray  # 1st percentile
    p99: np.ndarray  # 99th percentile
    count: int  # frames the statistics were computed from

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            name: getattr(self, name).tolist()
            for name in ("min", "max", "mean", "std", "p01", "p99")
        }
        out["count"] = self.count
        return out

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> NormStats:
        arrays = {
            name: np.asarray(obj[name], dtype=np.float64)
            for name in ("min", "max", "mean", "std", "p01", "p99")
        }
        return cls(count=int(obj["count"]), **arrays)


def compute_norm_stats(values: np.ndarray) -> NormStats:
    """Statistics of ``values`` (N, ...) per trailing dimension, flattened to (D,), in float64."""
    v = np.asarray(values, dtype=np.float64).reshape(values.shape[0], -1)  # (N, D)
    if v.shape[0] == 0:
        raise ValueError("cannot compute statistics of 0 frames; the store holds no episodes")
    p01, p99 = np.percentile(v, [1.0, 99.0], axis=0)
    return NormStats(
        min=v.min(axis=0),
        max=v.max(axis=0),
        mean=v.mean(axis=0),
        std=v.std(axis=0),
        p01=p01,
        p99=p99,
        count=int(v.shape[0]),
    )
