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
    """Turns (B, S, 2) positions and a (B, S) 1D/2D flag into (cos, sin) for ``apply_rope``.

    Both are returned at full head width (B, 1, S, Dh), each angle repeated for the two dims of
    its pair, and ``sin`` carries the rotation's sign (-sin on the even dim, +sin on the odd).
    ``apply_rope`` is then two multiplies, one add and a pair swap: few ops, which is what
    counts in a one-token decoder step.
    """

    def __init__(self, head_dim: int, base: float = 10000.0) -> None:
        super().__init__()
        if head_dim % 4:
            raise ValueError(f"RoPE head_dim must be a multiple of 4, got {head_dim}")
        self.head_dim = head_dim
        n_pairs = head_dim // 2
        inv_1d = base ** (-torch.arange(n_pairs, dtype=torch.float32) * 2.0 / head_dim)
        inv_2d = base ** (-torch.arange(n_pairs // 2, dtype=torch.float32) * 2.0 / n_pairs)
        sign = torch.tensor([-1.0, 1.0]).repeat(n_pairs)
        # Not persistent: derived from the config, constants in an exported graph.
        self.register_buffer("inv_1d", inv_1d, persistent=False)  # (Dh/2,)
        self.register_buffer("inv_2d", inv_2d, persistent=False)  # (Dh/4,)
        self.register_buffer("sign", sign, persistent=False)  # (Dh,)

    def angles(self, positions: Tensor, rope_2d: Tensor) -> Tensor:
        """(B, S, 2) int64, (B, S) bool -> (B, S, Dh/2) float32 rotation angle per pair."""
        p = positions.to(torch.float32)
        a_1d = p[..., 0:1] * self.inv_1d  # (B, S, Dh/2)
        a_2d = torch.cat([p[..., 0:1] * self.inv_2d, p[..., 1:2] * self.inv_2d], dim=-1)
        return torch.where(rope_2d.unsqueeze(-1), a_2d, a_1d)

    def _cos_sin(self, angles: Tensor) -> tuple[Tensor, Tensor]:
        """(B, L, Dh/2) pair angles -> full-width (B, 1, L, Dh) cos and signed sin."""
        a = torch.stack([angles, angles], dim=-1).flatten(-2).unsqueeze(1)
        return torch.cos(a), torch.sin(a) * self.sign

    def forward(self, positions: Tensor, rope_2d: Tensor) -> tuple[Tensor, Tensor]:
        """(cos, sin) for mixed 1D/2D positions, each (B, 1, S, Dh): broadcast over heads."""
        return self._cos_sin(self.angles(positions, rope_2d))

    def forward_1d(self, positions: Tensor) -> tuple[Tensor, Tensor]:
        """(cos, sin) for plain 1D positions (B, L) int64 (decoder tokens): (B, 1, L, Dh)."""
        return self._cos_sin(positions.to(torch.float32).unsqueeze(-1) * self.inv_1d)


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate (B, H, S, Dh) by ``RotaryEmbedding``'s (B, 1, S, Dh) cos and signed sin.

    Per pair (x0, x1): (x0 cos - x1 sin, x1 cos + x0 sin). Computed in float32.
    """
    xf = x.to(torch.float32)
    if torch.compiler.is_exporting():
        if is_one(x.shape[-2]):
            # one decoder token: the whole rotation is one MatMul by a (Dh, Dh) matrix that
            # depends on the position only, so every q and k of a token shares it (a constant
            # in the unrolled greedy graph): 1 node per rotation instead of 4, and a decoder
            # token makes 12 of them. Same terms as below; only the rounding of the two-term
            # sum may differ (fused multiply-add), by at most an ulp.
            return torch.matmul(xf, rotation_matrix(cos, sin)).to(x.dtype)
        # one MatMul by the pair-swap permutation instead of reshape, flip and reshape: the
        # same numbers (each output is one input times 1.0), a third of the graph nodes
        swapped = torch.matmul(xf, _pair_swap(x.shape[-1], x.device))
    else:
        swapped = xf.unflatten(-1, (-1, 2)).flip(-1).flatten(-2)  # (x1, x0) for every pair
    return (xf * cos + swapped * sin).to(x.dtype)


def is_one(size: int | torch.SymInt) -> bool:
    """A size that is 1 for sure: a plain int (a symbolic size under export never is). The
    one-token paths of the exported decoder branch on it."""
    return isinstance(size, int) and size == 1


def rotation_matrix(cos: Tensor, sin: Tensor) -> Tensor:
    """``RotaryEmbedding``'s (B, 1, 1, Dh) cos and signed sin of one position -> the (B, 1, Dh, Dh)
    matrix R with ``x @ R == apply_rope(x, cos, sin)`` for a (B, H, 1, Dh) token x.

    Column j of R holds cos_j at row j and sin_j at row j ^ 1 (the pair partner): R = diag(cos)
    + P diag(sin), P the pair swap.
    """
    dim = cos.shape[-1]
    eye = torch.eye(dim, device=cos.device)
    return eye * cos + _pair_swap(dim, cos.device) * sin


def _pair_swap(dim: int, device: torch.device) -> Tensor:
    """(dim, dim) permutation matrix P with (x @ P) = x with the two dims of every pair swapped."""
    index = torch.arange(dim, device=device)
    return torch.eye(dim, device=device)[index ^ 1]
