"""Layout of the encoder sequence: its groups, their order, their static RoPE positions.

The order is the contract in ``uio2_robot.model.inputs`` (prompt tokens, prompt-image latents,
observation patches, history latents, proprio). Every size is fixed by the config, so the group
boundaries and positions are constants: objectives can slice a group (the [R] objective reads
the observation patches), and an exported encoder graph has a static sequence length.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from uio2_robot.model.config import ModelConfig
from uio2_robot.model.patches import grid_positions

GROUPS = ("prompt_tokens", "prompt_images", "prompt_scenes", "obs_patches", "history", "proprio")
"""Encoder groups in sequence order (``prompt_scenes`` is empty unless
``ModelConfig.max_prompt_scenes`` > 0)."""

TAGGED_GROUPS = ("prompt_tokens", "prompt_images", "obs_patches", "history", "proprio")
"""Row of each group's learned modality embedding. Prompt scenes carry the ``prompt_images``
tag: they are prompt image k at full resolution, and no new row keeps older checkpoints loadable.
"""


class EncoderOutput(NamedTuple):
    """The encoder sequence (embeddings before the encoder layers, or their output after).

    Positions and the 1D/2D flag travel with the hidden states because cross-attention rotates
    its keys by the encoder positions.
    """

    hidden: Tensor  # (B, S, D)
    mask: Tensor  # (B, S) bool, True = real token
    positions: Tensor  # (B, S, 2) int64
    rope_2d: Tensor  # (B, S) bool


def group_sizes(cfg: ModelConfig) -> dict[str, int]:
    """Number of encoder tokens in each group."""
    return {
        "prompt_tokens": cfg.max_prompt_tokens,
        "prompt_images": cfg.max_prompt_images * cfg.n_latents,
        "prompt_scenes": cfg.max_prompt_scenes * cfg.n_patches,
        "obs_patches": cfg.n_views * cfg.n_patches,
        "history": cfg.max_history * cfg.n_views * cfg.n_latents,
        "proprio": 1,
    }


def group_slices(cfg: ModelConfig) -> dict[str, slice]:
    """Index range of each group in the encoder sequence (S = cfg.encoder_seq_len)."""
    out, start = {}, 0
    for name, size in group_sizes(cfg).items():
        out[name] = slice(start, start + size)
        start += size
    return out


def encoder_positions(cfg: ModelConfig) -> tuple[Tensor, Tensor]:
    """Static RoPE positions (S, 2) int64 and 2D flags (S,) bool of the encoder sequence.

    prompt tokens: 1D index; prompt latents: (image k, latent l); prompt scenes and observation
    patches: (row, column), the same grid for every scene and view (the view embedding tells views apart); history
    latents: (frame t, latent l), views likewise; proprio: 1D position 0.
    """
    nl, v = cfg.n_latents, cfg.n_views
    grid_h, grid_w = cfg.grid_hw
    parts: list[tuple[Tensor, Tensor, bool]] = []

    tok = torch.arange(cfg.max_prompt_tokens)
    parts.append((tok, torch.zeros_like(tok), False))

    k = torch.arange(cfg.max_prompt_images).repeat_interleave(nl)
    parts.append((k, torch.arange(nl).repeat(cfg.max_prompt_images), True))

    rows, cols = grid_positions(grid_h, grid_w)
    n_scenes = cfg.max_prompt_scenes
    parts.append((rows.repeat(n_scenes), cols.repeat(n_scenes), True))
    parts.append((rows.repeat(v), cols.repeat(v), True))

    t = torch.arange(cfg.max_history).repeat_interleave(v * nl)
    parts.append((t, torch.arange(nl).repeat(cfg.max_history * v), True))

    parts.append((torch.zeros(1, dtype=torch.int64), torch.zeros(1, dtype=torch.int64), False))

    positions = torch.cat([torch.stack([a, b], dim=-1) for a, b, _ in parts]).to(torch.int64)
    rope_2d = torch.cat([torch.full((a.shape[0],), flag) for a, _, flag in parts])
    return positions, rope_2d
