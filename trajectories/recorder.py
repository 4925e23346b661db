"""Record a running episode step by step, from any loop (sim rollout, teleop, robot loop).

The recorder only buffers in memory and hands back a complete ``Episode``; appending it to a
store is a separate call, so a loop that dies mid-episode never leaves a partial episode on disk.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from uio2_robot.trajectories.episode import (
    ACTION_KEY,
    NON_OBS_KEYS,
    REWARD_KEY,
    Episode,
    PromptSegment,
)
from uio2_robot.trajectories.errors import StoreError

OBS_KEY = "obs"  # where a plain array observation is stored
_META_FIELDS = ("task", "level", "seed", "action_mode", "control_hz")


def flatten_obs(obs: Any) -> dict[str, np.ndarray]:
    """Dict observations keep their keys (nested dicts joined with '.'); a plain array or scalar
    observation becomes ``{"obs": array}``. Arrays are copied: envs may reuse their buffers."""
    if isinstance(obs, Mapping):
        out: dict[str, np.ndarray] = {}
        for key, value in obs.items():
            if isinstance(value, Mapping):
                out.update({f"{key}.{k}": v for k, v in flatten_obs(value).items()})
            else:
                out[str(key)] = np.array(value)
        for key in out:
            if key in NON_OBS_KEYS:
                raise StoreError(
                    f"observation key {key!r} is reserved; rename it (reserved: {NON_OBS_KEYS})"
                )
        return out
    if isinstance(obs, tuple | list):
        raise StoreError(
            "tuple observations are not supported; expected a dict or an array "
            "(wrap the env in gymnasium.wrappers.FlattenObservation)"
        )
    return {OBS_KEY: np.array(obs)}


class Recorder:
    """Collects (observation, action[, reward]) steps of one episode at a time.

    Usage: ``start(prompt, meta)``, then ``add(obs, action)`` once per step (the observation the
    action was chosen from), then ``finish(success) -> Episode``. ``meta`` may hold task, level,
    seed, action_mode, control_hz; any other entries go to ``Episode.extra``.
    """

    def __init__(self) -> None:
        self._steps: list[dict[str, np.ndarray]] | None = None
        self._prompt: list[PromptSegment] = []
        self._meta: dict[str, Any] = {}

    @property
    def active(self) -> bool:
        return self._steps is not None

    @property
    def n_steps(self) -> int:
        return len(self._steps) if self._steps is not None else 0

    def start(
        self, prompt: list[PromptSegment] | None = None, meta: Mapping[str, Any] | None = None
    ) -> None:
        """Begin an episode; a previous unfinished one is discarded."""
        self._steps = []
        # Copy image segments so later edits by the caller cannot change the record.
        self._prompt = [seg if isinstance(seg, str) else np.array(seg) for seg in (prompt or [])]
        self._meta = dict(meta or {})

    def add(self, obs: Any, action: Any, reward: float | None = None) -> None:
        """Record one step. Keys, shapes and dtypes must match the first step of the episode."""
        if self._steps is None:
            raise StoreError("Recorder.add called before start(); call start(prompt, meta) first")
        step = flatten_obs(obs)
        step[ACTION_KEY] = np.array(action)
        if reward is not None:
            step[REWARD_KEY] = np.asarray(reward, dtype=np.float32)
        if self._steps:
            first = self._steps[0]
            if set(step) != set(first):
                raise StoreError(
                    f"step {len(self._steps)} has keys {sorted(step)}, expected {sorted(first)} "
                    f"as in step 0 (reward must be given at every step or never)"
                )
            for key, value in step.items():
                if value.shape != first[key].shape or value.dtype != first[key].dtype:
                    raise StoreError(
                        f"step {len(self._steps)}: {key!r} is {value.dtype}{list(value.shape)}, "
                        f"expected {first[key].dtype}{list(first[key].shape)} as in step 0"
                    )
        self._steps.append(step)

    def finish(self, success: bool) -> Episode:
        """End the episode and return it (the recorder is then idle)."""
        if self._steps is None:
            raise StoreError("Recorder.finish called before start()")
        if not self._steps:
            raise StoreError("Recorder.finish called with 0 steps; expected at least one add()")
        keys = self._steps[0].keys()
        steps = {k: np.stack([s[k] for s in self._steps]) for k in keys}  # (T, *shape)
        meta = self._meta
        episode = Episode(
            steps=steps,
            prompt=self._prompt,
            success=bool(success),
            extra={k: v for k, v in meta.items() if k not in _META_FIELDS},
            **{k: meta[k] for k in _META_FIELDS if k in meta},
        )
        self.discard()
        episode.check()
        return episode

    def discard(self) -> None:
        """Drop the episode in progress (e.g. an operator aborted it)."""
        self._steps = None
        self._prompt = []
        self._meta = {}
