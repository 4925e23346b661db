"""The released Unified-IO 2 network (official checkpoints): config, ViT, resampler, model.

Pure tensors in, tensors out, like the rest of ``uio2_robot.model``; reading release files and
mapping their keys lives in ``uio2_robot.official``.
"""

from uio2_robot.model.official.config import OfficialConfig
from uio2_robot.model.official.model import (
    OfficialEncoded,
    OfficialInputs,
    OfficialUIO2,
    assign_weights,
    official_on_meta,
)

__all__ = [
    "OfficialConfig",
    "OfficialEncoded",
    "OfficialInputs",
    "OfficialUIO2",
    "assign_weights",
    "official_on_meta",
]
