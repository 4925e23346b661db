"""Replaying a share of older data while fine-tuning, to limit forgetting (issue #25).

A fine-tune on a new task's demonstrations alone moves the weights the old tasks rely on.
Rehearsal, mixing a fixed share of the parent's own data into every batch, is the standard remedy
(as in continual-learning practice and in VLA fine-tuning recipes that co-train on the
pre-training mixture). ``replay_from=[STORE, ...]`` (or ``replay_from=[parent]``: the stores
recorded in the parent checkpoint's config) adds those stores to the run with ``replay_share`` of
the sampling weight, split among them by frames; the run's own stores keep the rest in their own
proportions. The result is an ordinary ``stores``/``weights`` pair, so the sampler, the recorded
training seeds (which evaluation refuses) and resume treat replayed data like any other.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from uio2_robot.train.config import TrainConfig
from uio2_robot.trajectories.store import EpisodeStore

PARENT = "parent"
"""``replay_from=[parent]``: the stores the parent checkpoint was trained on."""


def replay_stores(replay_from: Sequence[str], parent_config: dict[str, Any] | None) -> list[str]:
    """The store paths ``replay_from`` names, ``parent`` expanded to the parent's recorded stores.

    Raises ValueError when ``parent`` is asked for without a parent (no ``init_from``) or when a
    named store is not on this machine (a parent trained elsewhere records paths of that machine).
    """
    paths: list[str] = []
    for entry in replay_from:
        if entry == PARENT:
            if parent_config is None:
                raise ValueError("replay_from=[parent] needs init_from=CHECKPOINT (whose stores?)")
            recorded = (parent_config.get("train") or {}).get("stores") or []
            if not recorded:
                raise ValueError("replay_from=[parent]: the parent's config records no stores")
            paths += [str(p) for p in recorded]
        else:
            paths.append(str(entry))
    missing = [p for p in paths if not Path(p).is_dir()]
    if missing:
        raise ValueError(
            f"replay_from: no store at {missing} (expected trajectory store folders from "
            "`uio2-robot collect`; the parent's stores are recorded with the paths of the machine "
            "it was trained on, so name local copies instead of 'parent')"
        )
    return paths


def replay_mixture(
    stores: Sequence[str],
    weights: Sequence[float] | None,
    frames: Sequence[int],
    replay: Sequence[str],
    replay_frames: Sequence[int],
    share: float,
) -> tuple[list[str], list[float]]:
    """``(stores + replay, weights)``: the replay stores get ``share`` of the sampling weight
    (split by frames), the run's stores ``1 - share`` in their own proportions (``weights``, or
    by frames when None, as the dataset would draw them)."""
    if not 0.0 < share < 1.0:
        raise ValueError(f"replay_share must be in (0, 1), got {share}")
    if len(frames) != len(stores) or len(replay_frames) != len(replay):
        raise ValueError("one frame count per store expected")
    if min([*frames, *replay_frames], default=0) <= 0:
        raise ValueError(
            f"every store needs frames to mix; got {list(frames) + list(replay_frames)}"
        )
    own = [float(w) for w in weights] if weights is not None else [float(n) for n in frames]
    if len(own) != len(stores) or sum(own) <= 0 or min(own) < 0:
        raise ValueError(f"weights {weights} are invalid for {len(stores)} stores")
    mixed = [(1.0 - share) * w / sum(own) for w in own]
    mixed += [share * n / sum(replay_frames) for n in replay_frames]
    return [*stores, *replay], mixed


def with_replay(cfg: TrainConfig, parent_path: str | None) -> TrainConfig:
    """``cfg`` with its ``replay_from`` stores mixed into ``stores``/``weights`` (frame counts read
    from the stores; ``parent_path``: the init_from checkpoint folder, for ``parent``)."""
    parent_config = None
    if parent_path is not None:
        parent_config = json.loads((Path(parent_path) / "config.json").read_text())
    replay = replay_stores(cfg.replay_from, parent_config)
    overlap = sorted(set(map(_real, replay)) & set(map(_real, cfg.stores)))
    if overlap:
        raise ValueError(f"replay_from names stores already in stores=: {overlap}")

    def frames(paths: Sequence[str]) -> list[int]:
        return [EpisodeStore.open(p, mode="r").n_frames for p in paths]

    stores, weights = replay_mixture(
        cfg.stores, cfg.weights, frames(cfg.stores), replay, frames(replay), cfg.replay_share
    )
    return dataclasses.replace(cfg, stores=stores, weights=weights)


def _real(path: str) -> str:
    return str(Path(path).resolve())
