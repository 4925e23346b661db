"""What the torch and ONNX UIO2 policies share: everything but the network call.

Per episode the prompt is tokenized once; per step the current frames join a rolling history
(kept as preprocessed frames), the subclass decodes action tokens, the Processor turns them into
an action chunk, and the chunk goes through an `ActionQueue` or a `TemporalEnsembler`; actions are
clipped to the action space. Keeping this in one numpy-only class is what makes the two runtimes
behave identically (and keeps torch out of the ONNX runtime's process).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # annotations only: the robot PC (runtime profile) has no gymnasium
    from gymnasium import spaces

from uio2_robot.policies.base import Observation, PromptSegment
from uio2_robot.policies.chunking import ActionQueue, TemporalEnsembler
from uio2_robot.runtime.guidance import GuideTables, check_margin
from uio2_robot.tokenize.processor import Processor


class TokenPolicy:
    """Base class: subclasses implement :meth:`plan_tokens` (greedy or sampled action ids)."""

    def __init__(
        self,
        processor: Processor,
        temporal_ensemble: bool = False,
        execute_steps: int = 1,
        train_seeds: dict[str, list[int]] | None = None,
        guide_place: bool = False,
        guide_margin: int = 1,
    ) -> None:
        """``guide_place``/``guide_margin``: scene-guided placement (`uio2_robot.runtime.guidance`);
        the subclass checks its network can score scenes, builds the tables (`build_guide`) and
        decodes with them."""
        check_margin(guide_margin)
        self.guide_place = bool(guide_place)
        self.guide_margin = guide_margin
        self.processor = processor
        self.temporal_ensemble = temporal_ensemble
        self.execute_steps = execute_steps
        self.train_seeds = dict(train_seeds or {})
        self._mode: str | None = None
        self._space: spaces.Box | None = None
        self._prompt: dict[str, np.ndarray] | None = None
        # the network's encoding of this episode's prompt, for prefix-encoding models: built by
        # the subclass at the first plan of an episode, dropped at reset
        self._prompt_cache: Any = None
        self._history: list[np.ndarray] = []
        self._queue = ActionQueue(execute_steps)
        self._ensembler: TemporalEnsembler | None = None
        self.guide_tables: GuideTables | None = None

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
        self._prompt_cache = None
        self._history = []
        self._queue.reset()
        tok = self.processor.action_tokenizer(self._mode)
        self._ensembler = (
            TemporalEnsembler(self.processor.action_horizon, wrap=np.array(tok.wrap))
            if self.temporal_ensemble
            else None
        )
        self._on_reset()

    def act(self, obs: Observation) -> np.ndarray:
        if self._prompt is None or self._space is None:
            raise RuntimeError(f"{type(self).__name__}.act called before reset")
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

    # ------------------------------------------------------------------ planning
    def encoder_arrays(self, obs: Observation) -> dict[str, np.ndarray]:
        """The batched (B = 1) encoder inputs of ``obs`` with this episode's prompt and history."""
        if self._prompt is None:
            raise RuntimeError(f"{type(self).__name__} used before reset")
        arrays = {**self._prompt, **self.processor.encode_observation(obs, self._history)}
        return self.processor.collate([arrays])

    def plan_tokens(self, obs: Observation) -> np.ndarray:
        """Action token ids (n_tokens,) for ``obs``; the network call of the subclass."""
        raise NotImplementedError

    def guides(self, arrays: dict[str, np.ndarray]) -> bool:
        """Whether this step's decode is guided: guidance on, primitive mode, a prompt scene."""
        return (
            self.guide_place
            and self._mode == "primitive"
            and bool(arrays["scene_image_mask"][0, 0])
        )

    def build_guide(self, grid_hw: tuple[int, int], ids: tuple[int, int]) -> None:
        """Build the guidance tables once (when guidance is on) for a network with patch grid
        ``grid_hw`` that decodes the ids lo..hi-1 (``Processor.action_id_range``)."""
        if self.guide_place:
            self.guide_tables = GuideTables.build(self.processor, grid_hw, ids, self.guide_margin)

    def plan(self, obs: Observation) -> np.ndarray:
        """Encode the current observation (with history) and decode one action chunk (H, D)."""
        return self.processor.decode_actions(self.plan_tokens(obs), self._mode)

    def _on_reset(self) -> None:
        """Per-episode set-up of the subclass (e.g. the allowed-token mask)."""

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
        """Refuse to evaluate on an episode this policy was trained on."""
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
