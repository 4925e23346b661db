"""Transformer building blocks: RMS norm, gated SiLU MLP, QK-normalised rotary attention.

These follow UIO2's stability recipe: pre-norm with a scale-only RMS norm, queries and keys
RMS-normalised per head before RoPE, and attention logits and softmax always in float32 (so a
bf16 model cannot overflow its logits). There is no dropout anywhere.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from uio2_robot.model.rope import apply_rope


class RMSNorm(nn.Module):
    """T5-style RMS norm: x / rms(x) * weight, no mean subtraction and no bias."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        xf = x.to(torch.float32)
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return xf.to(x.dtype) * self.weight


class SwiGLU(nn.Module):
    """Gated SiLU MLP: wo(silu(wg x) * wu x)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.w_gate = nn.Linear(dim, hidden, bias=False)
        self.w_up = nn.Linear(dim, hidden, bias=False)
        self.w_out = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.w_out(F.silu(self.w_gate(x)) * self.w_up(x))


def attention(
    q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, scale: float | Tensor
) -> Tensor:
    """Softmax attention with float32 logits.

    q (B, H, Lq, Dh), k/v (B, H, Lk, Dh), mask broadcastable to (B, H, Lq, Lk) bool (True = may
    attend) or None. A query row with no allowed key gets uniform weights instead of NaN (its output
    is padding and is ignored downstream). Returns (B, H, Lq, Dh) in v's dtype.
    """
    logits = torch.matmul(q.to(torch.float32), k.to(torch.float32).transpose(-1, -2)) * scale
    if mask is not None:
        logits = logits.masked_fill(~mask, torch.finfo(torch.float32).min)
    probs = torch.softmax(logits, dim=-1)
    return torch.matmul(probs.to(v.dtype), v)


class Attention(nn.Module):
    """Multi-head attention with QK-norm and RoPE, usable as self- or cross-attention.

    Split into ``query`` / ``key_value`` / ``output`` so the decoder can cache keys and values
    (self-attention) or compute them once per control step (cross-attention).
    """

    def __init__(self, d_model: int, n_heads: int, head_dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.head_dim = head_dim
        inner = n_heads * head_dim
        self.wq = nn.Linear(d_model, inner, bias=False)
        self.wk = nn.Linear(d_model, inner, bias=False)
        self.wv = nn.Linear(d_model, inner, bias=False)
        self.wo = nn.Linear(inner, d_model, bias=False)
        self.q_norm = RMSNorm(head_dim, eps)  # per head, shared across heads
        self.k_norm = RMSNorm(head_dim, eps)
        self.scale = 1.0 / math.sqrt(head_dim)

    def _heads(self, x: Tensor) -> Tensor:
        """(B, L, H*Dh) -> (B, H, L, Dh)."""
        return x.unflatten(-1, (self.n_heads, self.head_dim)).transpose(1, 2)

    def query(self, x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        """(B, L, D) -> normalised, rotated queries (B, H, L, Dh)."""
        return apply_rope(self.q_norm(self._heads(self.wq(x))), cos, sin)

    def key_value(self, x: Tensor, cos: Tensor, sin: Tensor) -> tuple[Tensor, Tensor]:
        """(B, L, D) -> rotated keys and values, each (B, H, L, Dh)."""
        k = apply_rope(self.k_norm(self._heads(self.wk(x))), cos, sin)
        return k, self._heads(self.wv(x))

    def output(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        """Attend and project back: (B, H, Lq, Dh) -> (B, Lq, D)."""
        out = attention(q, k, v, mask, self.scale)
        return self.wo(out.transpose(1, 2).flatten(2))

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, mask: Tensor | None) -> Tensor:
        """Self-attention over x (B, L, D) with (B, 1, L, Dh/2) rotations."""
        k, v = self.key_value(x, cos, sin)
        return self.output(self.query(x, cos, sin), k, v, mask)
