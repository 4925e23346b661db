"""The ONNX runtime policy: the torch `UIO2Policy`, run from a deploy bundle without torch.

Behaviour is the torch policy's, step for step: the prompt is tokenized once per episode by the
bundle's Processor (and, for a prefix-encoding bundle, encoded once per episode too), each step's frames join a rolling history (kept as preprocessed frames), the
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

import numpy as np

from uio2_robot.export.manifest import Bundle
from uio2_robot.export.runtime import BundleRunner
from uio2_robot.policies.base import Observation
from uio2_robot.policies.token_policy import TokenPolicy


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
    ) -> None:
        """``cache_prompt``: with a prefix-encoding bundle, encode the prompt once per episode
        (False re-encodes it with every observation: same tokens, slower; for benchmarks)."""
        self.cache_prompt = cache_prompt
        self.runner = BundleRunner(bundle, providers=providers, threads=threads, warmup=warmup)
        super().__init__(
            self.runner.bundle.processor,
            temporal_ensemble,
            execute_steps,
            self.runner.bundle.manifest.get("train_seeds"),
        )
        self._allowed: np.ndarray | None = None

    @property
    def providers(self) -> list[str]:
        """The execution providers the sessions actually run on."""
        return self.runner.providers

    @property
    def bundle(self) -> Bundle:
        return self.runner.bundle

    def _on_reset(self) -> None:
        self._allowed = self.runner.allowed_mask(self.processor.allowed_action_ids(self._mode))

    def plan_tokens(self, obs: Observation) -> np.ndarray:
        """Greedy action tokens (n_tokens,) for ``obs``."""
        assert self._mode is not None
        arrays = self.encoder_arrays(obs)
        if self.cache_prompt and self.runner.has_prompt_cache and self._prompt_cache is None:
            self._prompt_cache = self.runner.encode_prompt(arrays)  # once per episode
        tokens = self.runner.generate(
            arrays,
            self.processor.n_action_tokens(self._mode),
            allowed=self._allowed,
            prompt=self._prompt_cache,
        )
        return tokens[0]
