"""The ONNX runtime policy: the torch `UIO2Policy`, run from a deploy bundle without torch.

Behaviour is the torch policy's, step for step: the prompt is tokenized once per episode by the
bundle's Processor, each step's frames join a rolling history (kept as preprocessed frames), the
action mode is picked from the action space's shape, greedy decoding is constrained to the action
bins, chunks go through the same `ActionQueue` or `TemporalEnsembler`, and actions are clipped to
the action space. Only the network calls differ (onnxruntime sessions from
`uio2_robot.export.runtime`), so on the same observations both policies emit the same tokens
(checked by `uio2_robot.export.parity`).

Imports numpy, onnxruntime and the torch-free parts of the package only: importing and running
this module never loads torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces

from uio2_robot.export.manifest import Bundle
from uio2_robot.export.runtime import BundleRunner
from uio2_robot.policies.base import Observation, PromptSegment
from uio2_robot.policies.chunking import ActionQueue, TemporalEnsembler


class OnnxPolicy:
    """Closed-loop controller over a deploy bundle (see the module docstring)."""

    def __init__(
        self,
        bundle: str | Path | Bundle,
        providers: Sequence[str] | None = None,
        threads: int = 0,
        temporal_ensemble: bool = False,
        execute_steps: int = 1,
        warmup: bool = True,
    ) -> None:
        self.runner = BundleRunner(bundle, providers=providers, threads=threads, warmup=warmup)
        self.processor = self.runner.bundle.processor
        self.temporal_ensemble = temporal_ensemble
        self.execute_steps = execute_steps
        self.train_seeds: dict[str, list[int]] = dict(
            self.runner.bundle.manifest.get("train_seeds") or {}
        )
        self._mode: str | None = None
        self._space: spaces.Box | None = None
        self._prompt: dict[str, np.ndarray] | None = None
        self._allowed: np.ndarray | None = None
        self._history: list[np.ndarray] = []
        self._queue = ActionQueue(execute_steps)
        self._ensembler: TemporalEnsembler | None = None

    @property
    def providers(self) -> list[str]:
        """The execution providers the sessions actually run on."""
        return self.runner.providers

    @property
    def bundle(self) -> Bundle:
        return self.runner.bundle

    @property
    def action_mode(self) -> str | None:
        """The action mode picked at the last ``reset`` (None before the first)."""
        return self._mode

    # ------------------------------------------------------------------ the Policy contract
    def reset(
        self, prompt: list[PromptSegment], action_space: spaces.Box, env: Any | None = None
    ) -> None:
        """Tokenize the prompt once and pick the action mode that matches ``action_space``."""
        self._mode = self._mode_for(action_space)
        self._space = action_space
        self._prompt = self.processor.encode_prompt(prompt)
        self._allowed = self.runner.allowed_mask(self.processor.allowed_action_ids(self._mode))
        self._history = []
        self._queue.reset()
        tok = self.processor.action_tokenizer(self._mode)
        self._ensembler = (
            TemporalEnsembler(self.processor.action_horizon, wrap=np.array(tok.wrap))
            if self.temporal_ensemble
            else None
        )

    def act(self, obs: Observation) -> np.ndarray:
        if self._prompt is None or self._space is None:
            raise RuntimeError("OnnxPolicy.act called before reset")
        frame = self.processor.encode_frame(obs)
        if self._ensembler is not None:
            action = self._ensembler.add(self.plan(obs))
        else:
            if self._queue.needs_plan():
                self._queue.push(self.plan(obs))
            action = self._queue.pop()
        self._history.append(frame)
        del self._history[: -max(1, self.processor.max_history)]
        return np.clip(action, self._space.low, self._space.high).astype(np.float32)

    def act_chunk(self, obs: Observation) -> np.ndarray:
        """The whole predicted chunk (H, D) for ``obs`` without advancing the episode."""
        return self.plan(obs)

    # ------------------------------------------------------------------ internals
    def encoder_arrays(self, obs: Observation) -> dict[str, np.ndarray]:
        """The batched (B = 1) encoder inputs of ``obs`` with this episode's prompt and history."""
        if self._prompt is None:
            raise RuntimeError("OnnxPolicy used before reset")
        arrays = {**self._prompt, **self.processor.encode_observation(obs, self._history)}
        return self.processor.collate([arrays])

    def plan_tokens(self, obs: Observation) -> np.ndarray:
        """Greedy action tokens (n_tokens,) for ``obs``."""
        assert self._mode is not None
        tokens = self.runner.generate(
            self.encoder_arrays(obs),
            self.processor.n_action_tokens(self._mode),
            allowed=self._allowed,
        )
        return tokens[0]

    def plan(self, obs: Observation) -> np.ndarray:
        """Encode the current observation (with history) and decode one action chunk (H, D)."""
        return self.processor.decode_actions(self.plan_tokens(obs), self._mode)

    def _mode_for(self, action_space: spaces.Box) -> str:
        dims = {m: self.processor.action_tokenizer(m).dim for m in self.processor.action_modes}
        matches = [m for m, d in dims.items() if (d,) == tuple(action_space.shape)]
        if not matches:
            raise ValueError(
                f"action space of shape {action_space.shape} matches none of this policy's action "
                f"modes {dims}"
            )
        return matches[0]

    def check_eval_seeds(
        self, seed: int, levels_by_task: dict[str, list[str]], episodes: int
    ) -> None:
        """Refuse to evaluate on an episode the exported checkpoint was trained on."""
        from uio2_robot.seeding import episode_seed

        for task, levels in levels_by_task.items():
            for level in levels:
                trained = set(self.train_seeds.get(f"{task}/{level}", []))
                if not trained:
                    continue
                overlap = trained & {episode_seed(seed, task, level, i) for i in range(episodes)}
                if overlap:
                    raise ValueError(
                        f"evaluation seeds overlap the training seeds of {task}/{level} "
                        f"({len(overlap)} episodes, e.g. {sorted(overlap)[:3]}); use an evaluation "
                        "seed base >= uio2_robot.seeding.EVAL_SEED_BASE"
                    )
