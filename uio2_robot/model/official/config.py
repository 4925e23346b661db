"""The configuration of an official Unified-IO 2 model, read from a released ``config.json``.

The released checkpoints (allenai/uio2-large, -xl, -xxl) ship a ``config.json`` that is the
official ``Config.to_dict()``: ``t5_config`` (the transformer), ``image_vit_cfg`` (the CLIP
ViT), ``image_history_cfg`` (the perceiver resampler) and more. ``OfficialConfig`` keeps the
fields this package runs (text, image and image-history inputs, text targets) and refuses a
release whose architecture differs from what ``OfficialUIO2`` implements, naming the key: a
silently different model would produce wrong actions with no error.

The transformer core (encoder and decoder layers, token table) is the project's own
``ModelConfig`` network, so ``core_config`` maps the shared sizes onto a ``ModelConfig``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields
from typing import Any

from uio2_robot.model.config import ModelConfig

# What the released config.json must say for the parts this package implements.
_REQUIRED_T5 = {
    "mlp_activations": ["silu", "linear"],
    "qk_norm": True,
    "logits_via_embedding": True,
    "decoder_xattention_internval": 1,  # (sic) the official spelling
    "text_pos_emb": "llama_rope",
    "image_pos_emb": "llama_rope",
    "image_history_pos_emb": "llama_rope",
}
_REQUIRED_RESAMPLER = {"resampler_type": "perceiver", "mlp_activations": ["gelu"]}


@dataclass(frozen=True)
class OfficialConfig:
    """Sizes of an official UIO2 model (text + image + image history in, text out)."""

    vocab_size: int
    d_model: int
    n_heads: int
    head_dim: int
    mlp_hidden: int
    n_enc_layers: int
    n_dec_layers: int
    max_text_len: int  # encoder and decoder text positions (512 released)
    image_size: tuple[int, int]  # ViT input image (H, W): 384 x 384 released
    history_size: tuple[int, int]  # history frames (H, W): 256 x 256 released
    patch_size: int  # 16
    # 2D RoPE positions of input-image patches are scaled by this: the official
    # sqrt(decoder_max_image_length / encoder_max_image_length) = sqrt(1024 / 576) = 4/3.
    image_rope_scale: float
    vit_dim: int
    vit_heads: int
    vit_mlp: int
    vit_layers: int  # blocks kept (11 of CLIP ViT-B/16's 12 released)
    vit_num_pos: int  # learned positions incl. CLS (197 = 14 x 14 + 1 released)
    resampler_dim: int
    resampler_heads: int
    resampler_mlp: int
    resampler_layers: int
    n_latents: int  # latents per history frame (32 released)
    max_frames: int  # history frames with a RoPE position (4 released)
    resampler_scaled_cosine: bool  # xxl: scaled cosine attention; large/xl: QK-norm
    norm_eps: float = 1e-6
    rope_base: float = 10000.0
    name: str = "official"

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "int" and (isinstance(value, bool) or not isinstance(value, int)):
                raise ValueError(f"OfficialConfig.{f.name} must be an int, got {value!r}")
            if f.type == "int" and value < 1:
                raise ValueError(f"OfficialConfig.{f.name} must be >= 1, got {value}")
        if self.head_dim % 4:
            raise ValueError(
                f"OfficialConfig.head_dim must be a multiple of 4, got {self.head_dim}"
            )
        for name in ("image_size", "history_size"):
            size = getattr(self, name)
            if len(size) != 2 or any(s % self.patch_size for s in size):
                raise ValueError(
                    f"OfficialConfig.{name}={size} must be (H, W), multiples of "
                    f"patch_size={self.patch_size}"
                )
        if self.vit_dim % self.vit_heads or self.resampler_dim % self.resampler_heads:
            raise ValueError("ViT and resampler widths must be divisible by their head counts")
        grid = math.isqrt(self.vit_num_pos - 1)
        if grid * grid != self.vit_num_pos - 1:
            raise ValueError(
                f"OfficialConfig.vit_num_pos={self.vit_num_pos} must be a square grid + 1 (CLS)"
            )

    # ---- derived sizes ------------------------------------------------------------------------
    @property
    def image_grid(self) -> tuple[int, int]:
        return self.image_size[0] // self.patch_size, self.image_size[1] // self.patch_size

    @property
    def history_grid(self) -> tuple[int, int]:
        return self.history_size[0] // self.patch_size, self.history_size[1] // self.patch_size

    @property
    def patch_dim(self) -> int:
        return self.patch_size * self.patch_size * 3

    def core_config(self) -> ModelConfig:
        """The project ``ModelConfig`` of the transformer core (encoder and decoder layers,
        token table): the fields the layers read. Its image/resampler fields are placeholders
        that the official model does not use."""
        return ModelConfig(
            name=f"{self.name}-core",
            d_model=self.d_model,
            n_heads=self.n_heads,
            head_dim=self.head_dim,
            mlp_hidden=self.mlp_hidden,
            n_enc_layers=self.n_enc_layers,
            n_dec_layers=self.n_dec_layers,
            vocab_size=self.vocab_size,
            image_size=self.patch_size,
            patch_size=self.patch_size,
            prompt_image_size=self.patch_size,
            n_views=1,
            max_history=0,
            n_latents=self.n_latents,
            resampler_dim=self.resampler_dim,
            resampler_heads=self.resampler_heads,
            resampler_mlp=self.resampler_mlp,
            resampler_layers=self.resampler_layers,
            max_prompt_tokens=self.max_text_len,
            max_dec_len=self.max_text_len,
            norm_eps=self.norm_eps,
            rope_base=self.rope_base,
        )

    # ---- serialisation ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["image_size"], d["history_size"] = list(self.image_size), list(self.history_size)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OfficialConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown OfficialConfig keys {unknown}; expected {sorted(known)}")
        d = dict(d)
        for name in ("image_size", "history_size"):
            if name in d:
                d[name] = tuple(int(x) for x in d[name])
        return cls(**d)

    @classmethod
    def from_release(cls, release: dict[str, Any], name: str = "official") -> OfficialConfig:
        """From a released ``config.json`` (the official ``Config.to_dict()``). Raises a
        ValueError naming the first key whose value this package does not implement."""
        t5 = _section(release, "t5_config")
        vit = _section(release, "image_vit_cfg")
        hist = _section(release, "image_history_cfg")
        for key, want in _REQUIRED_T5.items():
            _expect(t5, "t5_config", key, want)
        for key, want in _REQUIRED_RESAMPLER.items():
            _expect(hist, "image_history_cfg", key, want)
        for key in ("use_image_vit", "use_image_history_vit"):
            if release.get(key) is not True:
                raise ValueError(f"config.json: {key}={release.get(key)!r}; expected true")
        inputs = list(release.get("input_modalities", []))
        if inputs[:3] != ["text", "image", "image_history"]:
            raise ValueError(
                f"config.json: input_modalities={inputs}; expected it to start with "
                "['text', 'image', 'image_history'] (the encoder sequence order)"
            )
        if "text" not in release.get("target_modalities", []):
            raise ValueError("config.json: target_modalities has no 'text'")
        n_layers = int(hist["num_layers"])
        if sorted(hist["xattention_index"]) != list(range(n_layers)):
            raise ValueError(
                f"config.json: image_history_cfg.xattention_index={hist['xattention_index']}; "
                f"expected every layer 0..{n_layers - 1} to be a cross-attention layer"
            )
        cosine, qk = bool(hist["xattn_scaled_cosine"]), bool(hist["xattn_qk_norm"])
        if cosine == qk:
            raise ValueError(
                "config.json: image_history_cfg needs exactly one of xattn_qk_norm (large, xl) "
                f"and xattn_scaled_cosine (xxl); got qk_norm={qk}, scaled_cosine={cosine}"
            )
        if int(vit["patch_size"]) != int(t5["image_vit_patch_size"]):
            raise ValueError(
                "config.json: image_vit_cfg.patch_size != t5_config.image_vit_patch_size"
            )
        enc_max = int(t5["encoder_max_text_length"])
        if enc_max != int(t5["decoder_max_text_length"]):
            raise ValueError("config.json: encoder and decoder max text lengths differ")
        return cls(
            vocab_size=int(t5["vocab_size"]),
            d_model=int(t5["emb_dim"]),
            n_heads=int(t5["num_heads"]),
            head_dim=int(t5["head_dim"]),
            mlp_hidden=int(t5["mlp_dim"]),
            n_enc_layers=int(t5["num_encoder_layers"]),
            n_dec_layers=int(t5["num_decoder_layers"]),
            max_text_len=enc_max,
            image_size=_pair(t5["default_image_vit_size"]),
            history_size=_pair(t5["default_image_history_vit_size"]),
            patch_size=int(t5["image_vit_patch_size"]),
            image_rope_scale=math.sqrt(
                int(t5["decoder_max_image_length"]) / int(t5["encoder_max_image_length"])
            ),
            vit_dim=int(vit["emb_dim"]),
            vit_heads=int(vit["num_heads"]),
            vit_mlp=int(vit["mlp_dim"]),
            vit_layers=int(vit["num_layers"]),
            vit_num_pos=int(vit["num_pos"]),
            resampler_dim=int(hist["emb_dim"]),
            resampler_heads=int(hist["num_heads"]),
            resampler_mlp=int(hist["mlp_dim"]),
            resampler_layers=n_layers,
            n_latents=int(hist["latents_size"]),
            max_frames=int(hist["max_frames"]),
            resampler_scaled_cosine=cosine,
            name=name,
        )


def _section(release: dict[str, Any], key: str) -> dict[str, Any]:
    value = release.get(key)
    if not isinstance(value, dict):
        raise ValueError(f"config.json has no '{key}' section; is it a released UIO2 config?")
    return value


def _expect(section: dict[str, Any], where: str, key: str, want: Any) -> None:
    got = section.get(key)
    if (list(got) if isinstance(got, list | tuple) else got) != want:
        raise ValueError(f"config.json: {where}.{key}={got!r}; this package implements {want!r}")


def _pair(value: Any) -> tuple[int, int]:
    h, w = (int(v) for v in value)
    return h, w


def _released(name: str, d: int, heads: int, mlp: int, r_dim: int, r_heads: int, r_mlp: int):
    return OfficialConfig(
        vocab_size=33280, d_model=d, n_heads=heads, head_dim=d // heads, mlp_hidden=mlp,
        n_enc_layers=24, n_dec_layers=24, max_text_len=512, image_size=(384, 384),
        history_size=(256, 256), patch_size=16, image_rope_scale=math.sqrt(1024 / 576),
        vit_dim=768, vit_heads=12, vit_mlp=3072, vit_layers=11, vit_num_pos=197,
        resampler_dim=r_dim, resampler_heads=r_heads, resampler_mlp=r_mlp, resampler_layers=2,
        n_latents=32, max_frames=8, resampler_scaled_cosine=name == "xxl", name=f"uio2-{name}",
    )  # fmt: skip


RELEASED: dict[str, OfficialConfig] = {
    "large": _released("large", 1024, 16, 2816, 768, 12, 2048),
    "xl": _released("xl", 2048, 16, 5120, 1024, 16, 4096),
    "xxl": _released("xxl", 3072, 24, 8192, 1024, 16, 4096),
}
"""The architectures of allenai/uio2-large, -xl and -xxl (REFERENCE.md section 1; checked
against the released state-dict manifest in tests/official): for sizing and benchmarks without
the release's config.json. A real import always reads the release's own config.json."""
