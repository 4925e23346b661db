"""An exponential moving average of the trained weights (``TrainConfig.ema_decay``).

The averaged weights are what the run's ``policy`` checkpoint holds (and so what rollout,
export and serve run) and what in-training evaluation scores; the raw weights keep training
and go to ``last`` for resume, with the average beside them in the train state. Diffusion
Policy, LeRobot's diffusion policy and openpi (decay 0.99) evaluate averaged weights for the
same reason: the last optimizer steps of a small-data fine-tune jitter between nearby minima,
and their average generalises more evenly than any one of them.

The decay warms up as ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates (TensorFlow's
``ExponentialMovingAverage(num_updates=...)``): a 500-step fine-tune at decay 0.999 would
otherwise still hold 60% of its starting weights at the end.

Measured (docs/finetuning.md, issue #25): on same_texture from 400 demonstrations, decay 0.99
scored 84/100 against 78/100 on the 50 episodes the settings were compared on, and 73% and 71%
against 72% on 100 fresh ones: no gain that survives fresh seeds, so the fine-tuning recipe
leaves it off.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from uio2_robot.train.config import check_ema_decay


class WeightAverage:
    """The moving average of ``model``'s trainable parameters (frozen ones never change, so the
    model's own copy serves). Float32 shadows, whatever the parameters' dtype."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        check_ema_decay(decay)
        if decay == 0.0:
            raise ValueError("a WeightAverage needs ema_decay > 0")
        self.decay = decay
        self.updates = 0
        self.shadow: dict[str, Tensor] = {
            name: p.detach().float().clone()
            for name, p in model.named_parameters()
            if p.requires_grad
        }
        if not self.shadow:
            raise ValueError("the model has no trainable parameters to average")

    def current_decay(self) -> float:
        """The decay the next update uses (warmed up over the first updates)."""
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Fold the model's current parameters in; call after every optimizer step."""
        d = self.current_decay()
        params = dict(model.named_parameters())
        for name, avg in self.shadow.items():
            avg.lerp_(params[name].detach().float(), 1.0 - d)
        self.updates += 1

    @contextmanager
    def applied(self, model: nn.Module) -> Iterator[nn.Module]:
        """``model`` with the averaged weights in place of its own, restored on exit (the model
        keeps training on its raw weights)."""
        params = dict(model.named_parameters())
        raw = {name: params[name].detach().clone() for name in self.shadow}
        with torch.no_grad():
            for name, avg in self.shadow.items():
                params[name].copy_(avg)
        try:
            yield model
        finally:
            with torch.no_grad():
                for name, value in raw.items():
                    params[name].copy_(value)

    def state_dict(self) -> dict[str, object]:
        """What resume needs: the shadows and the update count (the warm-up depends on it)."""
        return {"updates": self.updates, "shadow": dict(self.shadow)}

    def load_state_dict(self, state: dict[str, object]) -> None:
        """Restore :meth:`state_dict`; the saved names must be this model's trainable ones."""
        shadow = state["shadow"]
        saved = set(shadow) if isinstance(shadow, dict) else set()
        if saved != set(self.shadow):
            missing, extra = sorted(set(self.shadow) - saved), sorted(saved - set(self.shadow))
            raise ValueError(
                "the saved weight average does not fit this run's trainable parameters "
                f"(missing {missing[:3]}, unexpected {extra[:3]}); was the run resumed with "
                "another finetune mode?"
            )
        for name, value in shadow.items():
            self.shadow[name].copy_(value)
        self.updates = int(state["updates"])  # type: ignore[call-overload]
