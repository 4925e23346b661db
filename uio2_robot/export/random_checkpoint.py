"""A seeded, randomly initialised checkpoint folder for a model preset.

Export, parity and latency do not depend on trained weights, so tests and the control-step
benchmark use this when no trained checkpoint is at hand. The processor is sized from the model
config (``processor_sizes``) and checked against it, exactly as training does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def make_random_checkpoint(
    path: str | Path,
    preset: str = "tiny",
    seed: int = 0,
    action_horizon: int = 1,
    **overrides: Any,
) -> Path:
    """Write a checkpoint folder for ``preset`` with seeded random weights; return its path.

    ``action_horizon`` is the processor's chunk length; ``overrides`` change ModelConfig fields.
    A model with prompt scenes gets a processor whose camera frames (and so scenes) are twice the
    observation size, as ``uio2_robot.export.parity.synthetic_episodes`` makes them, and a
    point map on view 0 (the top view's).
    """
    import torch

    from uio2_robot.model.config import get_config
    from uio2_robot.model.uio2 import UIO2Model
    from uio2_robot.policies.pretrained import (
        check_processor_matches_model,
        processor_sizes,
        save_checkpoint,
    )
    from uio2_robot.tokenize.processor import Processor

    base = get_config(preset, **overrides)
    sizes = processor_sizes(base)
    if base.max_prompt_scenes:  # a prompt image of the camera frame's size is a scene
        from uio2_robot.envs.render import top_view_point_map
        from uio2_robot.envs.spaces import CAMERAS

        h, w = base.image_hw
        sizes["frame_size"] = (2 * h, 2 * w)
        # view 0 maps table points to pixels (as a cropped top view does), so scene-guided
        # placement has a pick patch to guide from
        sizes["point_maps"] = {sizes.get("camera_keys", CAMERAS)[0]: top_view_point_map()}
    processor = Processor.for_suite(**sizes, action_horizon=action_horizon)
    cfg = base.replace(
        vocab_size=processor.vocab.size, image_marker_id=processor.vocab.image_marker_id(0)
    )
    check_processor_matches_model(processor, cfg)
    torch.manual_seed(seed)
    model = UIO2Model(cfg)
    return save_checkpoint(path, model, {"model": cfg.to_dict()}, processor.to_dict())
