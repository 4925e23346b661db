"""The CLIP ViT-B/16 image encoder of the released Unified-IO 2 models (frozen in UIO2).

UIO2 cuts CLIP's ViT to its first 11 of 12 blocks and feeds the encoder the patch features of
the last kept block concatenated with those of the 2nd block (the CLS token dropped), so low-
and high-level features both reach the projection. History frames use only the last block.

Padding patches (the letterbox of a non-square image) are masked as attention keys, as in the
official code; their own outputs are finite garbage that the encoder masks out.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from uio2_robot.model.layers import attention


class GeluMLP(nn.Module):
    """fc2(gelu(fc1(x))): the ViT's MLP (with biases) and the resampler's (without)."""

    def __init__(self, dim: int, hidden: int, bias: bool) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden, bias=bias)
        self.fc2 = nn.Linear(hidden, dim, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class ViTBlock(nn.Module):
    """Pre-LayerNorm attention (q, k, v from one fused projection with bias) + GELU MLP."""

    def __init__(self, dim: int, n_heads: int, mlp_hidden: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.ln_1 = nn.LayerNorm(dim, eps=1e-5)
        self.wqkv = nn.Linear(dim, 3 * dim)  # [query; key; value] in_proj
        self.out_proj = nn.Linear(dim, dim)
        self.ln_2 = nn.LayerNorm(dim, eps=1e-5)
        self.mlp = GeluMLP(dim, mlp_hidden, bias=True)

    def forward(self, x: Tensor, key_mask: Tensor) -> Tensor:
        """x (N, L, dim), key_mask (N, 1, 1, L) bool -> (N, L, dim)."""
        h = self.ln_1(x)
        q, k, v = (
            t.unflatten(-1, (self.n_heads, -1)).transpose(1, 2)
            for t in self.wqkv(h).chunk(3, dim=-1)
        )  # (N, H, L, Dh)
        out = attention(q, k, v, key_mask, q.shape[-1] ** -0.5)
        x = x + self.out_proj(out.transpose(1, 2).flatten(2))
        return x + self.mlp(self.ln_2(x))


class CLIPVisionEncoder(nn.Module):
    """Patches (N, P, patch_dim) with their grid ids -> (last block, 2nd block) features,
    each (N, P, dim), CLS dropped."""

    def __init__(
        self, patch_dim: int, dim: int, n_heads: int, mlp_hidden: int, n_layers: int, num_pos: int
    ) -> None:
        super().__init__()
        if n_layers < 2:
            raise ValueError(f"the UIO2 ViT needs >= 2 blocks (uses the 2nd), got {n_layers}")
        self.embedding = nn.Linear(patch_dim, dim, bias=False)
        self.class_embedding = nn.Parameter(torch.zeros(dim))
        self.positional_embedding = nn.Parameter(torch.zeros(num_pos, dim))  # CLS + g x g grid
        self.pre_ln = nn.LayerNorm(dim, eps=1e-5)
        self.blocks = nn.ModuleList([ViTBlock(dim, n_heads, mlp_hidden) for _ in range(n_layers)])

    def freeze_grids(self, grids: list[tuple[int, int]]) -> None:
        """Compute the resized position tables of ``grids`` once and reuse them (the ViT is
        frozen at inference; an exported graph then holds them as constants instead of a
        bicubic antialiased resize). Training the ViT must not use this."""
        self._frozen = {tuple(g): self.grid_positions(tuple(g)).detach() for g in grids}

    def grid_positions(self, grid: tuple[int, int]) -> Tensor:
        """The learned grid positions resized to ``grid`` (rows, cols): (rows*cols, dim).

        Bicubic with antialiasing, as the official code (after JAX's ``image.resize``); the
        released 14 x 14 grid becomes 24 x 24 for 384 px images and 16 x 16 for 256 px frames.
        """
        frozen = getattr(self, "_frozen", {}).get(tuple(grid))
        if frozen is not None:
            return frozen
        pos = self.positional_embedding[1:]
        g = math.isqrt(pos.shape[0])
        pos = pos.reshape(g, g, -1)
        if (g, g) != tuple(grid):
            pos = F.interpolate(
                pos.permute(2, 0, 1).unsqueeze(0).float(),
                size=tuple(grid),
                mode="bicubic",
                align_corners=False,
                antialias=True,
            )
            pos = pos.squeeze(0).permute(1, 2, 0).to(self.positional_embedding.dtype)
        return pos.reshape(-1, pos.shape[-1])

    def forward(
        self, patches: Tensor, mask: Tensor, pos_ids: Tensor, grid: tuple[int, int]
    ) -> tuple[Tensor, Tensor]:
        """patches (N, P, patch_dim) float (CLIP-normalised pixels), mask (N, P) (1 = real
        patch), pos_ids (N, P) int index into the grid (row-major)."""
        n = patches.shape[0]
        x = self.embedding(patches.to(self.embedding.weight.dtype))  # (N, P, dim)
        pos = self.grid_positions(grid)[pos_ids.long()]  # (N, P, dim)
        cls = (self.class_embedding + self.positional_embedding[0]).expand(n, 1, -1)
        x = torch.cat([cls, x + pos], dim=1)
        keep = torch.cat([torch.ones_like(mask[:, :1], dtype=torch.bool), mask > 0], dim=1)
        key_mask = keep[:, None, None, :]  # (N, 1, 1, 1 + P)
        x = self.pre_ln(x)
        second = x
        for i, block in enumerate(self.blocks):
            x = block(x, key_mask)
            if i == 1:
                second = x
        return x[:, 1:], second[:, 1:]
