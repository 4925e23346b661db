"""Fine-tuning an imported official UIO2 model on VIMA-style plans: full, ViT frozen, or LoRA.

An example is what UIO2 trained on for VIMA-Bench: the prompt (its images as history frames),
the first observation as the image input, and the whole plan as the text target
(``uio2_robot.tokenize.official_actions``). The loss is the project's masked cross-entropy
over the target tokens (teacher forcing, decoder input = BOS + targets[:-1]).

Modes:
- ``full``: every weight trains (the ViT too; UIO2 itself kept it frozen);
- ``frozen_vit``: the CLIP ViT is frozen, everything else trains;
- ``lora``: only low-rank factors on the encoder's and decoder's attention projections train
  (``uio2_robot.train.lora``); the saved checkpoint holds the merged weights, so it loads as an
  ordinary imported checkpoint.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from uio2_robot.errors import UsageError
from uio2_robot.model.official import OfficialConfig, OfficialInputs, OfficialUIO2
from uio2_robot.policies.pretrained import save_checkpoint
from uio2_robot.tokenize.official_actions import plan_text
from uio2_robot.tokenize.official_batch import official_example
from uio2_robot.tokenize.official_vocab import OfficialTokenizer
from uio2_robot.train.lora import apply_lora, merged_state_dict
from uio2_robot.train.objectives import SequenceLoss, masked_cross_entropy

FINETUNE_MODES = ("full", "frozen_vit", "lora")


def plan_example(
    tokenizer: OfficialTokenizer,
    cfg: OfficialConfig,
    prompt: str,
    prompt_images: Sequence[np.ndarray],
    first_obs: np.ndarray,
    actions: np.ndarray,
    kind: str = "pick_place",
) -> dict[str, np.ndarray]:
    """One training example (official batch layout, B = 1) for a demonstrated plan."""
    return official_example(
        tokenizer,
        prompt,
        first_obs,
        list(prompt_images),
        cfg.image_size,
        cfg.history_size,
        max(1, len(prompt_images)),
        target=plan_text(actions, kind),
        patch=cfg.patch_size,
    )


def prepare_finetune(
    model: OfficialUIO2, mode: str, lora_rank: int = 8, lora_alpha: float = 16.0
) -> int:
    """Set which weights train for ``mode``; returns the number of trainable parameters."""
    if mode not in FINETUNE_MODES:
        raise UsageError(f"finetune mode {mode!r}; expected one of {FINETUNE_MODES}")
    model.requires_grad_(mode == "full" or mode == "frozen_vit")
    if mode == "frozen_vit":
        model.vit.requires_grad_(False)
    if mode == "lora":
        model.requires_grad_(False)
        apply_lora(model.encoder_layers, lora_rank, lora_alpha)
        apply_lora(model.decoder_layers, lora_rank, lora_alpha)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def example_loss(model: OfficialUIO2, batch: Mapping[str, Any]) -> SequenceLoss:
    """Teacher-forced CE of one official batch with ``targets/text/*``."""
    inp = OfficialInputs.from_official(batch)
    dec_in = torch.as_tensor(batch["targets/text/inputs"]).long()
    targets = torch.as_tensor(batch["targets/text/targets"]).long()
    mask = torch.as_tensor(batch["targets/text/mask"]) > 0
    logits = model(inp, dec_in, mask)
    return masked_cross_entropy(logits, targets, mask)


def finetune(
    model: OfficialUIO2,
    batches: Iterable[Mapping[str, Any]],
    steps: int,
    lr: float = 1e-3,
    clip: float = 1.0,
) -> list[float]:
    """AdamW over the trainable weights for ``steps`` batches (cycled); the losses per step.
    Gradient norm clipped at ``clip`` (UIO2's recipe)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise UsageError("nothing to train: call prepare_finetune first")
    data = list(batches)
    if not data:
        raise UsageError("no training batches")
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    model.train()
    losses = []
    for step in range(steps):
        out = example_loss(model, data[step % len(data)])
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(params, clip)
        opt.step()
        losses.append(float(out.loss.detach()))
    model.eval()
    return losses


def save_finetuned(
    model: OfficialUIO2, path: str | Path, config: dict[str, Any], processor: dict[str, Any]
) -> Path:
    """Write the fine-tuned model as an imported checkpoint (LoRA merged into the weights)."""
    state: dict[str, Tensor] = merged_state_dict(model)
    return save_checkpoint(path, state, config, processor)
