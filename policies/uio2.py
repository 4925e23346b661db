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

from uio2_robot.model.inputs import EncoderInputs, encoder_inputs_from_numpy
from uio2_robot.model.uio2 import UIO2Model, scene_match
from uio2_robot.policies.base import Observation
from uio2_robot.policies.token_policy import TokenPolicy
from uio2_robot.runtime.guidance import recommended_guidance
from uio2_robot.tokenize.processor import Processor


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
        guide_place: bool | None = False,
        guide_margin: int = 1,
    ) -> None:
        """``guide_place``: read the place point from the prompt's goal scene
        (`uio2_robot.runtime.guidance`); needs a model with prompt scenes, acts only in primitive mode
        on prompts that show a scene. ``guide_margin``: bins of slack around the goal patch."""
        super().__init__(
            processor,
            temporal_ensemble,
            execute_steps,
            train_seeds,
            bool(guide_place),
            guide_margin,
        )
        if guide_place and not model.cfg.max_prompt_scenes:
            raise ValueError(
                "guide_place needs a model with prompt scenes (ModelConfig.max_prompt_scenes > 0)"
            )
        self._scene_states: torch.Tensor | None = None  # the first scene's, with the prompt cache
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        self.greedy = greedy
        self.temperature = temperature
        self._generator = torch.Generator(device=self.device).manual_seed(seed)

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "cpu", **kwargs: Any) -> UIO2Policy:
        """Load a checkpoint folder written by `uio2-robot train` (weights, config, processor,
        checked against each other by `policies.pretrained.load_pretrained`).
        ``guide_place=None`` (or absent) takes the checkpoint's ``inference.guide_place``."""
        from uio2_robot.policies.pretrained import load_pretrained

        loaded = load_pretrained(path)
        config = loaded.config
        kwargs["guide_place"] = recommended_guidance(config, kwargs.get("guide_place"))
        return cls(
            loaded.model,
            loaded.processor,
            device=device,
            train_seeds=config.get("train_seeds"),
            **kwargs,
        )

    @torch.no_grad()
    def plan_tokens(self, obs: Observation) -> np.ndarray:
        """Constrained decoding of one action chunk's tokens (n_tokens,) for ``obs``."""
        assert self._mode is not None
        arrays = self.encoder_arrays(obs)
        inputs = encoder_inputs_from_numpy(arrays, self.device)
        if self.model.cfg.prompt_prefix and self._prompt_cache is None:  # once per episode
            self._prompt_cache, hidden = self.model.encode_prompt_states(
                self.model.embed_prompt(*inputs.prompt_tensors())
            )
            start = self.model.group_slices(self.model.cfg)["prompt_scenes"].start
            self._scene_states = hidden[:, start : start + self.model.cfg.n_patches]
        allowed = torch.zeros(self.model.cfg.vocab_size, dtype=torch.bool, device=self.device)
        allowed[torch.from_numpy(self.processor.allowed_action_ids(self._mode))] = True
        tokens = self._generate(inputs, allowed)
        if self.guides(arrays):
            rows = self.guided_rows(
                tokens,
                self.model.cfg.grid_hw,
                self.model.cfg.vocab_size,
                lambda pick: self._scene_scores(inputs, pick),
            )
            if rows is not None:
                tokens = self._generate(inputs, torch.from_numpy(rows).to(self.device))
        return tokens

    def _generate(self, inputs: EncoderInputs, allowed: torch.Tensor) -> np.ndarray:
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

    def _scene_scores(self, inputs: EncoderInputs, pick: int) -> np.ndarray:
        """The first prompt scene's patch scores (Np,) for observation patch ``pick``.

        A prefix model scores the cached prompt's scene states against this step's states (as
        the ONNX policy does; the whole encoder would give the same up to float rounding, tested
        in tests/model/test_prompt_prefix.py, at ~6x the cost); other models encode it all."""
        model = self.model
        if self._prompt_cache is None:
            enc = model.encode(inputs)
            query = torch.tensor([pick], device=self.device)
            return model.scene_point_logits(enc, query)[0].float().cpu().numpy()
        step = model.embed_step(
            inputs.obs_images, inputs.history_images, inputs.history_mask, inputs.proprio
        )
        assert self._scene_states is not None
        obs_states = model.encode_step_states(self._prompt_cache, step)[3]
        return scene_match(self._scene_states, obs_states[:, pick])[0].float().cpu().numpy()
