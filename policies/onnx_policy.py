"""The ONNX runtime policy: the torch `UIO2Policy`, run from a deploy bundle without torch.

Behaviour is the torch policy's, step for step: the prompt is tokenized once per episode by the
bundle's Processor (and, for a prefix-encoding bundle, encoded once per episode too), each step's frames join a rolling history (kept as preprocessed frames), the
action mode is picked from the action space's shape, greedy decoding is constrained to the action
bins, chunks go through the same `ActionQueue` or `TemporalEnsembler`, and actions are clipped to
the action space. Only the network calls differ (onnxruntime sessions from
`uio2_robot.runtime.runner`), so on the same observations both policies emit the same tokens
(checked by `uio2_robot.export.parity`).

Imports numpy, onnxruntime and the torch-free parts of the package only: importing and running
this module never loads torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from uio2_robot.policies.base import Observation
from uio2_robot.policies.token_policy import TokenPolicy
from uio2_robot.runtime.guidance import grid_hw_of, recommended_guidance
from uio2_robot.runtime.manifest import Bundle
from uio2_robot.runtime.runner import BundleRunner


class OnnxPolicy(TokenPolicy):
    """Closed-loop controller over a deploy bundle (see the module docstring)."""

    def __init__(
        self,
        bundle: str | Path | Bundle,
        providers: Sequence[str] | None = None,
        threads: int = 0,
        temporal_ensemble: bool = False,
        execute_steps: int = 1,
        warmup: bool = True,
        cache_prompt: bool = True,
        guide_place: bool | None = None,
        guide_margin: int = 1,
    ) -> None:
        """``cache_prompt``: with a prefix-encoding bundle, encode the prompt once per episode
        (False re-encodes it with every observation: same tokens, slower; for benchmarks).
        ``guide_place``/``guide_margin``: scene-guided placement as in `UIO2Policy` (None: the
        bundle's recommendation, ``inference.guide_place`` in its manifest)."""
        self.cache_prompt = cache_prompt
        self.runner = BundleRunner(bundle, providers=providers, threads=threads, warmup=warmup)
        guide = recommended_guidance(self.runner.bundle.manifest, guide_place)
        if guide and not self.runner.has_scene_states:
            raise ValueError(
                f"guide_place needs a bundle whose graphs export scene states (a prefix-encoding "
                f"model with prompt scenes); {self.runner.bundle.root} has none"
            )
        if guide and not cache_prompt:
            raise ValueError("guide_place reads the scene from the prompt cache: keep cache_prompt")
        self._scene_states: np.ndarray | None = None
        super().__init__(
            self.runner.bundle.processor,
            temporal_ensemble,
            execute_steps,
            self.runner.bundle.manifest.get("train_seeds"),
            guide,
            guide_margin,
        )
        self._allowed: np.ndarray | None = None
        self.build_guide(
            grid_hw_of(self.runner.bundle.manifest["model_config"]), self.runner.greedy_ids
        )

    @property
    def providers(self) -> list[str]:
        """The execution providers the sessions actually run on."""
        return self.runner.providers

    @property
    def bundle(self) -> Bundle:
        return self.runner.bundle

    def _on_reset(self) -> None:
        self._allowed = self.runner.allowed_mask(self.processor.allowed_action_ids(self._mode))
        self._scene_states = None

    def plan_tokens(self, obs: Observation) -> np.ndarray:
        """Greedy action tokens (n_tokens,) for ``obs``."""
        assert self._mode is not None
        arrays = self.encoder_arrays(obs)
        if self.cache_prompt and self.runner.has_prompt_cache and self._prompt_cache is None:
            if self.guide_place:  # once per episode
                self._prompt_cache, self._scene_states = self.runner.encode_prompt_states(arrays)
            else:
                self._prompt_cache = self.runner.encode_prompt(arrays)
        n_tokens = self.processor.n_action_tokens(self._mode)
        guide = self.guides(arrays)
        cross, b = self.runner.encode_cross(arrays, self._prompt_cache, obs_states=guide)
        if not guide:
            return self.runner.decode(cross, b, n_tokens, self._allowed)[0]
        assert self._scene_states is not None and self.guide_tables is not None
        rows = self.guide_tables.step_rows(self._scene_states[0], cross[-1][0])
        assert self._allowed is not None
        pick_patch = self.guide_tables.pick_patch
        return self.runner.decode_guided(cross, b, n_tokens, self._allowed, pick_patch, rows)[0]
