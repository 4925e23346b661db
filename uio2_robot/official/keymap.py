"""The one table from the released UIO2 state-dict keys to ``OfficialUIO2``'s.

Every official key either matches exactly one row of ``KEY_TABLE`` or starts with one of
``DROPPED_PREFIXES`` (audio inputs, the image and audio VQGANs, the image and audio token
tables: parts a text-output robot policy never runs). ``plan_mapping`` applies the table to a
release's key -> shape listing and refuses any key that is neither used nor deliberately
dropped, any project weight left without a source, and any shape that does not fit, naming
the key: a partial load would run silently wrong.

Rows with a ``part`` group concatenate several official tensors along dim 0 into one project
tensor (fused q/k/v projections, the SwiGLU's gate and up halves), in the row's order.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import torch

_VIT = r"input_embedders\.image\.image_encoder\.vision_transformer\."
_BLOCK = _VIT + r"transformer\.resblocks\.(?P<i>\d+)\."
_PERC = r"input_embedders\.image_history\.resampler\.perceiver\."
_PLAYER = _PERC + r"layers_(?P<i>\d+)\."
_ENC = r"encoder\.layers_(?P<i>\d+)\."
_DEC = r"decoder\.layers_(?P<i>\d+)\."


@dataclass(frozen=True)
class Row:
    """Official keys matching ``pattern`` fill the project key ``target`` (``{i}`` = the layer
    index). ``parts``: the values of the pattern's ``part`` group, concatenated in this order.
    ``reshape``: the project shape differs only by a reshape (the xxl ``logit_scale``)."""

    pattern: str
    target: str
    parts: tuple[str, ...] = ()
    reshape: bool = False


# fmt: off
KEY_TABLE: tuple[Row, ...] = (
    Row(r"text_token_embedder\.weight", "token_embed.weight"),
    Row(r"input_embedders\.text\.modality_embedding", "text_modality"),
    Row(r"input_embedders\.image\.modality_embedding", "image_modality"),
    Row(r"input_embedders\.image_history\.modality_embedding", "history_modality"),
    Row(r"target_embedders\.text\.modality_embedding", "target_text_modality"),
    # CLIP ViT
    Row(_VIT + r"class_embedding", "vit.class_embedding"),
    Row(_VIT + r"positional_embedding", "vit.positional_embedding"),
    Row(_VIT + r"embedding\.weight", "vit.embedding.weight"),
    Row(_VIT + r"pre_ln\.(?P<p>weight|bias)", "vit.pre_ln.{p}"),
    Row(_BLOCK + r"(?P<n>ln_1|ln_2)\.(?P<p>weight|bias)", "vit.blocks.{i}.{n}.{p}"),
    Row(_BLOCK + r"attn\.(?P<part>query|key|value)_in_proj_weight", "vit.blocks.{i}.wqkv.weight",
        ("query", "key", "value")),
    Row(_BLOCK + r"attn\.(?P<part>query|key|value)_in_proj_bias", "vit.blocks.{i}.wqkv.bias",
        ("query", "key", "value")),
    Row(_BLOCK + r"attn\.out_proj\.(?P<p>weight|bias)", "vit.blocks.{i}.out_proj.{p}"),
    Row(_BLOCK + r"mlp\.(?P<n>fc1|fc2)\.(?P<p>weight|bias)", "vit.blocks.{i}.mlp.{n}.{p}"),
    Row(r"input_embedders\.image\.projection\.weight", "image_projection.weight"),
    # image history: projections and the perceiver resampler
    Row(r"input_embedders\.image_history\.pre_projection\.weight",
        "history_pre_projection.weight"),
    Row(r"input_embedders\.image_history\.post_projection\.weight",
        "history_post_projection.weight"),
    Row(_PERC + r"latents", "resampler.latents"),
    Row(_PERC + r"context_norm\.scale", "resampler.context_norm.weight"),
    Row(_PERC + r"perceiver_norm\.scale", "resampler.norm.weight"),
    Row(_PLAYER + r"pre_xattention_norm\.scale", "resampler.layers.{i}.norm_latents.weight"),
    Row(_PLAYER + r"xattention\.query\.weight", "resampler.layers.{i}.attn.wq.weight"),
    Row(_PLAYER + r"xattention\.key\.weight", "resampler.layers.{i}.attn.wk.weight"),
    Row(_PLAYER + r"xattention\.value\.weight", "resampler.layers.{i}.attn.wv.weight"),
    Row(_PLAYER + r"xattention\.out\.weight", "resampler.layers.{i}.attn.wo.weight"),
    Row(_PLAYER + r"xattention\.query_norm\.scale", "resampler.layers.{i}.attn.q_norm.weight"),
    Row(_PLAYER + r"xattention\.key_norm\.scale", "resampler.layers.{i}.attn.k_norm.weight"),
    Row(_PLAYER + r"xattention\.logit_scale", "resampler.layers.{i}.attn.logit_scale",
        reshape=True),
    Row(_PLAYER + r"pre_mlp_norm\.scale", "resampler.layers.{i}.norm_mlp.weight"),
    Row(_PLAYER + r"mlp\.wi\.weight", "resampler.layers.{i}.mlp.fc1.weight"),
    Row(_PLAYER + r"mlp\.wo\.weight", "resampler.layers.{i}.mlp.fc2.weight"),
    # encoder
    Row(_ENC + r"pre_attention_norm\.scale", "encoder_layers.{i}.norm_attn.weight"),
    Row(_ENC + r"attention\.(?P<part>query|key|value)\.weight", "encoder_layers.{i}.attn.wqkv.weight",
        ("query", "key", "value")),
    Row(_ENC + r"attention\.query_norm\.scale", "encoder_layers.{i}.attn.q_norm.weight"),
    Row(_ENC + r"attention\.key_norm\.scale", "encoder_layers.{i}.attn.k_norm.weight"),
    Row(_ENC + r"attention\.out\.weight", "encoder_layers.{i}.attn.wo.weight"),
    Row(_ENC + r"pre_mlp_norm\.scale", "encoder_layers.{i}.norm_mlp.weight"),
    Row(_ENC + r"mlp\.(?P<part>wi_0|wi_1)\.weight", "encoder_layers.{i}.mlp.w_in.weight",
        ("wi_0", "wi_1")),
    Row(_ENC + r"mlp\.wo\.weight", "encoder_layers.{i}.mlp.w_out.weight"),
    Row(r"encoder\.encoder_norm\.scale", "encoder_norm.weight"),
    # decoder
    Row(_DEC + r"pre_self_attention_norm\.scale", "decoder_layers.{i}.norm_self.weight"),
    Row(_DEC + r"self_attention\.(?P<part>query|key|value)\.weight",
        "decoder_layers.{i}.self_attn.wqkv.weight", ("query", "key", "value")),
    Row(_DEC + r"self_attention\.query_norm\.scale", "decoder_layers.{i}.self_attn.q_norm.weight"),
    Row(_DEC + r"self_attention\.key_norm\.scale", "decoder_layers.{i}.self_attn.k_norm.weight"),
    Row(_DEC + r"self_attention\.out\.weight", "decoder_layers.{i}.self_attn.wo.weight"),
    Row(_DEC + r"pre_cross_attention_norm\.scale", "decoder_layers.{i}.norm_cross.weight"),
    Row(_DEC + r"encoder_decoder_attention\.query\.weight", "decoder_layers.{i}.cross_attn.wq.weight"),
    Row(_DEC + r"encoder_decoder_attention\.(?P<part>key|value)\.weight",
        "decoder_layers.{i}.cross_attn.wkv.weight", ("key", "value")),
    Row(_DEC + r"encoder_decoder_attention\.query_norm\.scale",
        "decoder_layers.{i}.cross_attn.q_norm.weight"),
    Row(_DEC + r"encoder_decoder_attention\.key_norm\.scale",
        "decoder_layers.{i}.cross_attn.k_norm.weight"),
    Row(_DEC + r"encoder_decoder_attention\.out\.weight", "decoder_layers.{i}.cross_attn.wo.weight"),
    Row(_DEC + r"pre_mlp_norm\.scale", "decoder_layers.{i}.norm_mlp.weight"),
    Row(_DEC + r"mlp\.(?P<part>wi_0|wi_1)\.weight", "decoder_layers.{i}.mlp.w_in.weight",
        ("wi_0", "wi_1")),
    Row(_DEC + r"mlp\.wo\.weight", "decoder_layers.{i}.mlp.w_out.weight"),
    Row(r"decoder\.decoder_norm\.scale", "decoder_norm.weight"),
)
# fmt: on

DROPPED_PREFIXES: tuple[str, ...] = (
    "image_token_embedder.",  # image output tokens (VQGAN codes): no image targets here
    "audio_token_embedder.",  # audio output tokens
    "input_embedders.audio.",  # audio input: its AST encoder and projection
    "input_embedders.audio_history.",  # audio history resampler
    "target_embedders.image.",  # image target embedding and the image VQGAN
    "target_embedders.audio.",  # audio target embedding and the audio ViT-VQGAN
)
"""Parts of a release that are deliberately not loaded; ``plan_mapping`` lists their keys."""

_COMPILED = tuple((re.compile(row.pattern), row) for row in KEY_TABLE)


@dataclass(frozen=True)
class Target:
    """One project weight: its shape, dtype and the official keys it is made of (in order)."""

    key: str
    sources: tuple[str, ...]
    shape: tuple[int, ...]
    reshape: bool = False


@dataclass(frozen=True)
class MappingPlan:
    targets: tuple[Target, ...]
    dropped: tuple[str, ...]  # official keys deliberately not loaded

    @property
    def used(self) -> set[str]:
        return {s for t in self.targets for s in t.sources}


def match(official_key: str) -> tuple[str, str | None, Row] | None:
    """(project key, concatenation part or None, row) of an official key; None if no row."""
    for regex, row in _COMPILED:
        m = regex.fullmatch(official_key)
        if m:
            groups = {k: v for k, v in m.groupdict().items() if k != "part" and v is not None}
            return row.target.format(**groups), m.groupdict().get("part"), row
    return None


def plan_mapping(
    official_shapes: Mapping[str, tuple[int, ...]],
    project_shapes: Mapping[str, tuple[int, ...]],
    source: str = "release",
) -> MappingPlan:
    """Check a release's keys and shapes against the project model's and say how to build
    every project weight. Raises a ValueError listing every problem (unmapped key, missing
    source, shape mismatch) with the key, the shapes and ``source`` (the file)."""
    problems: list[str] = []
    dropped: list[str] = []
    parts: dict[str, dict[str | None, str]] = {}
    rows: dict[str, Row] = {}
    for key in official_shapes:
        if key.startswith(DROPPED_PREFIXES):
            dropped.append(key)
            continue
        hit = match(key)
        if hit is None:
            problems.append(
                f"official key {key!r} {tuple(official_shapes[key])} is not in the key table"
            )
            continue
        target, part, row = hit
        if target not in project_shapes:
            problems.append(f"official key {key!r} maps to {target!r}, which the model lacks")
            continue
        parts.setdefault(target, {})[part] = key
        rows[target] = row
    targets = []
    for target, want in project_shapes.items():
        if target not in parts:
            problems.append(
                f"model weight {target!r} {tuple(want)} has no official key in {source}"
            )
            continue
        row = rows[target]
        order = row.parts if row.parts else (None,)
        missing = [p for p in order if p not in parts[target]]
        if missing:
            problems.append(f"model weight {target!r} lacks official parts {missing} in {source}")
            continue
        sources = tuple(parts[target][p] for p in order)
        shapes = [tuple(official_shapes[s]) for s in sources]
        got = _combined_shape(shapes)
        ok = got == tuple(want) or (
            row.reshape and got is not None and math.prod(got) == math.prod(tuple(want))
        )
        if not ok:
            problems.append(
                f"shape mismatch for {target!r}: official {dict(zip(sources, shapes, strict=True))} "
                f"-> {got}, the model (from config.json) expects {tuple(want)}"
            )
            continue
        targets.append(Target(target, sources, tuple(want), row.reshape))
    if problems:
        raise ValueError(
            f"{source}: {len(problems)} problem(s) mapping official keys:\n  "
            + "\n  ".join(problems)
        )
    return MappingPlan(tuple(targets), tuple(sorted(dropped)))


def build_tensor(target: Target, get: Callable[[str], torch.Tensor]) -> torch.Tensor:
    """The project tensor of ``target`` from its official sources (``get(key)``)."""
    tensors = [get(key) for key in target.sources]
    out = tensors[0] if len(tensors) == 1 else torch.cat(tensors, dim=0)
    if target.reshape:
        out = out.reshape(target.shape)
    return out.contiguous()


def _combined_shape(shapes: Iterable[tuple[int, ...]]) -> tuple[int, ...] | None:
    shapes = list(shapes)
    if len(shapes) == 1:
        return shapes[0]
    if any(s[1:] != shapes[0][1:] for s in shapes):
        return None
    return (sum(s[0] for s in shapes), *shapes[0][1:])
