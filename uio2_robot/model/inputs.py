"""The tensors the network takes: the contract between prompt building and the encoder.

Everything is padded to static maximum sizes with boolean masks, so the encoder is one pure
tensor function (exportable to ONNX as it is) and batches of different episodes stack.

Encoder sequence, in this order (UIO2 joins every modality into one encoder sequence):

1. prompt tokens: paradigm prefix + text tokens of the interleaved prompt. Where the prompt
   has an image segment the token is an image marker ``<img_k>`` (a modality token, k = index
   into ``prompt_images``). 1D RoPE positions.
2. prompt image latents: each prompt image is patch-embedded and resampled by the perceiver
   resampler to ``n_latents`` tokens; 2D RoPE positions (image k, latent l), plus the learned
   prompt-image index embedding k that the marker ``<img_k>`` also carries.
3. current observation patches: one grid per camera view; 2D RoPE (row, column) plus a learned
   view embedding.
4. history latents: past observation frames resampled to ``n_latents`` each; 2D RoPE
   (frame t, latent l).
5. proprio: one token from the normalised proprio vector.

Each group also adds its learned modality embedding.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch


@dataclass
class EncoderInputs:
    """A batch of encoder inputs. Shapes: B batch, L prompt tokens, K prompt images, V views,
    T history frames, P proprio dims. Images are float32, normalised to [-1, 1], channels first.
    """

    tokens: torch.Tensor  # (B, L) int64 vocabulary ids
    token_mask: torch.Tensor  # (B, L) bool, True = real token
    prompt_images: torch.Tensor  # (B, K, 3, Hp, Wp) float32
    prompt_image_mask: torch.Tensor  # (B, K) bool
    obs_images: torch.Tensor  # (B, V, 3, H, W) float32, current frame per view
    history_images: torch.Tensor  # (B, T, V, 3, H, W) float32, oldest first
    history_mask: torch.Tensor  # (B, T) bool
    proprio: torch.Tensor  # (B, P) float32, normalised

    def to(self, device: torch.device | str) -> EncoderInputs:
        return EncoderInputs(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    @property
    def batch_size(self) -> int:
        return int(self.tokens.shape[0])

    def as_tuple(self) -> tuple[torch.Tensor, ...]:
        """Positional order used by the exported encoder graph."""
        return tuple(getattr(self, f.name) for f in fields(self))

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))
