"""The UIO2 policy (torch): prompt + camera frames in, constrained action tokens out.

Per episode the prompt is tokenized once (text ids, image markers, resized prompt images); per
step the current frames join a rolling history, the network encodes prompt + observation +
history + proprio, the decoder emits ``action_horizon x D`` tokens restricted to the value bins,
and the Processor turns them back into actions. The policy re-plans from every new observation
(closed loop; UIO2 itself planned open-loop), executing the head of each chunk from a queue or
blending overlapping chunks with temporal ensembling.

The network is plain `UIO2Model`; everything around it lives in the numpy `Processor`, shared
with training and the ONNX runtime, so the three agree on every array.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from uio2_robot.model.config import ModelConfig
from uio2_robot.model.uio2 import UIO2Model
from uio2_robot.policies.base import Observation, PromptSegment
from uio2_robot.policies.chunking import ActionQueue, TemporalEnsembler
from uio2_robot.tokenize.processor import Processor
from uio2_robot.train.batching import encoder_inputs_from_numpy
from uio2_robot.train.checkpoint import load_checkpoint


class UIO2Policy:
    """Closed-loop controller around a `UIO2Model` and its `Processor`."""

    def __init__(
        self,
        model: UIO2Model,
        processor: Processor,
        device: str = "cpu",
        greedy: bool = True,
        temperature: float = 1.0,
        temporal_ensemble: bool = False,
        execute_steps: int = 1,
        seed: int = 0,
        train_seeds: dict[str, list[int]] | None = None,
    ) -> None:
        self.model = model.to(device).eval()
        self.processor = processor
        self.device = torch.device(device)
        self.greedy = greedy
        self.temperature = temperature
        self.temporal_ensemble = temporal_ensemble
        self.execute_steps = execute_steps
        self.train_seeds = train_seeds or {}
        self._generator = torch.Generator(device=self.device).manual_seed(seed)
        self._mode: str | None = None
        self._space: spaces.Box | None = None
        self._prompt: dict[str, np.ndarray] | None = None
        self._history: list[np.ndarray] = []
        self._queue = ActionQueue(execute_steps)
        self._ensembler: TemporalEnsembler | None = None

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "cpu", **kwargs: Any) -> UIO2Policy:
        """Load a checkpoint folder written by `uio2-robot train` (weights, config, processor)."""
        weights, config, processor_dict = load_checkpoint(path)
        model = UIO2Model(ModelConfig.from_dict(config["model"]))
        model.load_state_dict(weights)
        processor = Processor.from_dict(processor_dict)
        return cls(model, processor, device=device, train_seeds=config.get("train_seeds"), **kwargs)

    # ------------------------------------------------------------------ the Policy contract
    def reset(
        self, prompt: list[PromptSegment], action_space: spaces.Box, env: Any | None = None
    ) -> None:
        """Tokenize the prompt once and pick the action mode that matches ``action_space``."""
        self._mode = self._mode_for(action_space)
        self._space = action_space
        self._prompt = self.processor.encode_prompt(prompt)
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
            raise RuntimeError("UIO2Policy.act called before reset")
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
    @torch.no_grad()
    def plan(self, obs: Observation) -> np.ndarray:
        """Encode the current observation (with history) and decode one action chunk (H, D)."""
        assert self._prompt is not None and self._mode is not None
        arrays = {**self._prompt, **self.processor.encode_observation(obs, self._history)}
        batch = self.processor.collate([arrays])
        inputs = encoder_inputs_from_numpy(batch, self.device)
        allowed = torch.zeros(self.model.cfg.vocab_size, dtype=torch.bool, device=self.device)
        allowed[torch.from_numpy(self.processor.allowed_action_ids(self._mode))] = True
        tokens = self.model.generate(
            inputs,
            self.processor.n_action_tokens(self._mode),
            allowed=allowed,
            bos_id=self.processor.vocab.bos_id,
            greedy=self.greedy,
            temperature=self.temperature,
            generator=self._generator,
        )
        return self.processor.decode_actions(tokens[0].cpu().numpy(), self._mode)  # (H, D)

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
        """Refuse to evaluate on an episode this checkpoint was trained on."""
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
