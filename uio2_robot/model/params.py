"""Parameter counts and a JSON summary of a preset, without allocating any weights.

The model is built on the ``meta`` device, where tensors have shapes but no storage, so even
``xxl`` (6.5B parameters) is counted in well under a second.
"""

from __future__ import annotations

from typing import Any

import torch

from uio2_robot.model.config import ModelConfig, get_config
from uio2_robot.model.sequence import group_sizes, group_slices

# Which top-level submodule of UIO2Model belongs to which reported group.
_GROUP_OF = {
    "token_embed": "embeddings",
    "encoder_layers": "encoder",
    "encoder_norm": "encoder",
    "embedder": "encoder",  # patch/proprio projections and the learned tags
    "recon_head": "encoder",
    "decoder_layers": "decoder",
    "decoder_norm": "decoder",
    "resampler": "resampler",
}


def _as_config(cfg_or_name: ModelConfig | str) -> ModelConfig:
    if isinstance(cfg_or_name, ModelConfig):
        return cfg_or_name
    if isinstance(cfg_or_name, str):
        return get_config(cfg_or_name)
    raise ValueError(f"expected a ModelConfig or a preset name, got {type(cfg_or_name).__name__}")


def build_meta_model(cfg: ModelConfig) -> torch.nn.Module:
    """The model with shapes only (no memory, no init cost)."""
    from uio2_robot.model.uio2 import UIO2Model  # local: uio2 imports this package's config

    with torch.device("meta"):
        return UIO2Model(cfg)


def count_parameters(cfg_or_name: ModelConfig | str) -> dict[str, int]:
    """Parameters per group: encoder (layers, final norm, patch/proprio projections, learned
    tags, reconstruction head), decoder (layers, final norm), embeddings (the token table, tied
    with the output head), resampler (patch embedding, perceiver, projection), total.

    UIO2's "encoder + decoder + embeddings" figure is ``encoder + decoder + embeddings``.
    """
    model = build_meta_model(_as_config(cfg_or_name))
    counts = dict.fromkeys(("encoder", "decoder", "embeddings", "resampler"), 0)
    for name, p in model.named_parameters():
        top = name.split(".", 1)[0]
        if top not in _GROUP_OF:
            raise RuntimeError(f"parameter {name} belongs to no reported group")
        counts[_GROUP_OF[top]] += p.numel()
    counts["total"] = sum(counts.values())
    return counts


def model_info(name: str) -> dict[str, Any]:
    """What ``uio2-robot info model=NAME`` prints: config, parameter counts, sequence layout."""
    cfg = _as_config(name)
    counts = count_parameters(cfg)
    core = counts["encoder"] + counts["decoder"] + counts["embeddings"]
    return {
        "name": cfg.name,
        "config": cfg.to_dict(),
        "parameters": counts,
        "parameters_enc_dec_emb": core,
        "parameters_human": {k: _human(v) for k, v in counts.items()},
        "fp32_bytes": counts["total"] * 4,
        "encoder_seq_len": cfg.encoder_seq_len,
        "encoder_groups": {
            g: {"start": s.start, "stop": s.stop, "tokens": group_sizes(cfg)[g]}
            for g, s in group_slices(cfg).items()
        },
    }


def _human(n: int) -> str:
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(n)
