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
from uio2_robot.model.uio2 import UIO2Model
from uio2_robot.policies.base import Observation
from uio2_robot.policies.token_policy import TokenPolicy
from uio2_robot.runtime.guidance import PICK_DIMS, PLACE_DIMS, recommended_guidance
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
        if guide_place and not greedy:
            raise ValueError(
                "guide_place decodes greedily (UIO2Model.greedy_decode, as the exported "
                "decoder_guided graph does): use greedy=true or guide_place=false"
            )
        self.build_guide(model.cfg.grid_hw, processor.action_id_range())
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
            self._prompt_cache, hidden = self.model.encode_prompt(
                self.model.embed_prompt(*inputs.prompt_tensors())
            )
            start = self.model.group_slices(self.model.cfg)["prompt_scenes"].start
            self._scene_states = hidden[:, start : start + self.model.cfg.n_patches]
        allowed = torch.zeros(self.model.cfg.vocab_size, dtype=torch.bool, device=self.device)
        allowed[torch.from_numpy(self.processor.allowed_action_ids(self._mode))] = True
        if self.guides(arrays):
            return self._guided_tokens(inputs, allowed)
        return self._generate(inputs, allowed)

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

    def _guided_tokens(self, inputs: EncoderInputs, allowed: torch.Tensor) -> np.ndarray:
        """Greedy decoding with scene-guided placement: ``UIO2Model.greedy_decode`` with the
        guidance tables, the function the ONNX ``decoder_guided`` graph is exported from.

        A prefix model scores the cached prompt's scene states against this step's states (as
        the ONNX policy does; the whole encoder gives the same up to float rounding, tested in
        tests/model/test_prompt_prefix.py, at ~6x the cost); other models encode it all."""
        model, n = self.model, self.model.cfg.n_patches
        if self._prompt_cache is not None:
            step = model.embed_step(
                inputs.obs_images, inputs.history_images, inputs.history_mask, inputs.proprio
            )
            cross_k, cross_v, enc_mask, hidden = model.encode_step(self._prompt_cache, step)
            assert self._scene_states is not None
            scene, obs = self._scene_states[0], hidden[0, :n]
        else:
            enc = model.encode(inputs)
            cross_k, cross_v = model.precompute_cross_kv(enc.hidden, enc.positions, enc.rope_2d)
            enc_mask = enc.mask
            sl = model.group_slices(model.cfg)
            scene_at, obs_at = sl["prompt_scenes"].start, sl["obs_patches"].start
            scene = enc.hidden[0, scene_at : scene_at + n]
            obs = enc.hidden[0, obs_at : obs_at + n]
        assert self.guide_tables is not None
        rows = self.guide_tables.step_rows(scene.float().cpu().numpy(), obs.float().cpu().numpy())
        tokens, _ = model.greedy_decode(
            cross_k,
            cross_v,
            enc_mask,
            allowed,
            self.processor.n_action_tokens(self._mode),
            self.processor.vocab.bos_id,
            self.processor.action_id_range(),
            guide=(
                torch.from_numpy(self.guide_tables.pick_patch).to(self.device),
                torch.from_numpy(rows).to(self.device),
            ),
            guide_dims=(PICK_DIMS, PLACE_DIMS),
        )
        return tokens[0].cpu().numpy()
