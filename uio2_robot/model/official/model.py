"""``OfficialUIO2``: the released Unified-IO 2 network (text + image + image history -> text).

The transformer core is the project's own: ``EncoderLayer`` / ``DecoderLayer`` (RMS norm,
QK-norm attention with float32 logits, SwiGLU MLP, interleaved RoPE) match the official layers
once their keys are renamed and concatenated (``uio2_robot.official.keymap``). Around the core
this module adds what the release has and the project's presets do not:

- the CLIP ViT image encoder (``vit.CLIPVisionEncoder``) and the projection of its two-block
  features; history frames through the same ViT, ``pre_projection``, the official perceiver
  (``resampler.OfficialPerceiver``) and ``post_projection``;
- one learned modality embedding per input modality and for the decoder's text target (without
  the target one the logits are off by ~3);
- float 2D RoPE positions: input-image patches at (row, col) * 4/3, history latents at
  (frame, latent); text at its 1D index.

The encoder sequence is text, image patches, history latents (the official order). Inputs are
the official preprocessor's arrays (``OfficialInputs``), so a batch built by the official code
and one built by ``uio2_robot.tokenize.official`` run the same.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import NamedTuple

import torch
from torch import Tensor, nn

from uio2_robot.model.layers import RMSNorm, attention_bias
from uio2_robot.model.official.config import OfficialConfig
from uio2_robot.model.official.resampler import OfficialPerceiver
from uio2_robot.model.official.vit import CLIPVisionEncoder
from uio2_robot.model.rope import RotaryEmbedding
from uio2_robot.model.uio2 import DecoderLayer, EncoderLayer


@dataclass
class OfficialInputs:
    """One batch in the official layout. B batch, L text tokens, P image patches, T history
    frames, Ph patches per frame. Masks are 1 for real tokens/patches, 0 for padding."""

    text_tokens: Tensor  # (B, L) int
    text_mask: Tensor  # (B, L)
    text_pos: Tensor  # (B, L) int
    image: Tensor  # (B, P, patch_dim) float, CLIP-normalised
    image_mask: Tensor  # (B, P)
    image_pos: Tensor  # (B, P) int, row-major index into the image grid
    history: Tensor  # (B, T, Ph, patch_dim) float
    history_mask: Tensor  # (B, T, Ph)
    history_pos: Tensor  # (B, T, Ph) int

    OFFICIAL_KEYS = {  # field -> key in the official preprocessor's flattened batch
        "text_tokens": "inputs/text/tokens",
        "text_mask": "inputs/text/mask",
        "text_pos": "inputs/text/pos_ids",
        "image": "inputs/image/input",
        "image_mask": "inputs/image/mask",
        "image_pos": "inputs/image/pos_ids",
        "history": "inputs/image_history/input",
        "history_mask": "inputs/image_history/mask",
        "history_pos": "inputs/image_history/pos_ids",
    }

    @classmethod
    def from_official(cls, batch: Mapping[str, object]) -> OfficialInputs:
        """From a flattened official batch (``inputs/text/tokens`` ...; numpy or torch)."""
        missing = [key for key in cls.OFFICIAL_KEYS.values() if key not in batch]
        if missing:
            raise ValueError(f"official batch is missing {missing}; got {sorted(batch)}")
        return cls(**{f: torch.as_tensor(batch[k]) for f, k in cls.OFFICIAL_KEYS.items()})

    def as_tuple(self) -> tuple[Tensor, ...]:
        return tuple(getattr(self, f.name) for f in fields(self))

    def validate(self, cfg: OfficialConfig) -> None:
        """Raise a ValueError naming the first field with a wrong rank or size."""
        ranks = {"text_tokens": 2, "text_mask": 2, "text_pos": 2, "image": 3, "image_mask": 2,
                 "image_pos": 2, "history": 4, "history_mask": 3, "history_pos": 3}  # fmt: skip
        for name, rank in ranks.items():
            got = tuple(getattr(self, name).shape)
            if len(got) != rank:
                raise ValueError(f"OfficialInputs.{name} must have {rank} dims, got shape {got}")
        b, length = self.text_tokens.shape
        p, (t, ph) = self.image.shape[1], self.history.shape[1:3]
        want = {
            "text_mask": (b, length),
            "text_pos": (b, length),
            "image": (b, p, cfg.patch_dim),
            "image_mask": (b, p),
            "image_pos": (b, p),
            "history": (b, t, ph, cfg.patch_dim),
            "history_mask": (b, t, ph),
            "history_pos": (b, t, ph),
        }
        for name, shape in want.items():
            got = tuple(getattr(self, name).shape)
            if got != shape:
                raise ValueError(f"OfficialInputs.{name} has shape {got}, expected {shape}")
        n_img = cfg.image_grid[0] * cfg.image_grid[1]
        n_hist = cfg.history_grid[0] * cfg.history_grid[1]
        if p > n_img or ph > n_hist:
            raise ValueError(
                f"more patches than the grids hold: image {p} > {n_img} or history {ph} > {n_hist}"
            )
        if t > cfg.max_frames:
            raise ValueError(f"{t} history frames, the model has positions for {cfg.max_frames}")
        if self.text_tokens.numel():
            lo, hi = int(self.text_tokens.min()), int(self.text_tokens.max())
            if lo < 0 or hi >= cfg.vocab_size:
                raise ValueError(
                    f"text_tokens has ids in [{lo}, {hi}], expected [0, {cfg.vocab_size})"
                )


class OfficialEncoded(NamedTuple):
    """The encoder sequence: hidden (B, S, D), mask (B, S) bool, RoPE positions (B, S, 2)
    float and the 2D flag (B, S) bool (cross-attention rotates its keys by them)."""

    hidden: Tensor
    mask: Tensor
    positions: Tensor
    rope_2d: Tensor


class OfficialUIO2(nn.Module):
    """The released UIO2 model for text, image and image-history inputs, text outputs."""

    def __init__(self, cfg: OfficialConfig) -> None:
        super().__init__()
        if not isinstance(cfg, OfficialConfig):
            raise ValueError(f"OfficialUIO2 needs an OfficialConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        core = cfg.core_config()
        d = cfg.d_model
        self.token_embed = nn.Embedding(cfg.vocab_size, d)  # tied with the output head
        self.text_modality = nn.Parameter(torch.zeros(d))
        self.image_modality = nn.Parameter(torch.zeros(d))
        self.history_modality = nn.Parameter(torch.zeros(d))
        self.target_text_modality = nn.Parameter(torch.zeros(d))
        self.vit = CLIPVisionEncoder(
            cfg.patch_dim, cfg.vit_dim, cfg.vit_heads, cfg.vit_mlp, cfg.vit_layers, cfg.vit_num_pos
        )
        self.image_projection = nn.Linear(2 * cfg.vit_dim, d, bias=False)
        self.history_pre_projection = nn.Linear(cfg.vit_dim, cfg.resampler_dim, bias=False)
        self.resampler = OfficialPerceiver(
            cfg.resampler_dim,
            cfg.resampler_heads,
            cfg.resampler_mlp,
            cfg.resampler_layers,
            cfg.n_latents,
            cfg.resampler_scaled_cosine,
            cfg.norm_eps,
        )
        self.history_post_projection = nn.Linear(cfg.resampler_dim, d, bias=False)
        self.rope = RotaryEmbedding(cfg.head_dim, cfg.rope_base)
        self.encoder_layers = nn.ModuleList([EncoderLayer(core) for _ in range(cfg.n_enc_layers)])
        self.encoder_norm = RMSNorm(d, cfg.norm_eps)
        self.decoder_layers = nn.ModuleList([DecoderLayer(core) for _ in range(cfg.n_dec_layers)])
        self.decoder_norm = RMSNorm(d, cfg.norm_eps)
        self.logit_scale = 1.0 / math.sqrt(d)

    # ---- encoder inputs -----------------------------------------------------------------------
    def embed_text(self, inp: OfficialInputs) -> OfficialEncoded:
        x = self.token_embed(inp.text_tokens.long()) + self.text_modality
        pos = inp.text_pos.to(torch.float32)
        positions = torch.stack([pos, torch.zeros_like(pos)], dim=-1)
        return OfficialEncoded(x, inp.text_mask > 0, positions, torch.zeros_like(inp.text_mask > 0))

    def vit_image_features(self, inp: OfficialInputs) -> tuple[Tensor, Tensor]:
        """(last block, 2nd block) ViT features of the input image: two (B, P, vit_dim)."""
        return self.vit(inp.image, inp.image_mask, inp.image_pos, self.cfg.image_grid)

    def embed_image(self, inp: OfficialInputs) -> OfficialEncoded:
        last, second = self.vit_image_features(inp)
        x = self.image_projection(torch.cat([last, second], dim=-1)) + self.image_modality
        cols = self.cfg.image_grid[1]
        rows_f = torch.div(inp.image_pos, cols, rounding_mode="floor").to(torch.float32)
        cols_f = (inp.image_pos % cols).to(torch.float32)
        scale = self.cfg.image_rope_scale
        positions = torch.stack([rows_f * scale, cols_f * scale], dim=-1)  # (B, P, 2)
        mask = inp.image_mask > 0
        return OfficialEncoded(x, mask, positions, torch.ones_like(mask))

    def resample_history(self, inp: OfficialInputs) -> Tensor:
        """History frames -> latents (B, T, n_latents, resampler_dim -> d_model projected)."""
        b, t, p, _ = inp.history.shape
        frames = inp.history.reshape(b * t, p, -1)
        mask = inp.history_mask.reshape(b * t, p)
        features, _ = self.vit(
            frames, mask, inp.history_pos.reshape(b * t, p), self.cfg.history_grid
        )
        latents = self.resampler(self.history_pre_projection(features), mask)
        return self.history_post_projection(latents).reshape(b, t, self.cfg.n_latents, -1)

    def embed_history(self, inp: OfficialInputs) -> OfficialEncoded:
        b, t = inp.history.shape[:2]
        n = self.cfg.n_latents
        x = (self.resample_history(inp) + self.history_modality).reshape(b, t * n, -1)
        frame_ok = (inp.history_mask > 0).any(-1)  # (B, T)
        mask = frame_ok.unsqueeze(-1).expand(b, t, n).reshape(b, t * n)
        frame = torch.arange(t, dtype=torch.float32, device=x.device).repeat_interleave(n)
        latent = torch.arange(n, dtype=torch.float32, device=x.device).repeat(t)
        positions = torch.stack([frame, latent], dim=-1).expand(b, t * n, 2)
        return OfficialEncoded(x, mask, positions, torch.ones_like(mask))

    def embed(self, inp: OfficialInputs) -> OfficialEncoded:
        """The encoder's input sequence: text, image patches, history latents."""
        parts = [self.embed_text(inp), self.embed_image(inp), self.embed_history(inp)]
        return OfficialEncoded(*(torch.cat(list(p), dim=1) for p in zip(*parts, strict=True)))

    # ---- encoder / decoder --------------------------------------------------------------------
    def encode_embedded(self, emb: OfficialEncoded) -> OfficialEncoded:
        x = emb.hidden
        cos, sin = self.rope(emb.positions, emb.rope_2d)
        key_mask = emb.mask[:, None, None, :]
        for layer in self.encoder_layers:
            x = layer(x, cos, sin, key_mask)
        return emb._replace(hidden=self.encoder_norm(x))

    def encode(self, inp: OfficialInputs) -> OfficialEncoded:
        inp.validate(self.cfg)
        return self.encode_embedded(self.embed(inp))

    def cross_kv(self, enc: OfficialEncoded) -> tuple[Tensor, Tensor]:
        """Every decoder layer's cross-attention keys and values: two (n_dec, B, H, S, Dh)."""
        cos, sin = self.rope(enc.positions, enc.rope_2d)
        kv = [layer.cross_attn.key_value(enc.hidden, cos, sin) for layer in self.decoder_layers]
        return torch.stack([k for k, _ in kv]), torch.stack([v for _, v in kv])

    def embed_target(self, tokens: Tensor) -> Tensor:
        """Decoder input embeddings: token embedding + the target-text modality embedding."""
        return self.token_embed(tokens.long()) + self.target_text_modality

    def logits(self, hidden: Tensor) -> Tensor:
        """Tied output head: norm(h) @ E^T / sqrt(d_model)."""
        return (
            torch.matmul(self.decoder_norm(hidden), self.token_embed.weight.t()) * self.logit_scale
        )

    def decode_hidden(
        self, dec_tokens: Tensor, enc: OfficialEncoded, dec_mask: Tensor | None = None
    ) -> Tensor:
        """Teacher-forced decoder states before the final norm (B, Ld, D)."""
        b, ld = dec_tokens.shape
        causal = torch.ones(ld, ld, dtype=torch.bool, device=dec_tokens.device).tril()
        self_mask = causal.expand(b, ld, ld)
        if dec_mask is not None:
            self_mask = self_mask & (dec_mask > 0)[:, None, :]
        positions = torch.arange(ld, device=dec_tokens.device).expand(b, ld)
        cos, sin = self.rope.forward_1d(positions)
        cross_k, cross_v = self.cross_kv(enc)
        cross_mask = enc.mask[:, None, None, :]
        x = self.embed_target(dec_tokens)
        for i, layer in enumerate(self.decoder_layers):
            x, _, _ = layer(x, cos, sin, self_mask[:, None], cross_k[i], cross_v[i], cross_mask)
        return x

    def forward(
        self, inp: OfficialInputs, dec_tokens: Tensor, dec_mask: Tensor | None = None
    ) -> Tensor:
        """Teacher-forced logits (B, Ld, V)."""
        return self.logits(self.decode_hidden(dec_tokens, self.encode(inp), dec_mask))

    def decode_token(
        self,
        token: Tensor,  # (B, 1) int64
        position: Tensor,  # (B,) int64
        caches: Sequence[tuple[Tensor | None, Tensor | None]],  # per layer; (None, None) first
        cross_k: Tensor,  # (n_dec, B, H, S, Dh)
        cross_v: Tensor,
        cross_bias: Tensor,  # (B, 1, 1, S) ``attention_bias`` of the encoder mask
    ) -> tuple[Tensor, list[tuple[Tensor, Tensor]]]:
        """One target token through the decoder with per-layer KV caches: (logits (B, V),
        caches + 1). ``generate``'s loop and the exported decoder step both run this."""
        cos, sin = self.rope.forward_1d(position[:, None])
        x = self.embed_target(token)
        grown = []
        for layer, (pk, pv), ck, cv in zip(
            self.decoder_layers, caches, cross_k, cross_v, strict=True
        ):
            x, k, v = layer(x, cos, sin, None, ck, cv, cross_bias, pk, pv)
            grown.append((k, v))
        return self.logits(x[:, 0]), grown

    @torch.no_grad()
    def generate(
        self,
        inp: OfficialInputs,
        n_tokens: int,
        allowed: Tensor | None = None,
        bos_id: int = 0,
        eos_id: int | None = 1,
        constraint: Callable[[Tensor], Tensor] | None = None,
    ) -> Tensor:
        """Greedy decoding with a KV cache: (B, <= n_tokens) int64, stopping early once every
        row has emitted ``eos_id``. ``allowed`` (n_tokens, V) or (V,) bool constrains each step
        (disallowed ids get -inf); ``constraint(tokens so far (B, i))`` -> (B, V) bool does so
        from what was decoded (a grammar, e.g. UIO2's action text)."""
        enc = self.encode(inp)
        cross_k, cross_v = self.cross_kv(enc)
        cross_bias = attention_bias(enc.mask[:, None, None, :])
        b, device = enc.mask.shape[0], enc.mask.device
        if allowed is not None and allowed.dim() == 1:
            allowed = allowed.expand(n_tokens, -1)
        token = torch.full((b, 1), bos_id, dtype=torch.int64, device=device)
        caches: list[tuple[Tensor | None, Tensor | None]] = [(None, None)] * len(
            self.decoder_layers
        )
        out, done = [], torch.zeros(b, dtype=torch.bool, device=device)
        for i in range(n_tokens):
            position = torch.full((b,), i, device=device)
            logits, caches = self.decode_token(
                token, position, caches, cross_k, cross_v, cross_bias
            )
            if allowed is not None:
                logits = logits.masked_fill(~allowed[i].to(device), float("-inf"))
            if constraint is not None:
                so_far = torch.cat(out, dim=1) if out else token[:, :0]
                logits = logits.masked_fill(~constraint(so_far).to(device), float("-inf"))
            token = logits.argmax(-1, keepdim=True)
            out.append(token)
            if eos_id is not None:
                done = done | (token[:, 0] == eos_id)
                if bool(done.all()):
                    break
        return torch.cat(out, dim=1)


def official_on_meta(cfg: OfficialConfig) -> OfficialUIO2:
    """The model without memory for its weights: their shapes for key mapping, and a shell
    that ``assign_weights`` fills without a second copy."""
    with torch.device("meta"):
        return OfficialUIO2(cfg)


def assign_weights(model: OfficialUIO2, state: Mapping[str, Tensor]) -> OfficialUIO2:
    """Load ``state`` (every key, exact shapes) by assignment, then rebuild the non-persistent
    RoPE tables (still on meta for a shell from ``official_on_meta``). Eval mode."""
    model.load_state_dict(dict(state), strict=True, assign=True)
    model.rope = RotaryEmbedding(model.cfg.head_dim, model.cfg.rope_base)
    return model.eval()
