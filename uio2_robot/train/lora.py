"""LoRA on the transformer's projections, for cheap fine-tuning of a trained policy.

Only the low-rank factors train; the base weights stay frozen. Which projections are wrapped is
``TrainConfig.lora_targets`` (attention and MLP by default). Checkpoints store the *merged*
weights (base + B @ A * alpha / rank), so a fine-tuned checkpoint is an ordinary `UIO2Model`
that the policy, the export and the runtime load with no LoRA code at all.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from uio2_robot.train.config import ATTENTION_PROJECTIONS, LORA_TARGETS


class LoRALinear(nn.Module):
    """``base(x) + (x @ A^T @ B^T) * alpha / rank`` with B initialised at zero (a no-op start)."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float) -> None:
        super().__init__()
        if rank < 1:
            raise ValueError(f"LoRA rank must be >= 1, got {rank}")
        self.base = base
        self.base.requires_grad_(False)
        self.scale = alpha / rank
        self.lora_a = nn.Parameter(torch.empty(rank, base.in_features))
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank))
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))

    def forward(self, x: Tensor) -> Tensor:
        return self.base(x) + (x @ self.lora_a.t() @ self.lora_b.t()) * self.scale

    def merged_weight(self) -> Tensor:
        return self.base.weight + (self.lora_b @ self.lora_a) * self.scale


def apply_lora(
    model: nn.Module, rank: int, alpha: float, targets: Sequence[str] = ATTENTION_PROJECTIONS
) -> int:
    """Freeze ``model`` and wrap every projection named in ``targets`` (of ``LORA_TARGETS``) in
    LoRA; return the number of trainable parameters."""
    unknown = sorted(set(targets) - set(LORA_TARGETS))
    if unknown or not targets:
        raise ValueError(
            f"lora_targets must be a non-empty subset of {list(LORA_TARGETS)}, got {list(targets)}"
        )
    model.requires_grad_(False)
    wrapped = [
        (parent, name)
        for parent in model.modules()
        for name in targets
        if isinstance(getattr(parent, name, None), nn.Linear)
    ]
    if not wrapped:
        raise ValueError(f"no projections {list(targets)} found in the model for LoRA")
    for parent, name in wrapped:
        setattr(parent, name, LoRALinear(getattr(parent, name), rank, alpha))
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def merged_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """The state dict of the plain model: LoRA factors folded into the base weights."""
    state: dict[str, Tensor] = {}
    lora_prefixes = {
        name: module for name, module in model.named_modules() if isinstance(module, LoRALinear)
    }
    for key, value in model.state_dict().items():
        owner = next((p for p in lora_prefixes if key.startswith(p + ".")), None)
        if owner is None:
            state[key] = value
            continue
        suffix = key[len(owner) + 1 :]
        if suffix == "base.weight":
            state[f"{owner}.weight"] = lora_prefixes[owner].merged_weight().detach()
        elif suffix.startswith("base."):
            state[f"{owner}.{suffix[5:]}"] = value
    return state
