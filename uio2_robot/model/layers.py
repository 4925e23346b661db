"""Transformer building blocks: RMS norm, gated SiLU MLP, QK-normalised rotary attention.

These follow UIO2's stability recipe: pre-norm with a scale-only RMS norm, queries and keys
RMS-normalised per head before RoPE, and attention logits and softmax always in float32 (so a
bf16 model cannot overflow its logits). There is no dropout anywhere.
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from uio2_robot.model.rope import apply_rope, is_one


class RMSNorm(nn.Module):
    """T5-style RMS norm: x / rms(x) * weight, no mean subtraction and no bias."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        xf = x.to(torch.float32)
        # x / sqrt(.) rather than x * rsqrt(.): onnxruntime fuses this form into one
        # SimplifiedLayerNormalization kernel.
        xf = xf / torch.sqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return xf.to(x.dtype) * self.weight


class SwiGLU(nn.Module):
    """Gated SiLU MLP: w_out(silu(x W_gate) * x W_up), gate and up fused into one matmul."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.w_in = nn.Linear(dim, 2 * hidden, bias=False)  # [gate; up]
        self.w_out = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        gate, up = self.w_in(x).chunk(2, dim=-1)
        return self.w_out(F.silu(gate) * up)


def attention(
    q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, scale: float | Tensor
) -> Tensor:
    """Softmax attention computed in float32, whatever the dtype of q, k, v.

    q (B, H, Lq, Dh), k/v (B, H, Lk, Dh), mask broadcastable to (B, H, Lq, Lk): bool (True = may
    attend), a float32 additive bias (``attention_bias``) or None; ``scale`` a float or a tensor
    broadcastable to q (a learned per-head scale). With a bool mask a query row with no allowed
    key outputs zeros instead of NaN (it is padding). Returns (B, H, Lq, Dh) in v's dtype.

    Autocast is switched off here so bf16 training still gets float32 logits and softmax (UIO2's
    stability recipe); the fused SDPA kernel then runs on float32 inputs.
    """
    if isinstance(scale, Tensor):
        q, scale = q * scale, 1.0
    with _autocast_off(q.device.type):
        qf, kf, vf = q.to(torch.float32), k.to(torch.float32), v.to(torch.float32)
        if torch.compiler.is_exporting():
            out = _explicit_attention(qf, kf, vf, mask, scale)
        else:
            out = F.scaled_dot_product_attention(qf, kf, vf, attn_mask=mask, scale=scale)
    return out.to(v.dtype)


def _explicit_attention(
    q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, scale: float
) -> Tensor:
    """``scaled_dot_product_attention`` spelled out, for the exported graphs.

    The exporter's SDPA decomposition transposes k through a 3-D reshape (nine graph nodes per
    attention call); here it is one Transpose, and no masking nodes when there is no mask (the
    decoder's self-attention). In a decoder step, where each node costs about as much as a small
    matmul, that is ~40 fewer nodes per token. Same maths as SDPA, including zeros (not NaN) for
    a query row that may attend to nothing.
    """
    scores = torch.matmul(q * scale, k.transpose(-1, -2))
    if mask is None:
        return torch.matmul(torch.softmax(scores, dim=-1), v)
    if mask.is_floating_point():  # an additive bias: one Add node, no NaN to clean up
        return torch.matmul(torch.softmax(scores + mask, dim=-1), v)
    weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
    weights = torch.where(torch.isnan(weights), 0.0, weights)
    return torch.matmul(weights, v)


def attention_bias(mask: Tensor) -> Tensor:
    """A bool attention mask (True = may attend) as the float32 bias ``attention`` adds to its
    scores: 0 where allowed, the most negative float32 elsewhere (softmax weight exactly 0).

    Why: the decoder attends to the same encoder positions at every token, so the bias is made
    once per control step instead of masking and NaN-cleaning in every layer of every token
    (12 exported nodes per decoder token become 4 Adds). Finite rather than -inf, so a row
    keeps finite weights; it needs at least one allowed key per row (an encoder sequence
    always has one), where a bool mask also handles rows with none.
    """
    return torch.where(mask, 0.0, torch.finfo(torch.float32).min).to(torch.float32)


def _autocast_off(device_type: str) -> contextlib.AbstractContextManager:
    # Only touch autocast when it is on: export and plain inference see no context manager.
    if torch.is_autocast_enabled(device_type):
        return torch.autocast(device_type, enabled=False)
    return contextlib.nullcontext()


class _HeadsMixin(nn.Module):
    """QK-norm, head split and output projection shared by self- and cross-attention."""

    def __init__(self, d_model: int, n_heads: int, head_dim: int, eps: float) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.head_dim = head_dim
        self.q_norm = RMSNorm(head_dim, eps)  # per head, shared across heads
        self.k_norm = RMSNorm(head_dim, eps)
        self.wo = nn.Linear(n_heads * head_dim, d_model, bias=False)
        self.scale = 1.0 / math.sqrt(head_dim)

    def _heads(self, x: Tensor) -> Tensor:
        """(B, L, H*Dh) -> (B, H, L, Dh).

        A single token (L = 1, every decoder step) needs no transpose, only a reshape: one graph
        node instead of two per projection in the exported decoder step, where per-node overhead
        is most of the cost.
        """
        if is_one(x.shape[1]):
            return x.reshape(x.shape[0], self.n_heads, 1, self.head_dim)
        return x.unflatten(-1, (self.n_heads, self.head_dim)).transpose(1, 2)

    def _rotate_q(self, q: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        """Per-head queries (B, H, L, Dh): QK-norm, then RoPE."""
        return apply_rope(self.q_norm(q), cos, sin)

    def _rotate_k(self, k: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        return apply_rope(self.k_norm(k), cos, sin)

    def output(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        """Attend and project back: (B, H, Lq, Dh) -> (B, Lq, D)."""
        out = attention(q, k, v, mask, self.scale)
        if is_one(out.shape[2]):  # one query token: (B, H, 1, Dh) reshapes straight to (B, 1, H*Dh)
            return self.wo(out.reshape(out.shape[0], 1, -1))
        return self.wo(out.transpose(1, 2).flatten(2))


class SelfAttention(_HeadsMixin):
    """Multi-head self-attention with QK-norm and RoPE; q, k, v from one fused matmul.

    ``qkv`` is exposed on its own so the decoder can append k, v to its cache before attending.
    """

    def __init__(self, d_model: int, n_heads: int, head_dim: int, eps: float = 1e-6) -> None:
        super().__init__(d_model, n_heads, head_dim, eps)
        self.wqkv = nn.Linear(d_model, 3 * n_heads * head_dim, bias=False)

    def qkv(self, x: Tensor, cos: Tensor, sin: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(B, L, D) -> normalised, rotated q, k and plain v, each (B, H, L, Dh)."""
        qkv = self.wqkv(x)
        h = self.n_heads
        if is_one(x.shape[1]):
            # one token: a single reshape to (B, 3H, 1, Dh) and a split of the heads, where a
            # split then three reshapes would cost the exported decoder 2 more nodes per layer
            q, k, v = qkv.reshape(x.shape[0], 3 * h, 1, self.head_dim).split(h, dim=1)
            return self._rotate_q(q, cos, sin), self._rotate_k(k, cos, sin), v
        # several tokens: QK-norm before moving heads in front of the sequence (the norm is
        # per head vector, so the order does not matter), which lets onnxruntime fuse both
        # norms into single kernels; after the transpose it left k's as five nodes
        q, k, v = qkv.unflatten(-1, (3 * h, self.head_dim)).split(h, dim=2)  # (B, L, H, Dh)
        q = apply_rope(self.q_norm(q).transpose(1, 2), cos, sin)
        k = apply_rope(self.k_norm(k).transpose(1, 2), cos, sin)
        return q, k, v.transpose(1, 2)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, mask: Tensor | None) -> Tensor:
        """x (B, L, D) with (B, 1, L, Dh) rotations -> (B, L, D)."""
        return self.output(*self.qkv(x, cos, sin), mask)


class CrossAttention(_HeadsMixin):
    """Queries from the decoder, keys/values from the encoder (computed once, then reused).

    Queries are rotated by decoder positions and keys by encoder positions, as in UIO2.
    """

    def __init__(self, d_model: int, n_heads: int, head_dim: int, eps: float = 1e-6) -> None:
        super().__init__(d_model, n_heads, head_dim, eps)
        self.wq = nn.Linear(d_model, n_heads * head_dim, bias=False)
        self.wkv = nn.Linear(d_model, 2 * n_heads * head_dim, bias=False)

    def query(self, x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        """(B, L, D) -> (B, H, L, Dh)."""
        return self._rotate_q(self._heads(self.wq(x)), cos, sin)

    def key_value(self, ctx: Tensor, cos: Tensor, sin: Tensor) -> tuple[Tensor, Tensor]:
        """(B, S, D) -> rotated keys and values, each (B, H, S, Dh)."""
        k, v = self.wkv(ctx).chunk(2, dim=-1)
        return self._rotate_k(self._heads(k), cos, sin), self._heads(v)
