"""Episode seeds: one derivation shared by collection, rollout and evaluation.

Training data and evaluation must never share an episode. Seeds are therefore derived from a
base seed, the task, the level and the episode index, and the two uses draw from disjoint base
ranges: collection uses bases below ``EVAL_SEED_BASE`` and evaluation bases at or above it.
The trainer's evaluator checks the seeds it rolls out against the seeds stored in the training
data, so an overlap is an error rather than a silently inflated success rate.
"""

from __future__ import annotations

import zlib

EVAL_SEED_BASE = 10**12
"""Evaluation episode seeds start here; collection bases stay below ``EVAL_SEED_BASE - SEED_SPAN``."""

MAX_EPISODES_PER_PAIR = 100_000
SEED_SPAN = MAX_EPISODES_PER_PAIR * 100_000
"""All seeds of one base lie in ``[base, base + SEED_SPAN)``."""


def episode_seed(base: int, task: str, level: str, index: int) -> int:
    """The seed of episode ``index`` of ``task`` at ``level`` under ``base``.

    Stable across processes and Python versions (crc32, not ``hash``), so worker count and order
    never change which episodes are run. Seeds of distinct (task, level) pairs differ, so the same
    index does not replay the same layout across tasks.
    """
    if not 0 <= index < MAX_EPISODES_PER_PAIR:
        raise ValueError(f"episode index must be in [0, {MAX_EPISODES_PER_PAIR}), got {index}")
    if base < 0:
        raise ValueError(f"base seed must be >= 0, got {base}")
    offset = zlib.crc32(f"{task}/{level}".encode()) % 100_000
    return int(base) + offset * MAX_EPISODES_PER_PAIR + int(index)


def is_eval_base(base: int) -> bool:
    """Whether ``base`` is in the evaluation range."""
    return base >= EVAL_SEED_BASE
