"""Assembles the encoder sequence from embedded content: tags, masks and positions per group.

UIO2 joins every modality into one encoder sequence; each token is its content embedding plus a
learned modality embedding, and views / prompt images get their own learned tags. This module
does that assembly. The content itself (token embeddings, resampled latents) is computed by the
model, because the token table is shared with the decoder and the resampler is shared by prompt
images and history.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from uio2_robot.model.config import ModelConfig
from uio2_robot.model.inputs import EncoderInputs
from uio2_robot.model.patches import PatchEmbed
from uio2_robot.model.sequence import TAGGED_GROUPS, EncoderOutput, encoder_positions


class EncoderEmbedder(nn.Module):
    """Observation patches, proprio and every learned tag of the encoder sequence."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        d = cfg.d_model
        self.cfg = cfg
        # A learned absolute (row + column) position on top of 2D RoPE: UIO2's patches come from
        # a ViT whose own position embeddings make "where" linearly readable; trained from scratch
        # here, the patchifier needs it too, or coordinates must be inferred from relative phases.
        self.obs_patch_embed = PatchEmbed(
            cfg.patch_size, d, max_grid=max(cfg.grid_hw), stem=cfg.patch_stem
        )
        # Stands in for an observation patch hidden by the [R] (masked denoising) objective.
        self.mask_embed = nn.Parameter(torch.randn(d) * 0.5)
        self.view_embed = nn.Embedding(cfg.n_views, d)
        self.modality_embed = nn.Embedding(len(TAGGED_GROUPS), d)
        # Prompt image k's latents and its marker token <img_k> share row k.
        self.image_index_embed = nn.Embedding(max(cfg.max_prompt_images, 1), d)
        self.proprio_proj = nn.Linear(cfg.proprio_dim, d)
        positions, rope_2d = encoder_positions(cfg)
        self.register_buffer("positions", positions, persistent=False)  # (S, 2)
        self.register_buffer("rope_2d", rope_2d, persistent=False)  # (S,)

    def _tag(self, x: Tensor, group: str) -> Tensor:
        return x + self.modality_embed.weight[TAGGED_GROUPS.index(group)]

    def forward(
        self,
        inputs: EncoderInputs,
        token_emb: Tensor,  # (B, L, D) embeddings of inputs.tokens
        prompt_latents: Tensor,  # (B, K, Q, D) resampled prompt images
        history_latents: Tensor,  # (B, T*V, Q, D) resampled history frames, (t, v) row-major
        obs_patch_mask: Tensor | None = None,  # (B, V, Np) bool, True = replace by mask_embed
    ) -> EncoderOutput:
        """The whole encoder sequence: the prompt groups, then the step groups."""
        prompt = self.prompt_groups(
            inputs.tokens,
            inputs.token_mask,
            token_emb,
            prompt_latents,
            inputs.prompt_image_mask,
            inputs.scene_images,
            inputs.scene_image_mask,
            inputs.scene_image_index,
        )
        step = self.step_groups(
            inputs.obs_images, history_latents, inputs.history_mask, inputs.proprio, obs_patch_mask
        )
        return EncoderOutput(*(torch.cat([a, b], dim=1) for a, b in zip(prompt, step, strict=True)))

    def _layout(self, sl: slice, b: int) -> tuple[Tensor, Tensor]:
        """Static positions (B, n, 2) and 2D flags (B, n) of the sequence slice ``sl``."""
        pos, flag = self.positions[sl], self.rope_2d[sl]
        return pos.unsqueeze(0).expand(b, *pos.shape), flag.unsqueeze(0).expand(b, *flag.shape)

    def prompt_groups(
        self,
        tokens: Tensor,  # (B, L) int64
        token_mask: Tensor,  # (B, L) bool
        token_emb: Tensor,  # (B, L, D) embeddings of tokens
        prompt_latents: Tensor,  # (B, K, Q, D) resampled prompt images
        prompt_image_mask: Tensor,  # (B, K) bool
        scene_images: Tensor,  # (B, S, 3, H, W)
        scene_image_mask: Tensor,  # (B, S) bool
        scene_image_index: Tensor,  # (B, S) int64
    ) -> EncoderOutput:
        """Prompt tokens, prompt-image latents, prompt scenes: the part fixed for an episode."""
        cfg = self.cfg
        b = token_emb.shape[0]
        k_img, q = cfg.max_prompt_images, cfg.n_latents

        tok = token_emb
        if cfg.image_marker_id is not None and k_img > 0:
            k = tokens - cfg.image_marker_id  # (B, L): marker index where in range
            is_marker = (k >= 0) & (k < k_img)
            index_emb = self.image_index_embed(k.clamp(0, k_img - 1))
            tok = tok + torch.where(is_marker.unsqueeze(-1), index_emb, torch.zeros_like(index_emb))
        tok = self._tag(tok, "prompt_tokens")

        prompt = prompt_latents + self.image_index_embed.weight[:k_img].unsqueeze(1)
        prompt = self._tag(prompt.flatten(1, 2), "prompt_images")  # (B, K*Q, D)

        n_scenes, n_patches = cfg.max_prompt_scenes, cfg.n_patches
        if n_scenes:
            scenes = self.obs_patch_embed(scene_images.to(prompt.dtype))  # (B, S, Np, D)
            index = self.image_index_embed(scene_image_index)  # (B, S, D)
            # view 0's tag: a scene is a frame of the first camera (Processor.scene_camera)
            scenes = scenes + index.unsqueeze(2) + self.view_embed.weight[0]
            scenes = self._tag(scenes.flatten(1, 2), "prompt_images")  # (B, S*Np, D)
        else:  # static: no scene slots, no patch embedding of an empty tensor
            scenes = prompt.new_zeros((b, 0, prompt.shape[-1]))

        hidden = torch.cat([tok, prompt, scenes], dim=1)
        mask = torch.cat(
            [
                token_mask,
                prompt_image_mask.unsqueeze(-1).expand(b, k_img, q).flatten(1),
                scene_image_mask.unsqueeze(-1).expand(b, n_scenes, n_patches).flatten(1),
            ],
            dim=1,
        )
        return EncoderOutput(hidden, mask, *self._layout(slice(0, cfg.prompt_seq_len), b))

    def step_groups(
        self,
        obs_images: Tensor,  # (B, V, 3, H, W)
        history_latents: Tensor,  # (B, T*V, Q, D) resampled history frames, (t, v) row-major
        history_mask: Tensor,  # (B, T) bool
        proprio: Tensor,  # (B, P)
        obs_patch_mask: Tensor | None = None,  # (B, V, Np) bool, True = replace by mask_embed
    ) -> EncoderOutput:
        """Observation patches, history latents and proprio: the part new at every step."""
        cfg = self.cfg
        b = obs_images.shape[0]
        v, q = cfg.n_views, cfg.n_latents
        dtype = history_latents.dtype

        obs = self.obs_patch_embed(obs_images.to(dtype))  # (B, V, Np, D)
        if obs_patch_mask is not None:
            obs = torch.where(obs_patch_mask.unsqueeze(-1), self.mask_embed.to(obs.dtype), obs)
        obs = obs + self.view_embed.weight.unsqueeze(1)
        obs = self._tag(obs.flatten(1, 2), "obs_patches")  # (B, V*Np, D)

        hist = history_latents.unflatten(1, (cfg.max_history, v))  # (B, T, V, Q, D)
        hist = hist + self.view_embed.weight.unsqueeze(1)
        hist = self._tag(hist.flatten(1, 3), "history")  # (B, T*V*Q, D)

        prop = self.proprio_proj(proprio.to(dtype)).unsqueeze(1)
        prop = self._tag(prop, "proprio")  # (B, 1, D)

        hidden = torch.cat([obs, hist, prop], dim=1)
        always = torch.ones((b, v * cfg.n_patches + 1), dtype=torch.bool, device=hidden.device)
        mask = torch.cat(
            [
                always[:, :-1],  # observation patches
                history_mask.unsqueeze(-1).expand(b, cfg.max_history, v * q).flatten(1),
                always[:, -1:],  # proprio
            ],
            dim=1,
        )
        layout = self._layout(slice(cfg.prompt_seq_len, cfg.encoder_seq_len), b)
        return EncoderOutput(hidden, mask, *layout)
