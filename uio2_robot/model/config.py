"""Model configuration and the size presets.

A ``ModelConfig`` is plain data: it is saved as JSON next to every checkpoint and deploy bundle,
so a bundle alone rebuilds the network. The vocabulary size and the id of the first prompt-image
marker come from the tokenizer's ``Vocabulary`` (``vocab.size``, ``vocab.image_marker_ids[0]``);
the model never imports the tokenizer, it only takes the integers.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields
from typing import Any

# Sizes of the unified vocabulary laid out by ``uio2_robot.tokenize.vocab.Vocabulary`` with its
# defaults (200 sentinels, 1000 value bins, 4 modality + 3 paradigm tokens, 8 image markers,
# bos/pad/eos). Kept here as numbers because model must not depend on tokenize; a test checks
# that they agree.
BYTE_VOCAB_SIZE = 1474  # Vocabulary(text_size=256).size
BYTE_IMAGE_MARKER_ID = 1463  # Vocabulary(text_size=256).image_marker_id(0)
UIO2_VOCAB_SIZE = 33218  # Vocabulary(text_size=32000).size (LLaMA SentencePiece text ids)
UIO2_IMAGE_MARKER_ID = 33207  # Vocabulary(text_size=32000).image_marker_id(0)


@dataclass
class ModelConfig:
    """Every size the network needs. Observation images are ``image_size`` high and
    ``image_width`` wide (None: square); prompt images are square.

    Static sizes (``max_prompt_tokens``, ``max_prompt_images``, ``max_history``) fix the encoder
    sequence length, so the encoder is one static graph; shorter inputs are padded with masks.
    """

    name: str
    d_model: int
    n_heads: int
    head_dim: int
    mlp_hidden: int
    n_enc_layers: int
    n_dec_layers: int
    vocab_size: int
    image_size: int  # H of the observation images (and W unless image_width is set)
    patch_size: int
    prompt_image_size: int  # H = W of prompt images
    n_views: int
    max_history: int  # past frames T resampled into the encoder
    n_latents: int  # resampler latents per frame
    resampler_dim: int
    resampler_heads: int
    resampler_mlp: int
    resampler_layers: int = 2
    proprio_dim: int = 6
    max_prompt_tokens: int = 64
    max_prompt_images: int = 4
    max_dec_len: int = 32
    # W of the observation images when they are not square: a 2:1 view frames the suite's
    # 0.5 m x 1 m workspace without wasting half the pixels on floor.
    image_width: int | None = None
    # "linear": a patch is its pixels through one matrix (ViT); "conv": a small conv stem
    # (uio2_robot.model.patches.ConvStem) for from-scratch training. Prompt images and history
    # frames share the choice.
    patch_stem: str = "linear"
    # Training-only heads that score every observation patch as "the k-th demonstrated point"
    # (the pointing objective, mixture.point_weight); 0 = none. Not exported.
    point_heads: int = 0
    # Prefix encoding: prompt tokens and prompt-image latents attend only to the prompt, while
    # the observation, history and proprio attend to everything. The prompt's encoding then
    # does not depend on the observation, so a controller encodes it once per episode and each
    # step encodes only the new tokens against the cached prompt keys/values
    # (UIO2Model.encode_prompt / encode_step): roughly half the encoder work of a step.
    prompt_prefix: bool = False
    rope_base: float = 10000.0
    scaled_cosine_resampler: bool = True
    # Id of ``<img_0>``; ``<img_k>`` is ``image_marker_id + k``. Marker tokens get the same learned
    # prompt-image index embedding as image k's latents, which ties a word to its picture.
    # None: no marker tokens in the vocabulary (the index embedding then only tags the latents).
    image_marker_id: int | None = None
    norm_eps: float = 1e-6
    logit_scale_init: float = math.log(10.0)  # scaled cosine attention (resampler)
    logit_scale_max: float = math.log(100.0)
    # Prompt images that are whole scenes from the policy camera (a goal layout, "the object in
    # {scene}") also enter the prompt as full-resolution patch tokens: the observation's patch
    # embedding and 2D RoPE grid, tagged as prompt image k. A scene squeezed into n_latents
    # resampler tokens cannot say where an object stands to the centimetre; on the same grid
    # as the observation, "the same place" is a zero RoPE offset. 0 = no such slots.
    max_prompt_scenes: int = 0

    def __post_init__(self) -> None:
        positive = [
            "d_model",
            "n_heads",
            "head_dim",
            "mlp_hidden",
            "n_enc_layers",
            "n_dec_layers",
            "vocab_size",
            "image_size",
            "patch_size",
            "prompt_image_size",
            "n_views",
            "n_latents",
            "resampler_dim",
            "resampler_heads",
            "resampler_mlp",
            "resampler_layers",
            "proprio_dim",
            "max_prompt_tokens",
            "max_dec_len",
        ]
        for name in positive:
            _check_int(self, name, minimum=1)
        for name in ("max_history", "max_prompt_images", "point_heads", "max_prompt_scenes"):
            _check_int(self, name, minimum=0)
        if self.max_prompt_scenes > self.max_prompt_images:
            raise ValueError(
                f"ModelConfig.max_prompt_scenes={self.max_prompt_scenes} exceeds "
                f"max_prompt_images={self.max_prompt_images}: a scene repeats a prompt image"
            )
        if self.head_dim % 4:
            raise ValueError(
                f"ModelConfig.head_dim must be a multiple of 4 (2D RoPE rotates pairs in each "
                f"half of a head), got {self.head_dim}"
            )
        if self.patch_stem not in ("linear", "conv"):
            raise ValueError(
                f"ModelConfig.patch_stem must be 'linear' or 'conv', got {self.patch_stem!r}"
            )
        if self.image_width is not None:
            _check_int(self, "image_width", minimum=1)
        for name in ("image_size", "image_width", "prompt_image_size"):
            if getattr(self, name) is not None and getattr(self, name) % self.patch_size:
                raise ValueError(
                    f"ModelConfig.{name}={getattr(self, name)} must be a multiple of "
                    f"patch_size={self.patch_size}"
                )
        if self.resampler_dim % self.resampler_heads:
            raise ValueError(
                f"ModelConfig.resampler_dim={self.resampler_dim} must be divisible by "
                f"resampler_heads={self.resampler_heads}"
            )
        if self.image_marker_id is not None:
            _check_int(self, "image_marker_id", minimum=0)
            last = self.image_marker_id + self.max_prompt_images
            if last > self.vocab_size:
                raise ValueError(
                    f"image markers <img_0..{self.max_prompt_images - 1}> start at id "
                    f"{self.image_marker_id} and end past vocab_size={self.vocab_size}"
                )
        if self.rope_base <= 1.0:
            raise ValueError(f"ModelConfig.rope_base must be > 1, got {self.rope_base}")
        if self.logit_scale_init > self.logit_scale_max:
            raise ValueError(
                f"logit_scale_init={self.logit_scale_init} exceeds logit_scale_max="
                f"{self.logit_scale_max}"
            )

    # ---- derived sizes ------------------------------------------------------------------------
    @property
    def image_hw(self) -> tuple[int, int]:
        """(H, W) of the observation images."""
        return self.image_size, self.image_size if self.image_width is None else self.image_width

    @property
    def grid_hw(self) -> tuple[int, int]:
        """(rows, columns) of an observation view's patch grid."""
        h, w = self.image_hw
        return h // self.patch_size, w // self.patch_size

    @property
    def n_patches(self) -> int:
        """Observation patches per view (Np)."""
        rows, cols = self.grid_hw
        return rows * cols

    @property
    def n_prompt_patches(self) -> int:
        return (self.prompt_image_size // self.patch_size) ** 2

    @property
    def patch_dim(self) -> int:
        """Pixels per patch: patch_size * patch_size * 3."""
        return self.patch_size * self.patch_size * 3

    @property
    def prompt_seq_len(self) -> int:
        """The prompt part of the encoder sequence: prompt tokens + prompt-image latents +
        prompt-scene patches."""
        return (
            self.max_prompt_tokens
            + self.max_prompt_images * self.n_latents
            + self.max_prompt_scenes * self.n_patches
        )

    @property
    def encoder_seq_len(self) -> int:
        """S: the prompt part + obs patches + history latents + proprio."""
        return (
            self.prompt_seq_len
            + self.n_views * self.n_patches
            + self.max_history * self.n_views * self.n_latents
            + 1
        )

    # ---- serialisation ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (all fields are ints, floats, bools, str or None)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        """Inverse of ``to_dict``; unknown keys are an error (a typo must not pass silently)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(
                f"unknown ModelConfig keys {unknown}; expected some of {sorted(known)}"
            )
        return cls(**d)

    def replace(self, **overrides: Any) -> ModelConfig:
        """A copy with some fields changed (validated like a fresh config)."""
        unknown = sorted(set(overrides) - {f.name for f in fields(self)})
        if unknown:
            raise ValueError(f"unknown ModelConfig fields {unknown}")
        return dataclasses.replace(self, **overrides)


def _check_int(cfg: ModelConfig, name: str, minimum: int) -> None:
    value = getattr(cfg, name)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"ModelConfig.{name} must be an int >= {minimum}, got {value!r}")


_BYTE = {"vocab_size": BYTE_VOCAB_SIZE, "image_marker_id": BYTE_IMAGE_MARKER_ID}
_UIO2 = {"vocab_size": UIO2_VOCAB_SIZE, "image_marker_id": UIO2_IMAGE_MARKER_ID}

# fmt: off
PRESETS: dict[str, ModelConfig] = {
    # Tests: a few hundred K parameters, runs in milliseconds.
    "tiny": ModelConfig(
        name="tiny", d_model=64, n_heads=4, head_dim=16, mlp_hidden=128,
        n_enc_layers=2, n_dec_layers=2, image_size=32, patch_size=8, prompt_image_size=16,
        n_views=2, max_history=2, n_latents=4, resampler_dim=32, resampler_heads=2,
        resampler_mlp=64, max_prompt_tokens=16, max_prompt_images=2, max_dec_len=16, **_BYTE,
    ),
    # The default CPU policy (the shipped one), sized for a short control step on two cores
    # and for training from scratch on a CPU. Observations are 64 x 128 (H x W): the top view
    # cropped to the 0.5 m x 1 m workspace (objects ~8-10 px), cut into 16 px patches by a conv
    # stem (4 x 8 = 32 tokens per view; the stem keeps sub-patch detail that a linear 16 px
    # patchifier trained from scratch would lose). 96 prompt tokens hold the suite's longest
    # byte-level prompt (88) and 4 prompt images its most (3). No history: a primitive-mode
    # step is a whole pick-and-place; set max_history for delta mode. Width 192 rather than
    # 256: the encoder is compute-bound on CPU. The trainer sets n_views from its cameras.
    "small": ModelConfig(
        name="small", d_model=192, n_heads=3, head_dim=64, mlp_hidden=512,
        n_enc_layers=4, n_dec_layers=4, image_size=64, image_width=128, patch_size=16,
        patch_stem="conv", prompt_image_size=64, n_views=2, max_history=0, n_latents=8,
        resampler_dim=128, resampler_heads=4, resampler_mlp=256, max_prompt_tokens=96,
        max_prompt_images=4, max_dec_len=32, **_BYTE,
    ),
    # A GPU fine-tuning size between small and the paper's models.
    "base": ModelConfig(
        name="base", d_model=512, n_heads=8, head_dim=64, mlp_hidden=1408,
        n_enc_layers=8, n_dec_layers=8, image_size=128, patch_size=16, prompt_image_size=64,
        n_views=2, max_history=4, n_latents=16, resampler_dim=256, resampler_heads=4,
        resampler_mlp=768, max_prompt_tokens=128, max_prompt_images=8, max_dec_len=64, **_BYTE,
    ),
    # The paper's dimensions (REFERENCE.md section 1): 384px images in 16px patches, 256px
    # history / prompt images, 32 latents per frame.
    "large": ModelConfig(
        name="large", d_model=1024, n_heads=16, head_dim=64, mlp_hidden=2816,
        n_enc_layers=24, n_dec_layers=24, image_size=384, patch_size=16, prompt_image_size=256,
        n_views=2, max_history=4, n_latents=32, resampler_dim=768, resampler_heads=12,
        resampler_mlp=2048, max_prompt_tokens=256, max_prompt_images=8, max_dec_len=512, **_UIO2,
    ),
    "xl": ModelConfig(
        name="xl", d_model=2048, n_heads=16, head_dim=128, mlp_hidden=5120,
        n_enc_layers=24, n_dec_layers=24, image_size=384, patch_size=16, prompt_image_size=256,
        n_views=2, max_history=4, n_latents=32, resampler_dim=1024, resampler_heads=16,
        resampler_mlp=4096, max_prompt_tokens=256, max_prompt_images=8, max_dec_len=512, **_UIO2,
    ),
    "xxl": ModelConfig(
        name="xxl", d_model=3072, n_heads=24, head_dim=128, mlp_hidden=8192,
        n_enc_layers=24, n_dec_layers=24, image_size=384, patch_size=16, prompt_image_size=256,
        n_views=2, max_history=4, n_latents=32, resampler_dim=1024, resampler_heads=16,
        resampler_mlp=4096, max_prompt_tokens=256, max_prompt_images=8, max_dec_len=512, **_UIO2,
    ),
}
# fmt: on


def get_config(name: str, **overrides: Any) -> ModelConfig:
    """A preset by name, with optional field overrides (e.g. ``vocab_size=vocab.size``)."""
    if name not in PRESETS:
        raise ValueError(f"unknown model preset {name!r}; expected one of {sorted(PRESETS)}")
    return PRESETS[name].replace(**overrides)
