"""The UIO2 encoder-decoder: encoder over the multimodal sequence, decoder over unified tokens.

Training uses ``encode`` + ``decode`` (teacher forcing with optional packing masks). Inference
uses ``precompute_cross_kv`` once per control step and ``decode_step`` once per token: both are
pure tensor functions (explicit cache in, grown cache out, no Python branching on data), so the
ONNX export wraps them as they are.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor, nn

from uio2_robot.model.config import ModelConfig
from uio2_robot.model.embedder import EncoderEmbedder
from uio2_robot.model.inputs import EncoderInputs
from uio2_robot.model.layers import (
    CrossAttention,
    RMSNorm,
    SelfAttention,
    SwiGLU,
    attention_bias,
)
from uio2_robot.model.patches import patchify
from uio2_robot.model.resampler import ImageResampler
from uio2_robot.model.rope import RotaryEmbedding
from uio2_robot.model.sequence import EncoderOutput, group_slices

__all__ = ["EncoderOutput", "PromptCache", "UIO2Model"]


class PromptCache(NamedTuple):
    """A prompt encoded once per episode (``UIO2Model.encode_prompt``, prefix models only)."""

    keys: Tensor  # (n_enc_layers, B, H, Sp, Dh): the prompt's self-attention keys per layer
    values: Tensor  # (n_enc_layers, B, H, Sp, Dh)
    mask: Tensor  # (B, Sp) bool, True = real prompt position
    cross_k: Tensor  # (n_dec_layers, B, H, Sp, Dh): decoder cross-attention keys of the prompt
    cross_v: Tensor


class EncoderLayer(nn.Module):
    """Pre-norm self-attention + gated MLP."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.norm_attn = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.attn = SelfAttention(cfg.d_model, cfg.n_heads, cfg.head_dim, cfg.norm_eps)
        self.norm_mlp = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.mlp = SwiGLU(cfg.d_model, cfg.mlp_hidden)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, mask: Tensor) -> Tensor:
        x = x + self.attn(self.norm_attn(x), cos, sin, mask)
        return x + self.mlp(self.norm_mlp(x))

    def forward_kv(
        self,
        x: Tensor,  # (B, L, D)
        cos: Tensor,  # (B, 1, L, Dh)
        sin: Tensor,
        mask: Tensor,  # (B, 1, 1 | L, Lp + L) over [past keys; own keys]
        past_k: Tensor | None = None,  # (B, H, Lp, Dh) keys of an earlier (prefix) segment
        past_v: Tensor | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """The layer over x attending to ``past`` keys/values and its own: (x, own k, own v).

        Prefix encoding (``ModelConfig.prompt_prefix``) runs the prompt with no past and keeps
        its k, v; each step then runs only the new tokens with the prompt's as the past.
        """
        q, k, v = self.attn.qkv(self.norm_attn(x), cos, sin)
        keys = k if past_k is None else torch.cat([past_k, k], dim=2)
        values = v if past_v is None else torch.cat([past_v, v], dim=2)
        x = x + self.attn.output(q, keys, values, mask)
        return x + self.mlp(self.norm_mlp(x)), k, v


class DecoderLayer(nn.Module):
    """Pre-norm causal self-attention, cross-attention to the encoder, gated MLP."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        d, eps = cfg.d_model, cfg.norm_eps
        self.norm_self = RMSNorm(d, eps)
        self.self_attn = SelfAttention(d, cfg.n_heads, cfg.head_dim, eps)
        self.norm_cross = RMSNorm(d, eps)
        self.cross_attn = CrossAttention(d, cfg.n_heads, cfg.head_dim, eps)
        self.norm_mlp = RMSNorm(d, eps)
        self.mlp = SwiGLU(d, cfg.mlp_hidden)

    def forward(
        self,
        x: Tensor,  # (B, L, D)
        cos: Tensor,  # (B, 1, L, Dh) decoder positions
        sin: Tensor,
        self_mask: Tensor | None,  # (B, 1, L, Lc + L) or None (all allowed)
        cross_k: Tensor,  # (B, H, S, Dh), rotated by encoder positions
        cross_v: Tensor,
        cross_mask: Tensor,  # (B, 1, L|1, S) bool, or a float32 attention_bias
        past_k: Tensor | None = None,  # (B, H, Lc, Dh) cached self-attention keys
        past_v: Tensor | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Returns the new hidden states and the self-attention keys/values including the past."""
        h = self.norm_self(x)
        q, k, v = self.self_attn.qkv(h, cos, sin)
        if past_k is not None and past_v is not None:
            k = torch.cat([past_k, k], dim=2)
            v = torch.cat([past_v, v], dim=2)
        x = x + self.self_attn.output(q, k, v, self_mask)
        h = self.norm_cross(x)
        q = self.cross_attn.query(h, cos, sin)
        x = x + self.cross_attn.output(q, cross_k, cross_v, cross_mask)
        return x + self.mlp(self.norm_mlp(x)), k, v


def scene_match(scene_states: Tensor, query_states: Tensor) -> Tensor:
    """Scores (B, Np) of scene patch states (B, Np, D) against one query state per row (B, D):
    dot products over sqrt(D). The ONNX runtime computes the same in numpy from the states its
    graphs export (``uio2_robot.runtime.guidance``)."""
    return torch.einsum("bnd,bd->bn", scene_states, query_states) / math.sqrt(
        scene_states.shape[-1]
    )


class UIO2Model(nn.Module):
    """Unified-IO 2 as a robot policy network (see the package README for the data flow)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        if not isinstance(cfg, ModelConfig):
            raise ValueError(f"UIO2Model needs a ModelConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        self.token_embed = nn.Embedding(cfg.vocab_size, cfg.d_model)  # tied with the output head
        self.resampler = ImageResampler(
            patch_size=cfg.patch_size,
            max_grid=max(*cfg.image_hw, cfg.prompt_image_size) // cfg.patch_size,
            dim=cfg.resampler_dim,
            n_heads=cfg.resampler_heads,
            mlp_hidden=cfg.resampler_mlp,
            n_layers=cfg.resampler_layers,
            n_latents=cfg.n_latents,
            out_dim=cfg.d_model,
            patch_stem=cfg.patch_stem,
            scaled_cosine=cfg.scaled_cosine_resampler,
            logit_scale_init=cfg.logit_scale_init,
            logit_scale_max=cfg.logit_scale_max,
            eps=cfg.norm_eps,
        )
        self.embedder = EncoderEmbedder(cfg)
        self.rope = RotaryEmbedding(cfg.head_dim, cfg.rope_base)
        self.encoder_layers = nn.ModuleList([EncoderLayer(cfg) for _ in range(cfg.n_enc_layers)])
        self.encoder_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.decoder_layers = nn.ModuleList([DecoderLayer(cfg) for _ in range(cfg.n_dec_layers)])
        self.decoder_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.recon_head = nn.Linear(cfg.d_model, cfg.patch_dim)  # [R] objective, MAE-style
        # pointing objective: which observation patch holds demonstrated point k
        self.point_head = nn.Linear(cfg.d_model, cfg.point_heads) if cfg.point_heads else None
        self.logit_scale = 1.0 / math.sqrt(cfg.d_model)
        self._init_weights()

    def _init_weights(self) -> None:
        """Fan-in scaled normal init; residual output projections shrunk by 1/sqrt(2 * layers).

        The token table gets std 1 (T5): the tied head divides by sqrt(d_model), which keeps the
        initial logits at unit scale. Tag embeddings start small so content dominates.
        """
        depth = math.sqrt(2 * (self.cfg.n_enc_layers + self.cfg.n_dec_layers))
        for name, m in self.named_modules():
            if isinstance(m, nn.Linear):
                std = m.in_features**-0.5
                if name.endswith((".wo", ".w_out")):
                    std /= depth
                nn.init.normal_(m.weight, std=std)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Embedding):
                nn.init.normal_(m.weight, std=1.0 if m is self.token_embed else 0.02)

    # ---- encoder ------------------------------------------------------------------------------
    @staticmethod
    def group_slices(cfg: ModelConfig) -> dict[str, slice]:
        """Index range of each encoder group (``prompt_tokens``, ``prompt_images``,
        ``obs_patches``, ``history``, ``proprio``) in the encoder sequence."""
        return group_slices(cfg)

    def embed(self, inputs: EncoderInputs, obs_patch_mask: Tensor | None = None) -> EncoderOutput:
        """The encoder sequence before the transformer layers (hidden = token embeddings).

        obs_patch_mask (B, V, Np) bool: True replaces that observation patch by the learned
        mask embedding (the [R] objective).
        """
        cfg = self.cfg
        inputs.validate(cfg)
        if obs_patch_mask is not None:
            want = (inputs.batch_size, cfg.n_views, cfg.n_patches)
            if obs_patch_mask.dtype != torch.bool or tuple(obs_patch_mask.shape) != want:
                raise ValueError(
                    f"obs_patch_mask must be bool with shape {want}, got "
                    f"{obs_patch_mask.dtype} {tuple(obs_patch_mask.shape)}"
                )
        prompt = self.embed_prompt(
            inputs.tokens,
            inputs.token_mask,
            inputs.prompt_images,
            inputs.prompt_image_mask,
            inputs.scene_images,
            inputs.scene_image_mask,
            inputs.scene_image_index,
        )
        step = self.embed_step(
            inputs.obs_images,
            inputs.history_images,
            inputs.history_mask,
            inputs.proprio,
            obs_patch_mask,
        )
        return EncoderOutput(*(torch.cat([a, b], dim=1) for a, b in zip(prompt, step, strict=True)))

    def embed_prompt(
        self,
        tokens: Tensor,
        token_mask: Tensor,
        prompt_images: Tensor,
        prompt_image_mask: Tensor,
        scene_images: Tensor,
        scene_image_mask: Tensor,
        scene_image_index: Tensor,
    ) -> EncoderOutput:
        """The prompt part of the encoder sequence (B, cfg.prompt_seq_len, D), not validated
        (``embed`` validates a whole ``EncoderInputs``)."""
        dtype = self.token_embed.weight.dtype
        prompt_latents = self.resampler(prompt_images.to(dtype))  # (B, K, Q, D)
        return self.embedder.prompt_groups(
            tokens,
            token_mask,
            self.token_embed(tokens),
            prompt_latents,
            prompt_image_mask,
            scene_images,
            scene_image_mask,
            scene_image_index,
        )

    def embed_step(
        self,
        obs_images: Tensor,
        history_images: Tensor,
        history_mask: Tensor,
        proprio: Tensor,
        obs_patch_mask: Tensor | None = None,
    ) -> EncoderOutput:
        """The per-step part of the encoder sequence: observation patches, history, proprio."""
        dtype = self.token_embed.weight.dtype
        history = history_images.to(dtype).flatten(1, 2)  # (B, T*V, 3, H, W)
        history_latents = self.resampler(history)  # (B, T*V, Q, D)
        return self.embedder.step_groups(
            obs_images, history_latents, history_mask, proprio, obs_patch_mask
        )

    def encode_embedded(
        self,
        emb: EncoderOutput,
        attn_mask: Tensor | None = None,
        is_prompt: Tensor | None = None,
    ) -> EncoderOutput:
        """Run the encoder layers. attn_mask (B, S, S) bool is ANDed with the padding mask, e.g.
        to keep attention inside each example of a packed row.

        With ``cfg.prompt_prefix`` prompt positions may only attend to prompt positions;
        ``is_prompt`` (S,) bool says which they are (default: the static layout, which needs
        S = cfg.encoder_seq_len).
        """
        x, mask = emb.hidden, emb.mask
        full = mask.unsqueeze(1)  # (B, 1, S): a query may look at every real key
        if attn_mask is not None:
            _check_mask("attn_mask", attn_mask, (x.shape[0], x.shape[1], x.shape[1]))
            full = full & attn_mask
        if self.cfg.prompt_prefix:
            full = full & self.prefix_mask(x.shape[1], is_prompt, x.device)
        cos, sin = self.rope(emb.positions, emb.rope_2d)
        for layer in self.encoder_layers:
            x = layer(x, cos, sin, full.unsqueeze(1))
        return emb._replace(hidden=self.encoder_norm(x))

    def prefix_mask(
        self, seq_len: int, is_prompt: Tensor | None = None, device: torch.device | None = None
    ) -> Tensor:
        """(S, S) bool: query i may attend key j unless i is a prompt position and j is not."""
        if is_prompt is None:
            if seq_len != self.cfg.encoder_seq_len:
                raise ValueError(
                    f"prefix encoding of a {seq_len}-position sequence needs is_prompt (the "
                    f"static layout has {self.cfg.encoder_seq_len}); packed rows are not supported"
                )
            is_prompt = torch.arange(seq_len, device=device) < self.cfg.prompt_seq_len
        return ~(is_prompt.unsqueeze(1) & ~is_prompt.unsqueeze(0))

    def encode(self, inputs: EncoderInputs, obs_patch_mask: Tensor | None = None) -> EncoderOutput:
        return self.encode_embedded(self.embed(inputs, obs_patch_mask))

    def encode_prompt(self, emb: EncoderOutput) -> tuple[PromptCache, Tensor]:
        """Encode the prompt part alone (``embed_prompt``'s output, possibly with padding
        dropped): what each step needs from it (the cache) and its final (normed) encoder states
        (B, Sp, D), which scene-guided placement scores against (``scene_point_logits``). Needs
        ``cfg.prompt_prefix``: only then is the prompt's encoding independent of the
        observation."""
        if not self.cfg.prompt_prefix:
            raise ValueError(
                "encode_prompt needs a model trained with ModelConfig.prompt_prefix=True; this "
                "one lets the prompt attend to the observation, so it cannot be cached"
            )
        x = emb.hidden
        cos, sin = self.rope(emb.positions, emb.rope_2d)
        key_mask = emb.mask.unsqueeze(1).unsqueeze(1)  # (B, 1, 1, Sp)
        keys, values = [], []
        for layer in self.encoder_layers:
            x, k, v = layer.forward_kv(x, cos, sin, key_mask)
            keys.append(k)
            values.append(v)
        hidden = self.encoder_norm(x)
        cross_k, cross_v = self.precompute_cross_kv(hidden, emb.positions, emb.rope_2d)
        cache = PromptCache(torch.stack(keys), torch.stack(values), emb.mask, cross_k, cross_v)
        return cache, hidden

    def encode_step(
        self, prompt: PromptCache, emb: EncoderOutput
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Encode one step's tokens (``embed_step``'s output) against a cached prompt.

        Returns what the decoder reads, over [prompt; step] positions: cross_k, cross_v
        (n_dec_layers, B, H, Sp + Ss, Dh) and the key mask (B, Sp + Ss), equal (up to float
        summation order) to ``precompute_cross_kv`` of the full prefix-masked ``encode``; and
        the step's final (normed) encoder states (B, Ss, D), whose first ``n_patches`` are view
        0's observation patches (scene-guided placement reads them).
        """
        x = emb.hidden
        cos, sin = self.rope(emb.positions, emb.rope_2d)
        enc_mask = torch.cat([prompt.mask, emb.mask], dim=1)  # (B, Sp + Ss)
        # as a bias made once (every row has its own observation patches to attend to): in the
        # exported step encoder, one Add per layer instead of a mask, a Where and a NaN check
        key_mask = attention_bias(enc_mask[:, None, None, :])
        for i, layer in enumerate(self.encoder_layers):
            x, _, _ = layer.forward_kv(x, cos, sin, key_mask, prompt.keys[i], prompt.values[i])
        hidden = self.encoder_norm(x)
        cross_k, cross_v = self.precompute_cross_kv(hidden, emb.positions, emb.rope_2d)
        return (
            torch.cat([prompt.cross_k, cross_k], dim=3),
            torch.cat([prompt.cross_v, cross_v], dim=3),
            enc_mask,
            hidden,
        )

    def reconstruct_patches(self, enc: EncoderOutput) -> Tensor:
        """Predicted pixels of every observation patch: (B, V, Np, p*p*3)."""
        sl = group_slices(self.cfg)["obs_patches"]
        out = self.recon_head(enc.hidden[:, sl])  # (B, V*Np, p*p*3)
        return out.unflatten(1, (self.cfg.n_views, self.cfg.n_patches))

    def point_logits(self, enc: EncoderOutput) -> Tensor:
        """Scores of every observation patch (all views, view-major) for each pointing head:
        (B, point_heads, V*Np)."""
        if self.point_head is None:
            raise ValueError("this model has no pointing heads (ModelConfig.point_heads = 0)")
        sl = group_slices(self.cfg)["obs_patches"]
        return self.point_head(enc.hidden[:, sl]).transpose(1, 2)

    def scene_point_logits(self, enc: EncoderOutput, query_patches: Tensor) -> Tensor:
        """Scores of the first prompt scene's patches against one observation patch per row:
        (B, Np), the dot product of final encoder states over sqrt(d_model).

        Training asks the observation patch of the demonstrated pick point to score highest the
        scene patch of the place point (``MixtureConfig.scene_point_weight``): in a goal scene
        (rearrange) that is the same object at its goal, in a layout scene the container. A
        per-patch head cannot say this under prefix encoding, where scene tokens never see the
        observation; the picked patch can, so the binding "this object -> that spot in the goal
        image" is put on the observation side, where the decoder reads it. No weights.
        ``query_patches`` (B,) index view 0's patches (the scene camera's view)."""
        if not self.cfg.max_prompt_scenes:
            raise ValueError("this model has no prompt scenes (ModelConfig.max_prompt_scenes = 0)")
        n = self.cfg.n_patches
        if query_patches.shape != enc.hidden.shape[:1] or not bool(
            ((query_patches >= 0) & (query_patches < n)).all()
        ):
            raise ValueError(
                f"query_patches must be (B={enc.hidden.shape[0]},) indices into view 0's {n} "
                f"patches, got shape {tuple(query_patches.shape)}"
            )
        sl = group_slices(self.cfg)
        scene = enc.hidden[:, sl["prompt_scenes"].start : sl["prompt_scenes"].start + n]
        rows = torch.arange(enc.hidden.shape[0], device=enc.hidden.device)
        query = enc.hidden[rows, sl["obs_patches"].start + query_patches]  # (B, D)
        return scene_match(scene, query)

    def obs_patch_targets(self, inputs: EncoderInputs) -> Tensor:
        """The observation pixels in the reconstruction layout: (B, V, Np, p*p*3)."""
        return patchify(inputs.obs_images, self.cfg.patch_size)

    # ---- decoder ------------------------------------------------------------------------------
    def precompute_cross_kv(
        self, enc_hidden: Tensor, enc_positions: Tensor, enc_rope_2d: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Cross-attention keys and values of every decoder layer, rotated by the encoder
        positions: two (n_dec_layers, B, H, S, Dh). Computed once per control step."""
        cos, sin = self.rope(enc_positions, enc_rope_2d)
        ks, vs = [], []
        for layer in self.decoder_layers:
            k, v = layer.cross_attn.key_value(enc_hidden, cos, sin)
            ks.append(k)
            vs.append(v)
        return torch.stack(ks), torch.stack(vs)

    def _logits(self, h: Tensor, ids: tuple[int, int] | None = None) -> Tensor:
        """Tied output head: (.., D) -> (.., V) = norm(h) @ E^T / sqrt(d_model); with ``ids``
        = (lo, hi) only the logits of ids lo..hi-1 (.., hi - lo), for decoding that can emit
        nothing else (the action bins: a ninth of the vocabulary, and of the head's weights)."""
        table = self.token_embed.weight if ids is None else self.token_embed.weight[ids[0] : ids[1]]
        return torch.matmul(self.decoder_norm(h), table.t()) * self.logit_scale

    def decode(
        self,
        dec_tokens: Tensor,
        enc: EncoderOutput,
        dec_positions: Tensor | None = None,
        self_attn_mask: Tensor | None = None,
        cross_attn_mask: Tensor | None = None,
    ) -> Tensor:
        """Teacher-forced logits (B, Ld, V) for decoder inputs (B, Ld) int64.

        dec_positions (B, Ld) default 0..Ld-1 (packing restarts them per example);
        self_attn_mask (B, Ld, Ld) is ANDed with the causal mask; cross_attn_mask (B, Ld, S)
        is ANDed with enc.mask.
        """
        b, ld = self._check_dec_tokens(dec_tokens)
        s = enc.hidden.shape[1]
        if dec_positions is None:
            dec_positions = torch.arange(ld, device=dec_tokens.device).unsqueeze(0).expand(b, ld)
        elif dec_positions.dtype != torch.int64 or tuple(dec_positions.shape) != (b, ld):
            raise ValueError(
                f"dec_positions must be int64 with shape {(b, ld)}, got "
                f"{dec_positions.dtype} {tuple(dec_positions.shape)}"
            )
        causal = torch.ones(ld, ld, dtype=torch.bool, device=dec_tokens.device).tril()
        self_mask = causal.unsqueeze(0)  # (1 | B, Ld, Ld)
        if self_attn_mask is not None:
            _check_mask("self_attn_mask", self_attn_mask, (b, ld, ld))
            self_mask = self_mask & self_attn_mask
        cross_mask = enc.mask.unsqueeze(1)  # (B, 1 | Ld, S)
        if cross_attn_mask is not None:
            _check_mask("cross_attn_mask", cross_attn_mask, (b, ld, s))
            cross_mask = cross_mask & cross_attn_mask
        cross_k, cross_v = self.precompute_cross_kv(enc.hidden, enc.positions, enc.rope_2d)
        cos, sin = self.rope.forward_1d(dec_positions)
        x = self.token_embed(dec_tokens)
        for i, layer in enumerate(self.decoder_layers):
            x, _, _ = layer(
                x, cos, sin, self_mask.unsqueeze(1), cross_k[i], cross_v[i], cross_mask.unsqueeze(1)
            )
        return self._logits(x)

    def forward(
        self,
        inputs: EncoderInputs,
        dec_tokens: Tensor,
        obs_patch_mask: Tensor | None = None,
        enc_attn_mask: Tensor | None = None,
        dec_positions: Tensor | None = None,
        self_attn_mask: Tensor | None = None,
        cross_attn_mask: Tensor | None = None,
    ) -> Tensor:
        """Encode then teacher-force decode: logits (B, Ld, V)."""
        enc = self.encode_embedded(self.embed(inputs, obs_patch_mask), enc_attn_mask)
        return self.decode(dec_tokens, enc, dec_positions, self_attn_mask, cross_attn_mask)

    def decode_step(
        self,
        token: Tensor,  # (B, 1) int64
        position: Tensor,  # (B,) int64
        self_k: Tensor,  # (n_dec_layers, B, H, Lc, Dh); Lc = 0 at the first step
        self_v: Tensor,
        cross_k: Tensor,  # (n_dec_layers, B, H, S, Dh) from precompute_cross_kv
        cross_v: Tensor,
        enc_mask: Tensor,  # (B, S) bool
    ) -> tuple[Tensor, Tensor, Tensor]:
        """One decoder token with a KV cache: (logits (B, V), self_k, self_v grown to Lc + 1).

        The cache is only ever appended to (no in-place writes), so the exported graph is a
        pure function with a dynamic cache length.
        """
        cos, sin = self.rope.forward_1d(position.unsqueeze(1))  # (B, 1, 1, Dh)
        past = list(zip(self_k.unbind(0), self_v.unbind(0), strict=True))
        cross_bias = attention_bias(enc_mask[:, None, None, :])
        logits, grown = self._decode_token(token, cos, sin, past, cross_k, cross_v, cross_bias)
        return logits, torch.stack([k for k, _ in grown]), torch.stack([v for _, v in grown])

    def _decode_token(
        self,
        token: Tensor,  # (B, 1) int64
        cos: Tensor,  # (B|1, 1, 1, Dh) rotation of this token's position
        sin: Tensor,
        caches: Sequence[tuple[Tensor | None, Tensor | None]],  # per layer (B, H, Lc, Dh) k, v;
        # (None, None) before the first token
        cross_k: Tensor,  # (n_dec_layers, B, H, S, Dh)
        cross_v: Tensor,
        cross_bias: Tensor,  # (B, 1, 1, S) float32 ``attention_bias`` of the encoder mask
        ids: tuple[int, int] | None = None,  # logits of these ids only (``_logits``)
    ) -> tuple[Tensor, list[tuple[Tensor | None, Tensor | None]]]:
        """One token through the decoder with per-layer caches: (logits (B, V), caches + 1).

        Per-layer lists rather than one stacked cache, so ``greedy_decode`` does not stack and
        split the cache between tokens (in its exported graph that is ~10 nodes per token).
        """
        x = self.token_embed(token)  # (B, 1, D)
        grown: list[tuple[Tensor | None, Tensor | None]] = []
        for i, layer in enumerate(self.decoder_layers):
            past_k, past_v = caches[i]
            x, k, v = layer(x, cos, sin, None, cross_k[i], cross_v[i], cross_bias, past_k, past_v)
            grown.append((k, v))
        return self._logits(x[:, 0], ids), grown

    def empty_cache(self, batch_size: int, device: torch.device | str | None = None) -> Tensor:
        """A zero-length self-attention cache (n_dec_layers, B, H, 0, Dh) for the first step."""
        cfg = self.cfg
        shape = (cfg.n_dec_layers, batch_size, cfg.n_heads, 0, cfg.head_dim)
        return torch.zeros(shape, dtype=self.token_embed.weight.dtype, device=device)

    def greedy_decode(
        self,
        cross_k: Tensor,  # (n_dec_layers, B, H, S, Dh) from precompute_cross_kv / encode_step
        cross_v: Tensor,
        enc_mask: Tensor,  # (B, S) bool
        allowed: Tensor,  # (V,) bool: the ids decoding may emit
        n_tokens: int,
        bos_id: int,
        ids: tuple[int, int] | None = None,
        guide: tuple[Tensor, Tensor] | None = None,
        guide_dims: tuple[tuple[int, int], tuple[int, int]] | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Greedy constrained decoding with the KV cache: tokens (B, n) int64 and the raw
        (unmasked) logits (B, n, V) of every step.

        A pure tensor function with a fixed number of steps, so it exports as one unrolled graph
        (a bundle's ``decoder_greedy``): a control step then makes one decoder call instead of
        one per token. ``generate`` is the general entry point (sampling, per-position
        constraints, validation); this is its greedy cached path with the loop fused.

        ``ids`` = (lo, hi): the caller promises ``allowed`` permits nothing outside lo..hi-1
        (the action bins), so only those logits are computed: (B, n, hi - lo), token ids still
        global. Identical tokens, a ninth of the output head's work.

        ``guide`` = (pick_table (K, K) int64, rows (B, R, 2, K) bool), K = hi - lo (``ids``
        required): scene-guided placement inside the loop (``uio2_robot.runtime.guidance``, which
        names ``guide_dims``: the pick's and the place's token positions). The tokens at
        ``guide_dims[0]`` (the pick x0, y0, less lo) index pick_table, giving a row r; the tokens
        at ``guide_dims[1]`` (the place x1, y1) may then only be ids (less lo) that
        rows[b, r, 0] and rows[b, r, 1] allow, on top of ``allowed``.
        """
        b, device = enc_mask.shape[0], enc_mask.device
        lo = 0 if ids is None else ids[0]
        allowed = allowed if ids is None else allowed[ids[0] : ids[1]]
        if guide is not None and (ids is None or guide_dims is None):
            raise ValueError(
                "guide indexes the ids lo..hi-1 at guide_dims: pass ids and guide_dims"
            )
        (pick_x, pick_y), place = guide_dims or ((0, 0), (-1, -1))
        token = torch.full((b, 1), bos_id, dtype=torch.int64, device=device)
        caches: list[tuple[Tensor | None, Tensor | None]] = [(None, None)] * self.cfg.n_dec_layers
        # every row is at the same position: one rotation for the batch, which the exported
        # graph folds into constants
        cos_all, sin_all = self.rope.forward_1d(torch.arange(n_tokens, device=device)[None])
        cross_bias = attention_bias(enc_mask[:, None, None, :])  # once for every token
        tokens, logits_all = [], []
        for i in range(n_tokens):
            cos, sin = cos_all[:, :, i : i + 1], sin_all[:, :, i : i + 1]  # (1, 1, 1, Dh)
            logits, caches = self._decode_token(
                token, cos, sin, caches, cross_k, cross_v, cross_bias, ids
            )
            logits_all.append(logits)
            mask = allowed
            if guide is not None and i in place:
                pick_table, rows = guide
                row = pick_table[tokens[pick_x][:, 0] - lo, tokens[pick_y][:, 0] - lo]  # (B,)
                index = row.view(b, 1, 1, 1).expand(b, 1, 2, rows.shape[-1])
                mask = allowed & rows.gather(1, index)[:, 0, place.index(i)]  # (B, K)
            token = logits.masked_fill(~mask, float("-inf")).argmax(-1, keepdim=True) + lo
            tokens.append(token)
        return torch.cat(tokens, dim=1), torch.stack(logits_all, dim=1)

    @torch.no_grad()
    def generate(
        self,
        inputs: EncoderInputs,
        n_tokens: int,
        allowed: Tensor | None = None,
        bos_id: int | None = None,
        greedy: bool = True,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        use_cache: bool = True,
        prompt: PromptCache | None = None,
    ) -> Tensor:
        """Decode n_tokens after ``bos_id``: (B, n_tokens) int64.

        allowed: (V,) or (n_tokens, V) bool; disallowed ids get -inf logits so they can never be
        emitted (constrained decoding to the action bins). Greedy takes the argmax; otherwise
        sample from softmax(logits / temperature) with ``generator``. ``prompt``: the episode's
        cached prompt (prefix models): only the step part of ``inputs`` is then encoded.
        """
        cfg = self.cfg
        if bos_id is None or not 0 <= int(bos_id) < cfg.vocab_size:
            raise ValueError(f"generate needs bos_id in [0, {cfg.vocab_size}), got {bos_id!r}")
        if not 1 <= n_tokens <= cfg.max_dec_len:
            raise ValueError(
                f"n_tokens must be in [1, max_dec_len={cfg.max_dec_len}], got {n_tokens}"
            )
        if not greedy and not temperature > 0:
            raise ValueError(f"temperature must be > 0 for sampling, got {temperature}")
        device = self.token_embed.weight.device
        allowed = _allowed_rows(allowed, n_tokens, cfg.vocab_size, device)  # (n_tokens, V) | None
        if prompt is not None:
            use_cache = True  # the cached prompt only feeds the KV-cached decoder
            step = self.embed_step(
                inputs.obs_images, inputs.history_images, inputs.history_mask, inputs.proprio
            )
            cross_k, cross_v, enc_mask, _ = self.encode_step(prompt, step)
        else:
            enc = self.encode(inputs)
            enc_mask = enc.mask
            if use_cache:
                cross_k, cross_v = self.precompute_cross_kv(enc.hidden, enc.positions, enc.rope_2d)
        b = enc_mask.shape[0]
        tokens = torch.full((b, 1), int(bos_id), dtype=torch.int64, device=device)
        if use_cache:
            self_k = self_v = self.empty_cache(b, device)
        for i in range(n_tokens):
            if use_cache:
                position = torch.full((b,), i, dtype=torch.int64, device=device)
                logits, self_k, self_v = self.decode_step(
                    tokens[:, -1:], position, self_k, self_v, cross_k, cross_v, enc_mask
                )
            else:
                logits = self.decode(tokens, enc)[:, -1]
            if allowed is not None:
                logits = logits.masked_fill(~allowed[i], float("-inf"))
            if greedy:
                nxt = logits.argmax(-1, keepdim=True)
            else:
                probs = torch.softmax(logits.float() / temperature, dim=-1)
                nxt = torch.multinomial(probs, 1, generator=generator)
            tokens = torch.cat([tokens, nxt], dim=1)
        return tokens[:, 1:]

    def _check_dec_tokens(self, dec_tokens: Tensor) -> tuple[int, int]:
        if not isinstance(dec_tokens, Tensor) or dec_tokens.dtype != torch.int64:
            raise ValueError(
                f"dec_tokens must be an int64 tensor, got {getattr(dec_tokens, 'dtype', type(dec_tokens))}"
            )
        if dec_tokens.dim() != 2:
            raise ValueError(f"dec_tokens must have shape (B, Ld), got {tuple(dec_tokens.shape)}")
        b, ld = dec_tokens.shape
        if ld > self.cfg.max_dec_len:
            raise ValueError(
                f"dec_tokens has length {ld}, more than max_dec_len={self.cfg.max_dec_len}"
            )
        return b, ld


def _check_mask(name: str, mask: Tensor, shape: tuple[int, ...]) -> None:
    if mask.dtype != torch.bool or tuple(mask.shape) != tuple(shape):
        raise ValueError(
            f"{name} must be bool with shape {tuple(shape)}, got {mask.dtype} {tuple(mask.shape)}"
        )


def _allowed_rows(
    allowed: Tensor | None, n_tokens: int, vocab_size: int, device: torch.device
) -> Tensor | None:
    """Normalise a constraint to (n_tokens, V) bool; every row must allow at least one id."""
    if allowed is None:
        return None
    if allowed.dtype != torch.bool:
        raise ValueError(f"allowed must be a bool tensor, got {allowed.dtype}")
    if tuple(allowed.shape) == (vocab_size,):
        allowed = allowed.unsqueeze(0).expand(n_tokens, vocab_size)
    if tuple(allowed.shape) != (n_tokens, vocab_size):
        raise ValueError(
            f"allowed must have shape ({vocab_size},) or ({n_tokens}, {vocab_size}), got "
            f"{tuple(allowed.shape)}"
        )
    empty = (~allowed.any(-1)).nonzero().flatten().tolist()
    if empty:
        raise ValueError(f"allowed permits no token at decoding positions {empty}")
    return allowed.to(device)
