"""The tensors the network takes: the contract between prompt building and the encoder.

Everything is padded to static maximum sizes with boolean masks, so the encoder is one pure
tensor function (exportable to ONNX as it is) and batches of different episodes stack.

Encoder sequence, in this order (UIO2 joins every modality into one encoder sequence):

1. prompt tokens: paradigm prefix + text tokens of the interleaved prompt. Where the prompt
   has an image segment the token is an image marker ``<img_k>`` (a modality token, k = index
   into ``prompt_images``). 1D RoPE positions.
2. prompt image latents: each prompt image is patch-embedded and resampled by the perceiver
   resampler to ``n_latents`` tokens; 2D RoPE positions (image k, latent l), plus the learned
   prompt-image index embedding k that the marker ``<img_k>`` also carries.
2b. prompt scenes (``max_prompt_scenes`` > 0): prompt images that are whole frames of the policy
   camera, again at observation resolution through the observation patch embedding; 2D RoPE
   (row, column) as the observation, plus index embedding k of the image they repeat
   (``scene_image_index``).
3. current observation patches: one grid per camera view; 2D RoPE (row, column) plus a learned
   view embedding.
4. history latents: past observation frames resampled to ``n_latents`` each; 2D RoPE
   (frame t, latent l).
5. proprio: one token from the normalised proprio vector.

Each group also adds its learned modality embedding.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

if TYPE_CHECKING:
    from uio2_robot.model.config import ModelConfig


@dataclass
class EncoderInputs:
    """A batch of encoder inputs. Shapes: B batch, L prompt tokens, K prompt images, S prompt
    scenes, V views, T history frames, P proprio dims. Images are float32, normalised to [-1, 1], channels first.
    """

    tokens: torch.Tensor  # (B, L) int64 vocabulary ids
    token_mask: torch.Tensor  # (B, L) bool, True = real token
    prompt_images: torch.Tensor  # (B, K, 3, Hp, Wp) float32
    prompt_image_mask: torch.Tensor  # (B, K) bool
    scene_images: torch.Tensor  # (B, S, 3, H, W) float32, prompt scenes at observation size
    scene_image_mask: torch.Tensor  # (B, S) bool
    scene_image_index: torch.Tensor  # (B, S) int64, the prompt image k each scene repeats
    obs_images: torch.Tensor  # (B, V, 3, H, W) float32, current frame per view
    history_images: torch.Tensor  # (B, T, V, 3, H, W) float32, oldest first
    history_mask: torch.Tensor  # (B, T) bool
    proprio: torch.Tensor  # (B, P) float32, normalised

    def to(self, device: torch.device | str) -> EncoderInputs:
        return EncoderInputs(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    @property
    def batch_size(self) -> int:
        return int(self.tokens.shape[0])

    def prompt_tensors(self) -> tuple[torch.Tensor, ...]:
        """The prompt fields, in ``UIO2Model.embed_prompt``'s argument order."""
        return tuple(getattr(self, name) for name in PROMPT_FIELDS)

    def as_tuple(self) -> tuple[torch.Tensor, ...]:
        """Positional order used by the exported encoder graph."""
        return tuple(getattr(self, f.name) for f in fields(self))

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    def validate(self, cfg: ModelConfig) -> None:
        """Raise a ValueError naming the first field whose type, dtype or shape is off.

        Sizes are the config's static maxima (pad with masks); images must already be float and
        normalised, so a raw uint8 frame is refused instead of silently producing garbage.
        """
        check_encoder_inputs(self, cfg)


PROMPT_FIELDS = EncoderInputs.names()[: EncoderInputs.names().index("scene_image_index") + 1]
"""The fields fixed for a whole episode (encoded once by a prefix model); the processor's
``PROMPT_KEYS`` (tested equal)."""

_FLOAT = "a floating dtype (float32, normalised to [-1, 1])"


def expected_shapes(cfg: ModelConfig, batch_size: int) -> dict[str, tuple[int, ...]]:
    """The shape each EncoderInputs field must have for a config and batch size."""
    b, hp = batch_size, cfg.prompt_image_size
    h, w = cfg.image_hw
    return {
        "tokens": (b, cfg.max_prompt_tokens),
        "token_mask": (b, cfg.max_prompt_tokens),
        "prompt_images": (b, cfg.max_prompt_images, 3, hp, hp),
        "prompt_image_mask": (b, cfg.max_prompt_images),
        "obs_images": (b, cfg.n_views, 3, h, w),
        "history_images": (b, cfg.max_history, cfg.n_views, 3, h, w),
        "history_mask": (b, cfg.max_history),
        "proprio": (b, cfg.proprio_dim),
        # last, so a wrong observation size is reported on obs_images, not on empty scene slots
        "scene_images": (b, cfg.max_prompt_scenes, 3, h, w),
        "scene_image_mask": (b, cfg.max_prompt_scenes),
        "scene_image_index": (b, cfg.max_prompt_scenes),
    }


def _expected_dtype(name: str) -> str:
    if name in ("tokens", "scene_image_index"):
        return "int64"
    return "bool" if name.endswith("mask") else "float"


def check_encoder_inputs(inputs: EncoderInputs, cfg: ModelConfig) -> None:
    """See ``EncoderInputs.validate``. Only shapes and dtypes are checked while tracing/exporting
    (a value check would be data-dependent control flow)."""
    if not isinstance(inputs, EncoderInputs):
        raise ValueError(f"expected EncoderInputs, got {type(inputs).__name__}")
    tokens = inputs.tokens
    if not isinstance(tokens, torch.Tensor) or tokens.dim() < 1:
        raise ValueError(f"EncoderInputs.tokens must be a (B, L) tensor, got {tokens!r:.80}")
    # shape[0] stays symbolic under torch.export (int() would freeze the batch size)
    shapes = expected_shapes(cfg, tokens.shape[0])
    for name, shape in shapes.items():
        value = getattr(inputs, name)
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"EncoderInputs.{name} must be a torch.Tensor, got {type(value)}")
        kind = _expected_dtype(name)
        ok = {
            "int64": value.dtype == torch.int64,
            "bool": value.dtype == torch.bool,
            "float": value.dtype.is_floating_point,
        }[kind]
        if not ok:
            want = _FLOAT if kind == "float" else kind
            raise ValueError(f"EncoderInputs.{name} must have {want}, got {value.dtype}")
        if tuple(value.shape) != shape:
            raise ValueError(
                f"EncoderInputs.{name} has shape {tuple(value.shape)}, expected {shape} "
                f"(model {cfg.name!r}: pad to the static sizes and mark padding in the masks)"
            )
    if not _tracing() and tokens.numel():
        lo, hi = int(tokens.min()), int(tokens.max())
        if lo < 0 or hi >= cfg.vocab_size:
            raise ValueError(
                f"EncoderInputs.tokens has ids in [{lo}, {hi}], expected [0, {cfg.vocab_size})"
            )
    index = inputs.scene_image_index
    if not _tracing() and index.numel():
        lo, hi = int(index.min()), int(index.max())
        if lo < 0 or hi >= max(cfg.max_prompt_images, 1):
            raise ValueError(
                f"EncoderInputs.scene_image_index has values in [{lo}, {hi}], expected prompt "
                f"image slots [0, {cfg.max_prompt_images})"
            )


def _tracing() -> bool:
    return torch.compiler.is_compiling() or torch.compiler.is_exporting() or torch.jit.is_tracing()


def random_encoder_inputs(
    cfg: ModelConfig, batch_size: int = 1, generator: torch.Generator | None = None
) -> EncoderInputs:
    """Valid random inputs (every mask True) for tests, benchmarks and export examples."""
    shapes = expected_shapes(cfg, batch_size)
    values = {}
    for name, shape in shapes.items():
        kind = _expected_dtype(name)
        if name == "scene_image_index":
            high = max(cfg.max_prompt_images, 1)
            values[name] = torch.randint(0, high, shape, generator=generator)
        elif kind == "int64":
            values[name] = torch.randint(0, cfg.vocab_size, shape, generator=generator)
        elif kind == "bool":
            values[name] = torch.ones(shape, dtype=torch.bool)
        else:
            values[name] = torch.rand(shape, generator=generator) * 2 - 1
    return EncoderInputs(**values)


ACTION_TOKENS = "action_tokens"  # (B, N) int64 action target ids of a training batch
POINT_TARGETS = "point_targets"  # (B, 2) int64 patch of the pick/place point, -1 = none


def to_tensor(name: str, value: np.ndarray | Tensor, device: torch.device | str | None) -> Tensor:
    """``value`` as a tensor: ids int64, masks bool (checked), floats float32, on ``device``."""
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
    return EncoderInputs(**{n: to_tensor(n, arrays[n], device) for n in names})
