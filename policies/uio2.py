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

from uio2_robot.model.config import ModelConfig
from uio2_robot.model.uio2 import UIO2Model
from uio2_robot.policies.base import Observation
from uio2_robot.policies.token_policy import TokenPolicy
from uio2_robot.tokenize.processor import Processor
from uio2_robot.train.batching import encoder_inputs_from_numpy
from uio2_robot.train.checkpoint import load_checkpoint


class UIO2Policy(TokenPolicy):
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
        super().__init__(processor, temporal_ensemble, execute_steps, train_seeds)
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        self.greedy = greedy
        self.temperature = temperature
        self._generator = torch.Generator(device=self.device).manual_seed(seed)

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "cpu", **kwargs: Any) -> UIO2Policy:
        """Load a checkpoint folder written by `uio2-robot train` (weights, config, processor)."""
        weights, config, processor_dict = load_checkpoint(path)
        model = UIO2Model(ModelConfig.from_dict(config["model"]))
        model.load_state_dict(weights)
        processor = Processor.from_dict(processor_dict)
        return cls(model, processor, device=device, train_seeds=config.get("train_seeds"), **kwargs)

    @torch.no_grad()
    def plan_tokens(self, obs: Observation) -> np.ndarray:
        """Constrained decoding of one action chunk's tokens (n_tokens,) for ``obs``."""
        assert self._mode is not None
        inputs = encoder_inputs_from_numpy(self.encoder_arrays(obs), self.device)
        if self.model.cfg.prompt_prefix and self._prompt_cache is None:  # once per episode
            self._prompt_cache = self.model.encode_prompt(
                self.model.embed_prompt(*inputs.prompt_tensors())
            )
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
            prompt=self._prompt_cache,
        )
        return tokens[0].cpu().numpy()
