"""Images to patch tokens: the from-scratch patchifier.

UIO2 feeds images through a frozen ViT; here the image encoder is trained from scratch, so a
patch is simply its flattened pixels through one linear layer (a stride-p convolution written as
a matmul, which exports to ONNX as a reshape and a MatMul).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def patchify(images: Tensor, patch_size: int) -> Tensor:
    """(..., 3, H, W) -> (..., (H/p)*(W/p), p*p*3).

    Patches are in row-major grid order; pixels inside a patch are (row, column, channel). The
    [R] objective's targets and the reconstruction head use this same layout.
    """
    *lead, c, h, w = images.shape
    p = patch_size
    gh, gw = h // p, w // p
    x = images.reshape(*lead, c, gh, p, gw, p)
    x = x.movedim(-5, -1)  # (..., gh, p, gw, p, c)
    x = x.transpose(-4, -3)  # (..., gh, gw, p, p, c)
    return x.reshape(*lead, gh * gw, p * p * c)


def unpatchify(patches: Tensor, patch_size: int, height: int, width: int) -> Tensor:
    """Inverse of ``patchify``: (..., Np, p*p*3) -> (..., 3, H, W). Used to view reconstructions."""
    *lead, _, _ = patches.shape
    p = patch_size
    gh, gw = height // p, width // p
    x = patches.reshape(*lead, gh, gw, p, p, 3)
    x = x.transpose(-4, -3)  # (..., gh, p, gw, p, c)
    x = x.movedim(-1, -5)  # (..., c, gh, p, gw, p)
    return x.reshape(*lead, 3, height, width)


def grid_positions(grid: int, device: torch.device | None = None) -> tuple[Tensor, Tensor]:
    """Row and column index of each patch of a grid x grid image, row-major: two (grid*grid,)."""
    idx = torch.arange(grid * grid, device=device)
    return idx // grid, idx % grid


class PatchEmbed(nn.Module):
    """Linear patch embedding, optionally with a learned factorised (row + column) position.

    The resampler's inputs need it because its cosine attention has no RoPE; the encoder's
    observation patches use it alongside 2D RoPE, as a ViT's patches carry absolute position.
    """

    def __init__(
        self, patch_size: int, out_dim: int, max_grid: int | None = None, init_std: float = 0.02
    ) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Linear(patch_size * patch_size * 3, out_dim)
        self.max_grid = max_grid
        if max_grid is not None:
            self.row_embed = nn.Parameter(torch.randn(max_grid, out_dim) * init_std)
            self.col_embed = nn.Parameter(torch.randn(max_grid, out_dim) * init_std)

    def forward(self, images: Tensor) -> Tensor:
        """(..., 3, H, W) -> (..., Np, out_dim)."""
        x = self.proj(patchify(images, self.patch_size))
        if self.max_grid is not None:
            grid = images.shape[-1] // self.patch_size
            rows, cols = grid_positions(grid, images.device)
            x = x + self.row_embed[rows] + self.col_embed[cols]
        return x
