"""The UIO2 network: config presets, layers, resampler, encoder-decoder with KV-cache decoding.

Pure tensors in, tensors out: no file, env or tokenizer imports (sizes and special ids arrive
as config integers).
"""

from uio2_robot.model.config import PRESETS, ModelConfig, get_config
from uio2_robot.model.inputs import EncoderInputs, random_encoder_inputs
from uio2_robot.model.params import count_parameters, model_info
from uio2_robot.model.sequence import GROUPS, EncoderOutput, group_slices
from uio2_robot.model.uio2 import UIO2Model

__all__ = [
    "GROUPS",
    "PRESETS",
    "EncoderInputs",
    "EncoderOutput",
    "ModelConfig",
    "UIO2Model",
    "count_parameters",
    "get_config",
    "group_slices",
    "model_info",
    "random_encoder_inputs",
]
