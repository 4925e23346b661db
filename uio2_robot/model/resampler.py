"""Perceiver resampler: compresses each image frame to a fixed number of latent tokens.

UIO2 uses it for image history (and audio): a frame's patch features are read by a small set of
learned latents through cross-attention, so T past frames cost T * n_latents encoder tokens
instead of T * n_patches. Each frame is resampled on its own (frames are a batch dimension).

Attention is scaled cosine attention (UIO2-XXL's fix for resampler instability): logits are the
cosine similarity of query and key times a learned per-head scale ``exp(min(s, log 100))``,
with ``s`` initialised at ``log 10``. Bounded logits cannot blow up however large the
activations grow.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from uio2_robot.model.layers import RMSNorm, SwiGLU, attention
from uio2_robot.model.patches import PatchEmbed


class ResamplerAttention(nn.Module):
    """Latents (queries) attend to [frame features; latents] (keys/values)."""

    def __init__(
        self,
        dim: int,
        n_heads: int,
        scaled_cosine: bool = True,
        logit_scale_init: float = 2.302585092994046,  # log(10)
        logit_scale_max: float = 4.605170185988092,  # log(100)
        eps: float = 1e-6,
    ) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.head_dim = dim // n_heads
        self.scaled_cosine = scaled_cosine
        self.logit_scale_max = logit_scale_max
        self.wq = nn.Linear(dim, dim, bias=False)
        self.wk = nn.Linear(dim, dim, bias=False)
        self.wv = nn.Linear(dim, dim, bias=False)
        self.wo = nn.Linear(dim, dim, bias=False)
        if scaled_cosine:
            self.logit_scale = nn.Parameter(torch.full((n_heads, 1, 1), float(logit_scale_init)))
        else:  # plain dot product with QK-norm, as in the main transformer
            self.q_norm = RMSNorm(self.head_dim, eps)
            self.k_norm = RMSNorm(self.head_dim, eps)

    def logit_scale_value(self) -> Tensor:
        """The multiplier on cosine logits per head: exp(clamped param), shape (H, 1, 1)."""
        return torch.exp(torch.clamp(self.logit_scale, max=self.logit_scale_max))

    def _heads(self, x: Tensor) -> Tensor:
        return x.unflatten(-1, (self.n_heads, self.head_dim)).transpose(1, 2)

    def forward(self, latents: Tensor, context: Tensor, mask: Tensor | None = None) -> Tensor:
        """latents (N, Q, dim), context (N, C, dim) -> (N, Q, dim); ``mask`` (N, 1, 1, C) bool
        (True = a key to attend) hides padding patches (the official UIO2 resampler's)."""
        q = self._heads(self.wq(latents))  # (N, H, Q, Dh)
        k = self._heads(self.wk(context))  # (N, H, C, Dh)
        v = self._heads(self.wv(context))
        if self.scaled_cosine:
            q = F.normalize(q.to(torch.float32), dim=-1)
            k = F.normalize(k.to(torch.float32), dim=-1)
            scale: Tensor | float = self.logit_scale_value()
        else:
            q, k = self.q_norm(q), self.k_norm(k)
            scale = self.head_dim**-0.5
        out = attention(q, k, v, mask, scale)
        return self.wo(out.transpose(1, 2).flatten(2))


class ResamplerLayer(nn.Module):
    """One pre-norm cross-attention + gated MLP block (Flamingo-style keys = frame + latents)."""

    def __init__(self, dim: int, n_heads: int, mlp_hidden: int, **attn_kwargs) -> None:
        super().__init__()
        eps = attn_kwargs.get("eps", 1e-6)
        self.norm_x = RMSNorm(dim, eps)
        self.norm_latents = RMSNorm(dim, eps)
        self.attn = ResamplerAttention(dim, n_heads, **attn_kwargs)
        self.norm_mlp = RMSNorm(dim, eps)
        self.mlp = SwiGLU(dim, mlp_hidden)

    def forward(self, latents: Tensor, x: Tensor) -> Tensor:
        """latents (N, Q, dim), frame features x (N, P, dim) -> updated latents (N, Q, dim)."""
        lat = self.norm_latents(latents)
        context = torch.cat([self.norm_x(x), lat], dim=1)  # (N, P + Q, dim)
        latents = latents + self.attn(lat, context)
        return latents + self.mlp(self.norm_mlp(latents))


class PerceiverResampler(nn.Module):
    """(N, P, dim) frame features -> (N, n_latents, dim) latents."""

    def __init__(
        self, dim: int, n_heads: int, mlp_hidden: int, n_layers: int, n_latents: int, **attn_kwargs
    ) -> None:
        super().__init__()
        self.latents = nn.Parameter(torch.randn(n_latents, dim))
        self.layers = nn.ModuleList(
            [ResamplerLayer(dim, n_heads, mlp_hidden, **attn_kwargs) for _ in range(n_layers)]
        )
        self.norm = RMSNorm(dim, attn_kwargs.get("eps", 1e-6))

    def forward(self, x: Tensor) -> Tensor:
        latents = self.latents.unsqueeze(0).expand(x.shape[0], -1, -1)
        for layer in self.layers:
            latents = layer(latents, x)
        return self.norm(latents)


class ImageResampler(nn.Module):
    """Images (B, N, 3, h, w) -> latents (B, N, n_latents, out_dim), each frame separately.

    Patch embedding (with learned positions) -> perceiver resampler -> projection to d_model.
    Shared by prompt images and history frames: both are "pictures to summarise".
    """

    def __init__(
        self,
        patch_size: int,
        max_grid: int,
        dim: int,
        n_heads: int,
        mlp_hidden: int,
        n_layers: int,
        n_latents: int,
        out_dim: int,
        patch_stem: str = "linear",
        **attn_kwargs,
    ) -> None:
        super().__init__()
        self.n_latents = n_latents
        self.patch_embed = PatchEmbed(patch_size, dim, max_grid=max_grid, stem=patch_stem)
        self.resampler = PerceiverResampler(
            dim, n_heads, mlp_hidden, n_layers, n_latents, **attn_kwargs
        )
        self.out = nn.Linear(dim, out_dim, bias=False)

    def forward(self, images: Tensor) -> Tensor:
        b, n = images.shape[0], images.shape[1]
        frames = images.flatten(0, 1)  # (B*N, 3, h, w)
        latents = self.resampler(self.patch_embed(frames))  # (B*N, Q, dim)
        return self.out(latents).unflatten(0, (b, n))  # (B, N, Q, out_dim)
