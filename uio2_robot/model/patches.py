"""Images to patch tokens: the from-scratch patchifier.

UIO2 feeds images through a frozen ViT; here the image encoder is trained from scratch, so a
patch is simply its flattened pixels through one linear layer (a stride-p convolution written as
a matmul, which exports to ONNX as a reshape and a MatMul).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from uio2_robot.model.layers import RMSNorm


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


def grid_positions(
    rows: int, cols: int | None = None, device: torch.device | None = None
) -> tuple[Tensor, Tensor]:
    """Row and column index of each patch of a rows x cols grid (cols defaults to rows),
    row-major: two (rows*cols,)."""
    cols = rows if cols is None else cols
    idx = torch.arange(rows * cols, device=device)
    return idx // cols, idx % cols


PATCH_STEMS = ("linear", "conv")


class ConvStem(nn.Module):
    """A small convolutional patchifier (Xiao et al. 2021, "Early convolutions help
    transformers see better"): 3x3 stride-2 convolutions down to half the patch size, then a
    2x2 stride-2 convolution to ``out_dim``. Same patch grid as the linear patchifier.

    Why: UIO2's patches come from a pre-trained ViT; a from-scratch linear patchifier must learn
    edges and colours from a single matrix and trains slowly. A few convolutions give it local
    features from the start, which lets 16 px patches stay precise (4x fewer tokens than 8 px).

    The input gets two extra channels, the pixel's row and column in [-1, 1] (CoordConv, Liu et
    al. 2018): convolutions are translation-equivariant, so without them a token says *what* is
    in its patch but only coarsely *where*, and the policy's outputs are coordinates.
    """

    def __init__(self, patch_size: int, out_dim: int, width: int = 32) -> None:
        super().__init__()
        self.patch_size = patch_size
        n_halvings = patch_size.bit_length() - 1
        if patch_size < 4 or 2**n_halvings != patch_size:
            raise ValueError(
                f"the conv stem needs a power-of-two patch_size >= 4, got {patch_size}"
            )
        layers: list[nn.Module] = []
        c_in = 3 + 2  # RGB + (row, column) coordinates
        for i in range(n_halvings - 1):
            c_out = width * 2**i
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.GELU()]
            c_in = c_out
        layers.append(nn.Conv2d(c_in, out_dim, 2, stride=2))
        self.net = nn.Sequential(*layers)

    def forward(self, images: Tensor) -> Tensor:
        """(..., 3, H, W) -> (..., Np, out_dim), patches row-major."""
        *lead, c, h, w = images.shape
        flat = images.reshape(-1, c, h, w)
        rows = torch.linspace(-1.0, 1.0, h, dtype=images.dtype, device=images.device)
        cols = torch.linspace(-1.0, 1.0, w, dtype=images.dtype, device=images.device)
        coords = torch.stack(torch.meshgrid(rows, cols, indexing="ij"))  # (2, h, w)
        coords = coords.unsqueeze(0).expand(flat.shape[0], 2, h, w)
        x = self.net(torch.cat([flat, coords], dim=1))  # (N, D, gh, gw)
        n_patches = (h // self.patch_size) * (w // self.patch_size)
        return x.flatten(2).transpose(1, 2).reshape(*lead, n_patches, x.shape[1])


class PatchEmbed(nn.Module):
    """Patch embedding (linear or a conv stem), optionally with a learned factorised
    (row + column) position.

    The resampler's inputs need it because its cosine attention has no RoPE; the encoder's
    observation patches use it alongside 2D RoPE, as a ViT's patches carry absolute position.
    ``max_grid`` bounds both the rows and the columns, so one embedding serves square prompt
    images and wide observation images alike.
    """

    def __init__(
        self,
        patch_size: int,
        out_dim: int,
        max_grid: int | None = None,
        init_std: float = 0.02,
        stem: str = "linear",
    ) -> None:
        super().__init__()
        if stem not in PATCH_STEMS:
            raise ValueError(f"unknown patch stem {stem!r}; expected one of {PATCH_STEMS}")
        self.patch_size = patch_size
        self.stem = stem
        if stem == "linear":
            self.proj = nn.Linear(patch_size * patch_size * 3, out_dim)
        else:
            self.conv = ConvStem(patch_size, out_dim)
            # The conv stem's output is ~20x smaller than a token embedding (RMS ~0.05 vs 1);
            # in a pre-norm residual stream next to prompt tokens, that drowns the image in
            # the first layer. Normalising each patch (as CLIP's ln_pre) puts it on their scale.
            self.norm = RMSNorm(out_dim)
        self.max_grid = max_grid
        if max_grid is not None:
            # on unit-RMS conv patches a 0.02 position would be noise; match their scale
            std = init_std if stem == "linear" else 0.5
            self.row_embed = nn.Parameter(torch.randn(max_grid, out_dim) * std)
            self.col_embed = nn.Parameter(torch.randn(max_grid, out_dim) * std)

    def forward(self, images: Tensor) -> Tensor:
        """(..., 3, H, W) -> (..., Np, out_dim)."""
        if self.stem == "linear":
            x = self.proj(patchify(images, self.patch_size))
        else:
            x = self.norm(self.conv(images))
        if self.max_grid is not None:
            gh, gw = images.shape[-2] // self.patch_size, images.shape[-1] // self.patch_size
            if max(gh, gw) > self.max_grid:
                raise ValueError(
                    f"image of {tuple(images.shape[-2:])} px is a {gh} x {gw} patch grid; this "
                    f"embedding holds positions for at most {self.max_grid} rows and columns"
                )
            rows, cols = grid_positions(gh, gw, images.device)
            x = x + self.row_embed[rows] + self.col_embed[cols]
        return x
