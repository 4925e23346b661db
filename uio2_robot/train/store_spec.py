"""What a policy trained on a store sees and emits, read from the store's schema.

The suite's stores hold cameras "front"/"top", a 6-d "proprio" and suite-named actions; a store
recorded from any other gymnasium env (``record_episodes``) holds whatever that env observes:
Meta-World's 39-d vector under "obs", its rendered frame under "render", 4 actions in [-1, 1].
`StoreSpec` reads the camera keys, the proprio key and size, and the action names and bounds
from the schema (`uio2_robot.trajectories.schema.StoreSchema`), so `train` sizes the processor
and the model from the data instead of from the suite's constants. `clipped_actions` counts
the stored actions the action bins cannot represent, which `train` reports as a warning: a
policy trained on clipped targets can never reproduce the clipped part of its demonstrations.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from uio2_robot import contracts
from uio2_robot.tokenize.actions import ActionTokenizer
from uio2_robot.trajectories.episode import ACTION_KEY, NON_OBS_KEYS
from uio2_robot.trajectories.store import EpisodeStore

SUITE_PROPRIO = "proprio"
STORE_ACTION_MODE = "gym"
"""The action mode's name in a processor built for a non-suite store (its one action space)."""


@dataclass(frozen=True)
class StoreSpec:
    """The inputs and outputs a store defines for a policy."""

    cameras: tuple[str, ...]  # RGB image keys, in view order
    proprio_key: str
    proprio_dim: int
    action_names: tuple[str, ...]
    action_low: tuple[float, ...]  # finite: unbounded dims take the data's range
    action_high: tuple[float, ...]
    suite_mode: str | None  # the suite action mode whose names the actions carry, else None


def is_camera(store: EpisodeStore, key: str) -> bool:
    """An (H, W, 3) uint8 key: what the processor reads as a camera view."""
    spec = store.schema.keys.get(key)
    return spec is not None and spec.is_image and spec.shape[2] == 3


def camera_keys(store: EpisodeStore, wanted: Sequence[str] | None = None) -> tuple[str, ...]:
    """The camera views to train on: ``wanted`` (each an RGB key of the store), else the suite's
    cameras the store holds (in the suite's order), else every RGB key in schema order."""
    if wanted:
        bad = [k for k in wanted if not is_camera(store, k)]
        if bad:
            raise ValueError(
                f"cameras {bad} are not RGB (H, W, 3) uint8 keys of store {store.path}; its "
                f"keys are {_describe(store)}"
            )
        return tuple(wanted)
    suite = tuple(k for k in contracts.CAMERAS if is_camera(store, k))
    keys = suite or tuple(k for k in store.schema.keys if is_camera(store, k))
    if not keys:
        raise ValueError(
            f"store {store.path} has no RGB (H, W, 3) uint8 key to use as a camera; its keys are "
            f"{_describe(store)} (record with render=True to store env.render() frames)"
        )
    return keys


def proprio_key(store: EpisodeStore, wanted: str | None = None) -> str:
    """The vector the policy reads as proprio: ``wanted``, else "proprio", else the store's one
    1-D observation key (a gymnasium env's array observation is stored as "obs")."""
    candidates = [
        k
        for k, s in store.schema.keys.items()
        if k not in NON_OBS_KEYS and len(s.shape) == 1 and s.dtype != "uint8"
    ]
    if wanted is not None:
        if wanted not in candidates:
            raise ValueError(
                f"proprio_key {wanted!r} is not a 1-D numeric observation key of store "
                f"{store.path}; candidates are {candidates}"
            )
        return wanted
    if SUITE_PROPRIO in candidates:
        return SUITE_PROPRIO
    if len(candidates) == 1:
        return candidates[0]
    raise ValueError(
        f"store {store.path} has {len(candidates)} 1-D observation keys {candidates}; expected "
        f"one (or 'proprio'): choose with proprio_key=KEY"
    )


def suite_mode_of(names: Sequence[str]) -> str | None:
    """The suite action mode with exactly these action names, or None."""
    for mode in contracts.ACTION_MODES:
        if tuple(names) == contracts.action_names(mode):
            return mode
    return None


def store_spec(
    store: EpisodeStore, cameras: Sequence[str] | None = None, proprio: str | None = None
) -> StoreSpec:
    """The `StoreSpec` of ``store``; dimensions the schema leaves unbounded (a gymnasium Box
    with infinite bounds) take the data's min..max, with a warning naming them."""
    schema = store.schema
    key = proprio_key(store, proprio)
    low = np.asarray(schema.action_low, dtype=np.float64)
    high = np.asarray(schema.action_high, dtype=np.float64)
    unbounded = ~(np.isfinite(low) & np.isfinite(high))
    if unbounded.any():
        stats = store.stats([ACTION_KEY])[ACTION_KEY]
        low = np.where(np.isfinite(low), low, stats.min)
        high = np.where(np.isfinite(high), high, stats.max)
        names = [schema.action_names[i] for i in np.flatnonzero(unbounded)]
        warnings.warn(
            f"store {store.path}: action dims {names} have no finite bounds in the schema; the "
            f"bins span the data's range instead ({low[unbounded]} .. {high[unbounded]})",
            stacklevel=2,
        )
    return StoreSpec(
        cameras=camera_keys(store, cameras),
        proprio_key=key,
        proprio_dim=int(schema.keys[key].shape[0]),
        action_names=tuple(schema.action_names),
        action_low=tuple(map(float, low)),
        action_high=tuple(map(float, high)),
        suite_mode=suite_mode_of(schema.action_names),
    )


def clipped_actions(
    stores: Sequence[EpisodeStore], tokenizer: ActionTokenizer
) -> tuple[int, int, dict[str, int]]:
    """(frames with any action dimension outside the bins, frames, clipped frames per
    dimension) over every stored action of ``stores``. Wrapping dims (yaw) never clip."""
    clipped_any, total = 0, 0
    per_dim = np.zeros(tokenizer.dim, dtype=np.int64)
    for store in stores:
        actions = store.read_key(ACTION_KEY).reshape(store.n_frames, -1)
        if actions.shape[1] != tokenizer.dim:
            raise ValueError(
                f"store {store.path} has {actions.shape[1]}-d actions, but the policy's action "
                f"bins are {tokenizer.dim}-d {tokenizer.names}"
            )
        outside = tokenizer.out_of_range(actions)
        clipped_any += int(outside.any(axis=1).sum())
        per_dim += outside.sum(axis=0)
        total += actions.shape[0]
    return clipped_any, total, dict(zip(tokenizer.names, per_dim.tolist(), strict=True))


def warn_clipped(stores: Sequence[EpisodeStore], tokenizer: ActionTokenizer) -> int:
    """Warn with the counts when stored actions fall outside the bins; returns the frames."""
    n, total, per_dim = clipped_actions(stores, tokenizer)
    if n:
        dims = ", ".join(f"{k} {v}/{total}" for k, v in per_dim.items() if v)
        warnings.warn(
            f"{n}/{total} frames ({n / total:.1%}) have actions outside the action bins "
            f"[{tokenizer.low.tolist()} .. {tokenizer.high.tolist()}] and are clipped to "
            f"them as training targets; per dimension: {dims}",
            stacklevel=2,
        )
    return n


def _describe(store: EpisodeStore) -> dict[str, str]:
    return {k: f"{s.dtype}{list(s.shape)}" for k, s in store.schema.keys.items()}
