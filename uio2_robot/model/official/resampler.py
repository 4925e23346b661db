"""The released UIO2's perceiver resampler for image history.

It differs from the project's own resampler (``uio2_robot.model.resampler``) in ways the
released weights depend on: keys and values are the frame features alone (not features plus
latents), normalised once before the first layer; the MLP is GELU rather than SwiGLU; padding
patches are masked; large and xl use QK-norm, xxl scaled cosine attention with a per-head
``logit_scale`` clamped at log(100). The attention itself is the project's
``ResamplerAttention``, which implements both variants.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from uio2_robot.model.layers import RMSNorm
from uio2_robot.model.official.vit import GeluMLP
from uio2_robot.model.resampler import ResamplerAttention


class OfficialResamplerLayer(nn.Module):
    """Latents cross-attend to the (pre-normalised) features, then a GELU MLP; pre-norm."""

    def __init__(self, dim: int, n_heads: int, mlp_hidden: int, scaled_cosine: bool, eps: float):
        super().__init__()
        self.norm_latents = RMSNorm(dim, eps)
        self.attn = ResamplerAttention(dim, n_heads, scaled_cosine=scaled_cosine, eps=eps)
        self.norm_mlp = RMSNorm(dim, eps)
        self.mlp = GeluMLP(dim, mlp_hidden, bias=False)

    def forward(self, latents: Tensor, context: Tensor, key_mask: Tensor) -> Tensor:
        latents = latents + self.attn(self.norm_latents(latents), context, key_mask)
        return latents + self.mlp(self.norm_mlp(latents))


class OfficialPerceiver(nn.Module):
    """(N, P, dim) frame features + (N, P) patch mask -> (N, n_latents, dim)."""

    def __init__(
        self,
        dim: int,
        n_heads: int,
        mlp_hidden: int,
        n_layers: int,
        n_latents: int,
        scaled_cosine: bool,
        eps: float = 1e-6,
    ) -> None:
        super().__init__()
        self.latents = nn.Parameter(torch.zeros(n_latents, dim))
        self.context_norm = RMSNorm(dim, eps)
        self.layers = nn.ModuleList(
            [
                OfficialResamplerLayer(dim, n_heads, mlp_hidden, scaled_cosine, eps)
                for _ in range(n_layers)
            ]
        )
        self.norm = RMSNorm(dim, eps)

    def forward(self, features: Tensor, mask: Tensor) -> Tensor:
        context = self.context_norm(features)
        key_mask = (mask > 0)[:, None, None, :]  # (N, 1, 1, P)
        latents = self.latents.to(features.dtype).expand(features.shape[0], -1, -1)
        for layer in self.layers:
            latents = layer(latents, context, key_mask)
        return self.norm(latents)
