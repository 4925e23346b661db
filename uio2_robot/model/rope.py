"""Rotary position embeddings, 1D and 2D, in one tensor path.

UIO2 rotates queries and keys (after QK-norm) so attention depends on relative position.
Text and action tokens use 1D RoPE over the whole head. Image patches use 2D RoPE: the first
half of each head is rotated by the row index, the second half by the column index, so the model
can tell "one row down" from "one column right". History and prompt-image latents use the
(frame, latent) pair as their 2D position.

Every token carries a 2-vector position and a ``rope_2d`` flag; both kinds of angle are computed
and the flag selects one with ``torch.where``. There is no Python branching on data, so the same
code exports to ONNX with mixed 1D/2D sequences.

Pairing is interleaved: dims (2j, 2j+1) form rotated pair j. With Dh/2 pairs per head, 1D uses
frequency ``base^(-2j/Dh)`` for pair j; 2D uses pairs ``j < Dh/4`` for rows and the rest for
columns, each axis with frequencies ``base^(-2j/(Dh/2))``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class RotaryEmbedding(nn.Module):
    """Turns (B, S, 2) positions and a (B, S) 1D/2D flag into (cos, sin) for ``apply_rope``."""

    def __init__(self, head_dim: int, base: float = 10000.0) -> None:
        super().__init__()
        if head_dim % 4:
            raise ValueError(f"RoPE head_dim must be a multiple of 4, got {head_dim}")
        self.head_dim = head_dim
        n_pairs = head_dim // 2
        inv_1d = base ** (-torch.arange(n_pairs, dtype=torch.float32) * 2.0 / head_dim)
        inv_2d = base ** (-torch.arange(n_pairs // 2, dtype=torch.float32) * 2.0 / n_pairs)
        # Not persistent: derived from the config, constants in an exported graph.
        self.register_buffer("inv_1d", inv_1d, persistent=False)  # (Dh/2,)
        self.register_buffer("inv_2d", inv_2d, persistent=False)  # (Dh/4,)

    def angles(self, positions: Tensor, rope_2d: Tensor) -> Tensor:
        """(B, S, 2) int64, (B, S) bool -> (B, S, Dh/2) float32 rotation angle per pair."""
        p = positions.to(torch.float32)
        a_1d = p[..., 0:1] * self.inv_1d  # (B, S, Dh/2)
        a_2d = torch.cat([p[..., 0:1] * self.inv_2d, p[..., 1:2] * self.inv_2d], dim=-1)
        return torch.where(rope_2d.unsqueeze(-1), a_2d, a_1d)

    def forward(self, positions: Tensor, rope_2d: Tensor) -> tuple[Tensor, Tensor]:
        """(cos, sin), each (B, 1, S, Dh/2): broadcast over heads."""
        a = self.angles(positions, rope_2d).unsqueeze(1)
        return torch.cos(a), torch.sin(a)

    def forward_1d(self, positions: Tensor) -> tuple[Tensor, Tensor]:
        """(cos, sin) for plain 1D positions (B, L) int64 (decoder tokens): (B, 1, L, Dh/2)."""
        a = (positions.to(torch.float32).unsqueeze(-1) * self.inv_1d).unsqueeze(1)
        return torch.cos(a), torch.sin(a)


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate (B, H, S, Dh) by per-pair angles given as (B, 1, S, Dh/2) cos / sin."""
    xf = x.to(torch.float32).unflatten(-1, (-1, 2))  # (B, H, S, Dh/2, 2)
    x0, x1 = xf[..., 0], xf[..., 1]
    out = torch.stack([x0 * cos - x1 * sin, x0 * sin + x1 * cos], dim=-1)
    return out.flatten(-2).to(x.dtype)
