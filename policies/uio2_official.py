"""A released Unified-IO 2 checkpoint as a primitive-mode policy (``policy=uio2_official``).

UIO2 was evaluated on VIMA-Bench by decoding the whole plan open-loop from the first
observation, with the prompt's images as image history (``<image_history_k>`` in the text)
and the current frame as the image input; each step is text in UIO2's action format
(``uio2_robot.tokenize.official_actions``). This policy does the same: at the first ``act``
(and again whenever the plan is used up) it decodes a plan under the action grammar, so every
decoded plan parses, then plays one step per ``act``.

The checkpoint is one imported by ``uio2-robot official import``; the tokenizer is LLaMA's
``tokenizer.model`` (not shipped; ``tokenizer=PATH``). The prompt text is the env's with its
images replaced by markers, followed by " Predict the next action." (the form of the shared
official fixture's prompt).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from uio2_robot.model.official import OfficialConfig, OfficialInputs, OfficialUIO2
from uio2_robot.policies.base import Observation, PromptSegment, check_action
from uio2_robot.policies.pretrained import load_official_checkpoint
from uio2_robot.runtime.official import OfficialRunner
from uio2_robot.tokenize.official_actions import ActionGrammar
from uio2_robot.tokenize.official_batch import official_example, prompt_to_text
from uio2_robot.tokenize.official_vocab import OfficialTokenizer


class UIO2OfficialPolicy:
    """Open-loop plans from a released UIO2 model, under constrained decoding."""

    def __init__(
        self,
        checkpoint: str | Path | None,
        tokenizer: str | Path,
        device: str = "cpu",
        camera: str = "top",
        max_steps: int = 8,
        bundle: str | Path | None = None,
    ) -> None:
        if (checkpoint is None) == (bundle is None):
            raise ValueError("give exactly one of checkpoint=DIR (torch) and bundle=DIR (ONNX)")
        self.model: OfficialUIO2 | None = None
        self.runner: OfficialRunner | None = None
        if checkpoint is not None:
            self.model = load_official_checkpoint(checkpoint)[0].to(device)
            cfg = self.model.cfg
        else:
            self.runner = OfficialRunner(bundle)
            cfg = OfficialConfig.from_dict(self.runner.config)
        self.cfg = cfg
        self.device = device
        self.tokenizer = OfficialTokenizer(tokenizer)
        if self.tokenizer.size > cfg.vocab_size:
            raise ValueError(
                f"tokenizer {tokenizer} has {self.tokenizer.size} pieces, more than the model's "
                f"vocab_size={cfg.vocab_size}"
            )
        self.grammar = ActionGrammar.build(
            self.tokenizer.encode, self.tokenizer.vocab, cfg.vocab_size, max_steps
        )
        longest = max(len(t) for _, _, t in self.grammar.templates)
        self.max_tokens = min(longest * max_steps + 1, cfg.max_text_len)
        self.camera = camera
        self._prompt = ""
        self._history: list[np.ndarray] = []
        self._plan: list[np.ndarray] = []
        self._space: spaces.Box | None = None
        self.last_plan_tokens: list[int] = []

    def reset(
        self, prompt: list[PromptSegment], action_space: spaces.Box, env: Any | None = None
    ) -> None:
        if action_space.shape != (6,):
            raise ValueError(
                f"policy=uio2_official plays primitive mode (6 numbers), got {action_space.shape}"
            )
        self._prompt, self._history = prompt_to_text(prompt, self.cfg.max_frames)
        self._space = action_space
        self._plan = []

    @torch.no_grad()
    def plan(self, obs: Observation) -> np.ndarray:
        """Decode a whole plan for ``obs``: (n_steps, 6) poses (at least one step)."""
        if self.camera not in obs:
            raise ValueError(f"observation has no {self.camera!r} camera; got {sorted(obs)}")
        cfg = self.cfg
        batch = official_example(
            self.tokenizer,
            self._prompt,
            obs[self.camera],
            self._history,
            cfg.image_size,
            cfg.history_size,
            max(1, len(self._history)),
            patch=cfg.patch_size,
        )
        if self.runner is not None:
            tokens = self.runner.generate(batch, self.max_tokens, self.grammar.allowed)
        else:
            tokens = self._torch_generate(batch)
        self.last_plan_tokens = tokens
        _, poses = self.grammar.parse_plan(tokens)
        if not len(poses):
            raise RuntimeError(f"decoded no complete step in {self.max_tokens} tokens: {tokens}")
        return poses

    def _torch_generate(self, batch: dict[str, np.ndarray]) -> list[int]:
        assert self.model is not None
        inp = OfficialInputs.from_official(batch)
        inp = OfficialInputs(*(t.to(self.device) for t in inp.as_tuple()))

        def constraint(so_far: torch.Tensor) -> torch.Tensor:
            rows = [self.grammar.allowed(r) for r in so_far.tolist()]
            return torch.from_numpy(np.stack(rows))

        return self.model.generate(inp, self.max_tokens, constraint=constraint)[0].tolist()

    def act(self, obs: Observation) -> np.ndarray:
        if self._space is None:
            raise RuntimeError("call reset(prompt, action_space) before act")
        if not self._plan:
            self._plan = list(self.plan(obs))
        action = np.clip(self._plan.pop(0), self._space.low, self._space.high)
        return check_action(action.astype(np.float32), self._space)
