"""Deployed episodes into the trajectory store, in the training format.

In delta mode each step pairs the observation the policy was sent with the command the arm really
received (after the safety envelope; holds included), so a fine-tuning run learns what happened on
the robot, not what the policy wished. In primitive mode a step is one executed primitive: the
settled observation it was planned from and the two poses the arm then ran (rejected primitives
moved nothing and are not recorded). Episodes go to the store only when complete (the recorder
buffers in memory), so an e-stop or crash never leaves a partial episode on disk.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from uio2_robot import contracts as contract
from uio2_robot.policies.base import PromptSegment
from uio2_robot.trajectories import EpisodeStore, Recorder, StoreSchema


class DeployRecorder:
    """Buffers one episode at a time and appends finished ones to the store at ``path``."""

    def __init__(self, path: str | os.PathLike[str], only_success: bool = False) -> None:
        self.path = path
        self.only_success = only_success
        self._recorder = Recorder()
        self._store: EpisodeStore | None = None
        self._mode = "delta"
        self.stored = 0
        self.discarded = 0

    def start(self, prompt: list[PromptSegment] | None, meta: dict[str, Any]) -> None:
        self._mode = str(meta.get("action_mode", "delta"))
        contract.check_mode(self._mode)
        self._recorder.start(prompt or [], {**meta, "action_mode": self._mode})

    def add(self, obs: dict[str, np.ndarray], command: np.ndarray) -> None:
        self._recorder.add(obs, np.asarray(command, dtype=np.float32))

    def finish(self, success: bool, keep: bool = True) -> int | None:
        """Store the episode (returns its index) unless empty, unwanted or ``keep`` is False."""
        if not self._recorder.active or self._recorder.n_steps == 0 or not keep:
            self._recorder.discard()
            self.discarded += 1
            return None
        if self.only_success and not success:
            self._recorder.discard()
            self.discarded += 1
            return None
        episode = self._recorder.finish(success)
        if self._store is None:
            low, high = contract.action_bounds(self._mode)
            schema = StoreSchema.from_episode(episode, contract.action_names(self._mode), low, high)
            self._store = EpisodeStore.open_or_create(self.path, schema)
        index = self._store.append_episode(episode)
        self.stored += 1
        return index

    def close(self) -> None:
        self._recorder.discard()
        if self._store is not None:
            self._store.close()
            self._store = None
