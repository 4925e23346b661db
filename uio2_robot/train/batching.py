"""numpy batches (from ``Processor.collate``) to torch: ``EncoderInputs`` and the targets.

The Processor is numpy-only so the ONNX runtime can use it without torch; this is the one
place where its arrays become tensors for training and the torch policy.

A training batch is a dict with every ``EncoderInputs`` field plus:

- ``action_tokens`` (B, N) int64: action target ids (``Processor.action_target_tokens``)
- ``action_mask`` (B, N) bool, optional: False where a target is padding (e.g. an action chunk
  that runs past the end of the episode); absent means all True.

``processor_sizes`` / ``check_processor_matches_model`` keep a Processor and a ModelConfig in
step (the two are saved separately in a checkpoint).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from uio2_robot.model.config import ModelConfig
from uio2_robot.model.inputs import EncoderInputs
from uio2_robot.tokenize.processor import Processor, model_mismatches

ACTION_TOKENS = "action_tokens"
ACTION_MASK = "action_mask"
POINT_TARGETS = "point_targets"  # (B, 2) int64 patch of the pick/place point, -1 = none


def _to_tensor(name: str, value: np.ndarray | Tensor, device: torch.device | str | None) -> Tensor:
    if isinstance(value, Tensor):
        t = value
    elif isinstance(value, np.ndarray):
        t = torch.from_numpy(np.ascontiguousarray(value))
    else:
        raise ValueError(f"batch[{name!r}] must be a numpy array or tensor, got {type(value)}")
    if name in ("tokens", ACTION_TOKENS, POINT_TARGETS):
        if t.dtype.is_floating_point or t.dtype == torch.bool:
            raise ValueError(f"batch[{name!r}] must be integer ids, got {t.dtype}")
        t = t.to(torch.int64)
    elif name.endswith("mask"):
        if t.dtype != torch.bool:
            raise ValueError(f"batch[{name!r}] must be bool, got {t.dtype}")
    elif t.dtype.is_floating_point:
        t = t.to(torch.float32)
    return t.to(device) if device is not None else t


def batch_to_torch(
    arrays: Mapping[str, np.ndarray | Tensor], device: torch.device | str | None = None
) -> dict[str, Tensor]:
    """Every array as a tensor: ids int64, masks bool (checked), floats float32."""
    return {k: _to_tensor(k, v, device) for k, v in arrays.items()}


def encoder_inputs_from_numpy(
    arrays: Mapping[str, np.ndarray | Tensor], device: torch.device | str | None = None
) -> EncoderInputs:
    """The ``EncoderInputs`` of a batch dict (extra keys such as targets are ignored)."""
    names = EncoderInputs.names()
    missing = [n for n in names if n not in arrays]
    if missing:
        raise ValueError(
            f"batch is missing encoder inputs {missing}; got keys {sorted(arrays)} "
            "(build batches with Processor.encode_inputs + Processor.collate)"
        )
    return EncoderInputs(**{n: _to_tensor(n, arrays[n], device) for n in names})


def processor_sizes(cfg: ModelConfig) -> dict[str, Any]:
    """The Processor fields a model config fixes: pass as ``Processor.for_suite(**sizes)``."""
    return {
        "image_size": cfg.image_hw,
        "prompt_image_size": cfg.prompt_image_size,
        "max_prompt_tokens": cfg.max_prompt_tokens,
        "max_prompt_images": cfg.max_prompt_images,
        "max_history": cfg.max_history,
        "max_prompt_scenes": cfg.max_prompt_scenes,
    }


def check_processor_matches_model(processor: Processor, cfg: ModelConfig) -> None:
    """Raise a ValueError listing every size on which a processor and a model disagree
    (`uio2_robot.tokenize.processor.model_mismatches`)."""
    bad = model_mismatches(processor, cfg.to_dict())
    if bad:
        raise ValueError("processor and model config disagree: " + "; ".join(bad))
