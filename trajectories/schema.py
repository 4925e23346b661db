"""What a store holds: per-step keys with shapes and dtypes, and the action space.

The schema is fixed when a store is created and written to the root attributes, so every episode
appended later is checked against it (a mismatch is refused before anything is written) and a
reader knows names and bounds of the action dimensions without any other file.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from uio2_robot.trajectories.episode import ACTION_KEY, Episode
from uio2_robot.trajectories.errors import StoreError

# Bump on any change of the on-disk layout; readers refuse newer versions.
SCHEMA_VERSION = 1
# Root attribute that marks a folder as one of our stores.
ROOT_ATTR = "uio2_robot_trajectories"


@dataclass(frozen=True)
class KeySpec:
    """Per-step shape and dtype of one data key (the stored array is (N, *shape))."""

    shape: tuple[int, ...]
    dtype: str  # numpy dtype name, e.g. "uint8", "float32"

    @property
    def is_image(self) -> bool:
        """(H, W, C) uint8 with 1, 3 or 4 channels: chunked and shown as a camera view."""
        return self.dtype == "uint8" and len(self.shape) == 3 and self.shape[2] in (1, 3, 4)

    @property
    def is_low_dim(self) -> bool:
        """Scalars and vectors (action, proprio, reward): the keys normalisation stats cover."""
        return len(self.shape) <= 1

    @property
    def frame_bytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize


@dataclass(frozen=True)
class StoreSchema:
    """Keys (including ``"action"``) and the action space's names and bounds."""

    keys: dict[str, KeySpec]
    action_names: tuple[str, ...]
    action_low: tuple[float, ...]
    action_high: tuple[float, ...]

    def __post_init__(self) -> None:
        if ACTION_KEY not in self.keys:
            raise StoreError(f"schema has no {ACTION_KEY!r} key; keys are {sorted(self.keys)}")
        act = self.keys[ACTION_KEY]
        n = int(np.prod(act.shape, dtype=np.int64)) if act.shape else 1
        for name, seq in (
            ("action_names", self.action_names),
            ("action_low", self.action_low),
            ("action_high", self.action_high),
        ):
            if len(seq) != n:
                raise StoreError(
                    f"schema {name} has {len(seq)} entries, expected {n} (action shape {act.shape})"
                )
        for key in self.keys:
            if not key or "/" in key or key.startswith("__") or key in (".", ".."):
                raise StoreError(
                    f"data key {key!r} is not a valid array name; expected a non-empty name "
                    f"without '/' that does not start with '__'"
                )

    @classmethod
    def from_episode(
        cls,
        episode: Episode,
        action_names: Sequence[str] | None = None,
        action_low: Sequence[float] | np.ndarray | None = None,
        action_high: Sequence[float] | np.ndarray | None = None,
    ) -> StoreSchema:
        """Derive a schema from an example episode; bounds default to the episode's own range."""
        episode.check()
        keys = {
            k: KeySpec(tuple(int(s) for s in v.shape[1:]), v.dtype.name)
            for k, v in episode.steps.items()
        }
        action = episode.steps[ACTION_KEY].reshape(episode.length, -1)
        n = action.shape[1]
        names = (
            tuple(action_names) if action_names is not None else tuple(f"a{i}" for i in range(n))
        )
        low = action.min(axis=0) if action_low is None else np.asarray(action_low).reshape(-1)
        high = action.max(axis=0) if action_high is None else np.asarray(action_high).reshape(-1)
        return cls(keys, names, tuple(map(float, low)), tuple(map(float, high)))

    def check_episode(self, episode: Episode) -> None:
        """Raise StoreError naming the first key whose presence, shape or dtype differs."""
        episode.check()
        got, want = set(episode.steps), set(self.keys)
        if got != want:
            raise StoreError(
                f"episode keys do not match the store: missing {sorted(want - got)}, "
                f"unexpected {sorted(got - want)}; expected exactly {sorted(want)}"
            )
        for key, spec in self.keys.items():
            arr = episode.steps[key]
            if tuple(arr.shape[1:]) != spec.shape:
                raise StoreError(
                    f"steps[{key!r}] has per-step shape {tuple(arr.shape[1:])}, "
                    f"expected {spec.shape} (store schema)"
                )
            if arr.dtype.name != spec.dtype:
                raise StoreError(
                    f"steps[{key!r}] has dtype {arr.dtype.name}, expected {spec.dtype} "
                    f"(store schema); cast it before recording"
                )

    def to_json(self) -> dict[str, Any]:
        return {
            "keys": {k: {"shape": list(v.shape), "dtype": v.dtype} for k, v in self.keys.items()},
            "action_space": {
                "names": list(self.action_names),
                # JSON has no infinity: unbounded dims (gymnasium Boxes) are written as strings.
                "low": [_json_float(x) for x in self.action_low],
                "high": [_json_float(x) for x in self.action_high],
            },
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> StoreSchema:
        try:
            keys = {
                k: KeySpec(tuple(int(s) for s in v["shape"]), str(np.dtype(v["dtype"]).name))
                for k, v in obj["keys"].items()
            }
            space = obj["action_space"]
            return cls(
                keys,
                tuple(space["names"]),
                tuple(float(x) for x in space["low"]),
                tuple(float(x) for x in space["high"]),
            )
        except (KeyError, TypeError, ValueError) as e:
            if isinstance(e, StoreError):
                raise
            raise StoreError(
                f"store schema attribute is malformed ({e!r}); expected {{keys, action_space}}"
            ) from e

    def describe_difference(self, other: StoreSchema) -> str:
        """Human-readable difference, for schema-mismatch errors (empty if equal)."""
        diffs = []
        for k in sorted(set(self.keys) | set(other.keys)):
            a, b = self.keys.get(k), other.keys.get(k)
            if a != b:
                diffs.append(f"{k}: {a} vs {b}")
        if self.action_names != other.action_names:
            diffs.append(f"action names {self.action_names} vs {other.action_names}")
        if (self.action_low, self.action_high) != (other.action_low, other.action_high):
            diffs.append(
                f"action bounds {self.action_low}..{self.action_high} vs "
                f"{other.action_low}..{other.action_high}"
            )
        return "; ".join(diffs)


def _json_float(x: float) -> float | str:
    return x if math.isfinite(x) else str(x)  # "inf" / "-inf"; float() reads both back
