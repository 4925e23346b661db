"""numpy batches (from ``Processor.collate``) to torch: ``EncoderInputs`` and the targets.

The Processor is numpy-only so the ONNX runtime can use it without torch; this is the one
place where its arrays become tensors for training and the torch policy.

A training batch is a dict with every ``EncoderInputs`` field plus:

- ``action_tokens`` (B, N) int64: action target ids (``Processor.action_target_tokens``)
- ``action_mask`` (B, N) bool, optional: False where a target is padding (e.g. an action chunk
  that runs past the end of the episode); absent means all True.

Arrays become tensors with :func:`uio2_robot.model.inputs.to_tensor` (the torch policy's path too).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import Tensor

from uio2_robot.model.inputs import (  # noqa: F401  (encoder_inputs_from_numpy re-exported)
    ACTION_TOKENS,
    POINT_TARGETS,
    encoder_inputs_from_numpy,
    to_tensor,
)
from uio2_robot.policies.pretrained import (  # noqa: F401  (re-exported for the trainer)
    check_processor_matches_model,
    processor_sizes,
)

ACTION_MASK = "action_mask"


def batch_to_torch(
    arrays: Mapping[str, np.ndarray | Tensor], device: torch.device | str | None = None
) -> dict[str, Tensor]:
    """Every array as a tensor: ids int64, masks bool (checked), floats float32."""
    return {k: to_tensor(k, v, device) for k, v in arrays.items()}
