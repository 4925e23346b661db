"""The ONNX graphs of a deploy bundle, exported with torch's dynamo exporter.

- **encoder**: ``EncoderInputs`` fields -> ``cross_k, cross_v`` (n_dec_layers, B, H, S, Dh) and
  ``enc_mask`` (B, S). ``UIO2Model.encode`` and ``precompute_cross_kv`` are fused into one graph,
  which saves a session hop and never materialises the encoder hidden states on the host.
- **decoder_step**: one token with an explicit self-attention KV cache
  (``UIO2Model.decode_step``): the cache goes in with length Lc and comes out with Lc + 1.
  Batch and cache length are dynamic axes, so one graph serves every step of any batch.
- **decoder_greedy**: (cross_k, cross_v, enc_mask, allowed) -> every action token of a control
  step and the logits of the action-bin ids (``UIO2Model.greedy_decode``: the decoder loop
  unrolled with the argmax inside, the output head cut to the action bins). One session call
  instead of one per token: on the CPU no per-call overhead and no cache trips through numpy, on
  a GPU no host round trip between tokens. ``decoder_step`` stays for longer or unconstrained
  decoding.
- **decoder_guided** (prefix models with prompt scenes): decoder_greedy plus two inputs,
  ``pick_patch`` (K, K) and ``place_rows`` (B, Np + 1, 2, K), that apply scene-guided placement
  between tokens (``uio2_robot.runtime.guidance``): the place tokens are confined once the pick is
  decoded, in the same single call.

A prefix-encoding model (``ModelConfig.prompt_prefix``) also gets its encoder in two halves:

- **prompt_encoder**: the prompt inputs -> the prompt's keys/values at every encoder layer,
  its mask and its decoder cross K/V (``UIO2Model.encode_prompt``), once per episode;
- **step_encoder**: the step inputs + that prompt cache -> ``cross_k, cross_v, enc_mask`` over
  [prompt; step] (``UIO2Model.encode_step``), once per control step: the same outputs as the
  encoder graph, for about half its work.

The encoder and prompt_encoder graphs take the three prompt-scene inputs only when the model
has scene slots (``uio2_robot.runtime.manifest.encoder_input_names``); otherwise they fill
zero-sized scene tensors inside the graph, so older bundles keep their exact inputs.

All wrap the model's own methods, so there is no second implementation of the network to keep
in step; parity with eager torch is checked by ``uio2_robot.export.parity``.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import onnx
import torch
from torch import Tensor, nn

from uio2_robot.model.config import ModelConfig
from uio2_robot.model.inputs import PROMPT_FIELDS, EncoderInputs, random_encoder_inputs
from uio2_robot.model.sequence import EncoderOutput, group_slices
from uio2_robot.model.uio2 import PromptCache, UIO2Model
from uio2_robot.runtime.guidance import PICK_DIMS, PLACE_DIMS
from uio2_robot.runtime.manifest import (
    DECODER_INPUTS,
    DECODER_OUTPUTS,
    ENCODER_OUTPUTS,
    GREEDY_INPUTS,
    GREEDY_OUTPUTS,
    GUIDED_INPUTS,
    OBSERVATION_INPUTS,
    OPSET,
    PROMPT_OUTPUTS,
    STEP_INPUTS,
    encoder_input_names,
    graph_io_names,
    prompt_input_names,
)

MAX_BATCH = 1024
"""Upper bound of the dynamic batch axis (torch.export wants a finite range)."""
EXTERNAL_DATA_BYTES = 1_800_000_000
"""Above this many weight bytes a graph keeps its weights in a side file (protobuf's 2 GB cap)."""

_WITH_SCENES = {"max_prompt_scenes": 1}
# the manifest spells the names out for torch-free readers
if (EncoderInputs.names(), PROMPT_FIELDS) != (
    encoder_input_names(_WITH_SCENES),
    prompt_input_names(_WITH_SCENES),
):
    raise ImportError(
        f"EncoderInputs fields {EncoderInputs.names()} (prompt: {PROMPT_FIELDS}) differ from the "
        f"bundle contract {encoder_input_names(_WITH_SCENES)} in uio2_robot.runtime.manifest; "
        "update both together"
    )


class _ModelGraph(nn.Module):
    """A graph wrapper: ``forward`` is one pure function of tensors over ``self.model``."""

    def __init__(self, model: UIO2Model) -> None:
        super().__init__()
        self.model = model


def graph_inputs(
    cfg: ModelConfig, names: Sequence[str], args: Sequence[Tensor]
) -> dict[str, Tensor]:
    """A graph's positional inputs by name; a model without prompt-scene slots gets zero-sized
    scene tensors, their batch axis taken from ``tokens`` so it stays dynamic."""
    if len(args) != len(names):
        raise TypeError(f"expected the {len(names)} inputs {tuple(names)}, got {len(args)}")
    values = dict(zip(names, args, strict=True))
    if not cfg.max_prompt_scenes:
        tokens = values["tokens"]
        b, (h, w) = tokens.shape[0], cfg.image_hw
        values["scene_images"] = values["prompt_images"].new_zeros((b, 0, 3, h, w))
        values["scene_image_mask"] = values["token_mask"].new_zeros((b, 0))
        values["scene_image_index"] = tokens.new_zeros((b, 0))
    return values


class EncoderGraph(_ModelGraph):
    """encode + precompute_cross_kv as one pure function of the EncoderInputs tensors
    (``input_names``: without the scene inputs for a model without prompt scenes).

    With ``compact`` (the default) the graph drops the encoder positions that are padding in
    every batch row (unused prompt tokens, absent prompt images, history slots not yet filled)
    right after embedding, so the transformer layers run on the S' real tokens instead of the
    static S. This is exact: a padded key gets a zero softmax weight in the encoder and in
    cross-attention, and a padded query's output is never read. Only the float summation order
    changes (~1e-6 on the logits). The outputs' encoder axis is then dynamic (``enc_len``).
    """

    def __init__(self, model: UIO2Model, compact: bool = True) -> None:
        super().__init__(model)
        self.compact = compact
        self.input_names = encoder_input_names(model.cfg.to_dict())

    def forward(self, *args: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``args``: the tensors of ``input_names`` (shapes in ``EncoderInputs``), in order."""
        inputs = EncoderInputs(**graph_inputs(self.model.cfg, self.input_names, args))
        emb = self.model.embed(inputs)  # hidden (B, S, D), mask (B, S), positions (B, S, 2)
        if self.compact:
            cfg = self.model.cfg
            # observation patches and proprio are never padding: a lower bound for the tracer
            emb, keep = drop_padding(emb, lower_bound=cfg.n_views * cfg.n_patches + 1)
            is_prompt = keep < cfg.prompt_seq_len  # where the prefix mask applies
        else:
            is_prompt = None
        enc = self.model.encode_embedded(emb, is_prompt=is_prompt)
        cross_k, cross_v = self.model.precompute_cross_kv(enc.hidden, enc.positions, enc.rope_2d)
        return cross_k, cross_v, enc.mask  # (n_dec, B, H, S', Dh) x2, (B, S')


def drop_padding(emb: EncoderOutput, lower_bound: int) -> tuple[EncoderOutput, Tensor]:
    """Keep the positions that are real in some batch row (exact: see ``EncoderGraph``); also
    returns their indices (S',). ``lower_bound`` on S' is what the tracer may assume."""
    keep = torch.nonzero(emb.mask.any(0)).squeeze(1)
    torch._check(keep.shape[0] >= lower_bound)  # bounds for the tracer's symbolic size
    torch._check(keep.shape[0] <= emb.mask.shape[1])
    return EncoderOutput(*(t.index_select(1, keep) for t in emb)), keep


class PromptEncoderGraph(_ModelGraph):
    """``encode_prompt`` of the prompt without its padding: (prompt_k, prompt_v, prompt_mask,
    prompt_cross_k, prompt_cross_v), the prompt axis dynamic (``prompt_len``). Inputs:
    ``input_names`` (the scene inputs only for a model with prompt scenes)."""

    def __init__(self, model: UIO2Model) -> None:
        super().__init__(model)
        self.input_names = prompt_input_names(model.cfg.to_dict())

    def forward(self, *args: Tensor) -> tuple[Tensor, ...]:
        cfg = self.model.cfg
        values = graph_inputs(cfg, self.input_names, args)
        emb = self.model.embed_prompt(*(values[name] for name in PROMPT_FIELDS))
        # every prompt starts with its paradigm and target-modality tokens (tokenize.prompt)
        compact, keep = drop_padding(emb, lower_bound=2)
        cache, hidden = self.model.encode_prompt(compact)
        if not cfg.max_prompt_scenes:
            return tuple(cache)
        # the first scene's patches where padding was dropped before them; a batch without any
        # scene has none to find, so clamp (those rows are never read: scene_image_mask says so)
        first = (keep < group_slices(cfg)["prompt_scenes"].start).sum()
        index = (first + torch.arange(cfg.n_patches, device=keep.device)).clamp(
            max=hidden.shape[1] - 1
        )
        return (*cache, hidden.index_select(1, index))  # + scene_states (B, Np, D)


class StepEncoderGraph(_ModelGraph):
    """``encode_step``: the step inputs + a prompt cache -> (cross_k, cross_v, enc_mask)."""

    def forward(
        self,
        obs_images: Tensor,  # (B, V, 3, H, W) float32
        history_images: Tensor,  # (B, T, V, 3, H, W) float32
        history_mask: Tensor,  # (B, T) bool
        proprio: Tensor,  # (B, P) float32
        prompt_k: Tensor,  # (n_enc, B, H, Sp, Dh)
        prompt_v: Tensor,
        prompt_mask: Tensor,  # (B, Sp) bool
        prompt_cross_k: Tensor,  # (n_dec, B, H, Sp, Dh)
        prompt_cross_v: Tensor,
    ) -> tuple[Tensor, ...]:
        emb = self.model.embed_step(obs_images, history_images, history_mask, proprio)
        cache = PromptCache(prompt_k, prompt_v, prompt_mask, prompt_cross_k, prompt_cross_v)
        cross_k, cross_v, enc_mask, hidden = self.model.encode_step(cache, emb)
        if not self.model.cfg.max_prompt_scenes:
            return cross_k, cross_v, enc_mask
        # + obs_states (B, Np, D): the step starts with view 0's observation patches
        return cross_k, cross_v, enc_mask, hidden[:, : self.model.cfg.n_patches]


class DecoderStepGraph(_ModelGraph):
    """UIO2Model.decode_step: (token, position, cache, cross K/V, mask) -> (logits, cache + 1)."""

    def forward(
        self,
        token: Tensor,  # (B, 1) int64
        position: Tensor,  # (B,) int64
        self_k: Tensor,  # (n_dec, B, H, Lc, Dh)
        self_v: Tensor,
        cross_k: Tensor,  # (n_dec, B, H, S, Dh)
        cross_v: Tensor,
        enc_mask: Tensor,  # (B, S) bool
    ) -> tuple[Tensor, Tensor, Tensor]:
        return self.model.decode_step(token, position, self_k, self_v, cross_k, cross_v, enc_mask)


class GreedyDecoderGraph(_ModelGraph):
    """UIO2Model.greedy_decode for a fixed ``n_tokens`` over the ids lo..hi-1: (cross K/V,
    mask, allowed ids as a (V,) bool mask) -> (tokens (B, n) int64, logits (B, n, hi - lo))."""

    def __init__(self, model: UIO2Model, n_tokens: int, bos_id: int, ids: tuple[int, int]) -> None:
        super().__init__(model)
        self.n_tokens = n_tokens
        self.bos_id = bos_id
        self.ids = ids

    def forward(
        self,
        cross_k: Tensor,  # (n_dec, B, H, S, Dh)
        cross_v: Tensor,
        enc_mask: Tensor,  # (B, S) bool
        allowed: Tensor,  # (V,) bool
    ) -> tuple[Tensor, Tensor]:
        return self.model.greedy_decode(
            cross_k, cross_v, enc_mask, allowed, self.n_tokens, self.bos_id, self.ids
        )


class GuidedDecoderGraph(GreedyDecoderGraph):
    """GreedyDecoderGraph with scene-guided placement: (..., allowed, pick_patch (K, K) int64,
    place_rows (B, Np + 1, 2, K) bool) -> the same outputs (``greedy_decode``'s ``guide``)."""

    def forward(  # type: ignore[override]
        self,
        cross_k: Tensor,
        cross_v: Tensor,
        enc_mask: Tensor,
        allowed: Tensor,
        pick_patch: Tensor,
        place_rows: Tensor,
    ) -> tuple[Tensor, Tensor]:
        return self.model.greedy_decode(
            cross_k,
            cross_v,
            enc_mask,
            allowed,
            self.n_tokens,
            self.bos_id,
            self.ids,
            guide=(pick_patch, place_rows),
            guide_dims=(PICK_DIMS, PLACE_DIMS),
        )


def _weight_bytes(model: nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in model.state_dict().values())


def _export(
    module: nn.Module,
    args: tuple[Tensor, ...],
    path: Path,
    input_names: tuple[str, ...],
    output_names: tuple[str, ...],
    dynamic_shapes: dict[str, Any],
    rename: dict[str, str] | None = None,
) -> Path:
    """torch.onnx.export(dynamo=True) at the pinned opset, then onnx.checker on the file.

    ``dynamic_shapes`` is keyed by ``forward``'s parameters: a ``*args`` forward takes
    ``{"args": (one spec per input, ...)}``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    external = _weight_bytes(module) > EXTERNAL_DATA_BYTES
    # The exporter logs one warning per torchvision op it cannot register (torchvision is not a
    # dependency) and warns when two axes share a Dim name ("batch" everywhere, intended).
    registry_log = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registry_log.level
    registry_log.setLevel(logging.ERROR)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*axis name.*will not be used.*")
            warnings.filterwarnings("ignore", category=FutureWarning)
            program = torch.onnx.export(
                module.eval(),
                args,
                dynamo=True,
                opset_version=OPSET,
                input_names=list(input_names),
                output_names=list(output_names),
                dynamic_shapes=dynamic_shapes,
                optimize=True,
                verbose=False,
            )
    finally:
        registry_log.setLevel(level)
    if program is None:  # pragma: no cover - dynamo=True always returns a program
        raise RuntimeError("torch.onnx.export returned no ONNX program")
    program.save(str(path), external_data=external)
    proto = onnx.load(str(path), load_external_data=False)  # weights stay where they are
    changed = _rename_dims(proto.graph, rename or {})
    if not external:
        changed |= fold_weight_transposes(proto.graph)
    if changed:
        onnx.save(proto, str(path))
    # check_model on the path also works for graphs with external data (> 2 GB)
    onnx.checker.check_model(str(path), full_check=True)
    return path


export_graph = _export
"""The exporter above under a public name, for graphs of other models (uio2_robot.official)."""


def _rename_dims(graph: onnx.GraphProto, names: dict[str, str]) -> bool:
    """Rename symbolic dimensions (torch.export calls a data-dependent size ``u0``)."""
    changed = False
    for value in [*graph.input, *graph.output, *graph.value_info]:
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param in names:
                dim.dim_param = names[dim.dim_param]
                changed = True
    return changed


def fold_weight_transposes(graph: onnx.GraphProto) -> bool:
    """Replace ``Transpose(weight initializer)`` nodes by the transposed initializer.

    The exporter leaves a linear layer's ``W^T`` as a Transpose node when the layer is called
    more than once in the graph (the unrolled greedy decoder calls each six times). onnxruntime
    folds it at load anyway, but quantisers only quantise MatMuls whose weight is an
    initializer, so an unfolded graph silently stayed fp32 in an int8 bundle. Same weights,
    same count: each transposed copy replaces its original when nothing else reads that.
    """
    from onnx import numpy_helper

    inits = {t.name: t for t in graph.initializer}
    readers: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            readers[name] = readers.get(name, 0) + 1
    folded = []
    for node in graph.node:
        if node.op_type != "Transpose" or node.input[0] not in inits:
            continue
        perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), None)
        weight = numpy_helper.to_array(inits[node.input[0]])
        graph.initializer.append(
            numpy_helper.from_array(weight.transpose(perm).copy(), node.output[0])
        )
        readers[node.input[0]] -= 1
        folded.append(node)
    for node in folded:
        graph.node.remove(node)
    unread = {name for name, n in readers.items() if n == 0 and name in inits}
    keep = [t for t in graph.initializer if t.name not in unread]
    if unread:
        del graph.initializer[:]
        graph.initializer.extend(keep)
    return bool(folded)


def export_encoder(model: UIO2Model, path: str | Path, compact: bool = True) -> Path:
    """Export the fused encoder graph (dynamic batch; with ``compact`` a dynamic encoder
    length ``enc_len``, see ``EncoderGraph``) to ``path``."""
    cfg = model.cfg
    example = random_encoder_inputs(cfg, batch_size=2, generator=torch.Generator().manual_seed(0))
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    graph = EncoderGraph(model, compact)
    names = graph.input_names
    # some padding in the example, so the traced graph does not assume a full sequence
    example.token_mask[:, cfg.max_prompt_tokens // 2 :] = False
    example.scene_image_mask[1:] = False
    return _export(
        graph,
        _example_args(example, names),
        Path(path),
        names,
        ENCODER_OUTPUTS,
        {"args": tuple({0: batch} for _ in names)},
        rename={"u0": "enc_len"} if compact else None,
    )


def export_decoder_step(model: UIO2Model, path: str | Path) -> Path:
    """Export the decoder-step graph (dynamic batch and cache length) to ``path``.

    The example cache has length 2 (torch.export specialises example sizes 0 and 1); the range
    still starts at 0, the empty cache of the first step. The encoder length is dynamic too
    (``enc_len``: the compacted encoder drops padding).
    """
    cfg = model.cfg
    b, lc = 2, 2
    dtype = next(model.parameters()).dtype
    g = torch.Generator().manual_seed(0)
    cache = (cfg.n_dec_layers, b, cfg.n_heads, lc, cfg.head_dim)
    args = (
        torch.zeros(b, 1, dtype=torch.int64),
        torch.full((b,), lc, dtype=torch.int64),
        torch.randn(cache, generator=g, dtype=dtype),
        torch.randn(cache, generator=g, dtype=dtype),
        *_cross_example(model, b),
    )
    cross = _cross_dynamic(cfg)
    batch = cross["enc_mask"][0]
    length = torch.export.Dim("cache", min=0, max=cfg.max_dec_len)
    dynamic = {  # in argument order: the exporter matches these to the inputs by position
        "token": {0: batch},
        "position": {0: batch},
        "self_k": {1: batch, 3: length},
        "self_v": {1: batch, 3: length},
        **cross,
    }
    return _export(
        DecoderStepGraph(model), args, Path(path), DECODER_INPUTS, DECODER_OUTPUTS, dynamic
    )


def _cross_example(model: UIO2Model, batch: int = 2) -> tuple[Tensor, Tensor, Tensor]:
    """Random cross K/V and an all-real mask over S - 1 encoder positions (any S' <= S; S - 1
    keeps the tracer from specialising the axis to the static length)."""
    cfg = model.cfg
    s = cfg.encoder_seq_len - 1
    dtype = next(model.parameters()).dtype
    g = torch.Generator().manual_seed(0)
    cross = (cfg.n_dec_layers, batch, cfg.n_heads, s, cfg.head_dim)
    return (
        torch.randn(cross, generator=g, dtype=dtype),
        torch.randn(cross, generator=g, dtype=dtype),
        torch.ones(batch, s, dtype=torch.bool),
    )


def _cross_dynamic(cfg: ModelConfig) -> dict[str, dict[int, torch.export.Dim]]:
    """Dynamic axes of cross_k, cross_v and enc_mask: batch and the (compacted) encoder length."""
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    enc_len = torch.export.Dim(
        "enc_len", min=cfg.n_views * cfg.n_patches + 1, max=cfg.encoder_seq_len
    )
    return {
        "cross_k": {1: batch, 3: enc_len},
        "cross_v": {1: batch, 3: enc_len},
        "enc_mask": {0: batch, 1: enc_len},
    }


def export_greedy_decoder(
    model: UIO2Model, path: str | Path, n_tokens: int, bos_id: int, ids: tuple[int, int]
) -> Path:
    """Export ``decoder_greedy``: ``n_tokens`` after ``bos_id``, each one of the ids lo..hi-1
    (``ids``, the action bins), dynamic batch and encoder length, to ``path``."""
    cfg = model.cfg
    if not 1 <= n_tokens <= cfg.max_dec_len:
        raise ValueError(f"n_tokens must be in [1, {cfg.max_dec_len}], got {n_tokens}")
    if not 0 <= ids[0] < ids[1] <= cfg.vocab_size:
        raise ValueError(f"ids must be a range within [0, {cfg.vocab_size}), got {ids}")
    allowed = torch.ones(cfg.vocab_size, dtype=torch.bool)
    return _export(
        GreedyDecoderGraph(model, n_tokens, bos_id, ids),
        (*_cross_example(model), allowed),
        Path(path),
        GREEDY_INPUTS,
        GREEDY_OUTPUTS,
        {**_cross_dynamic(cfg), "allowed": {}},
    )


def export_guided_decoder(
    model: UIO2Model, path: str | Path, n_tokens: int, bos_id: int, ids: tuple[int, int]
) -> Path:
    """Export ``decoder_guided``: ``export_greedy_decoder``'s graph with the guidance tables as
    two more inputs (dynamic batch and encoder length; K = hi - lo and Np fixed)."""
    cfg = model.cfg
    if not PLACE_DIMS[1] < n_tokens <= cfg.max_dec_len:
        raise ValueError(f"guidance needs n_tokens in ({PLACE_DIMS[1]}, {cfg.max_dec_len}]")
    k = ids[1] - ids[0]
    allowed = torch.ones(cfg.vocab_size, dtype=torch.bool)
    # example tables that route the picks to different rows, so no index is traced as constant
    pick_patch = torch.arange(k * k).reshape(k, k) % (cfg.n_patches + 1)
    place_rows = torch.rand(2, cfg.n_patches + 1, 2, k, generator=torch.Generator().manual_seed(0))
    cross = _cross_example(model)
    dynamic = _cross_dynamic(cfg)
    return _export(
        GuidedDecoderGraph(model, n_tokens, bos_id, ids),
        (*cross, allowed, pick_patch, place_rows > 0.2),
        Path(path),
        GUIDED_INPUTS,
        GREEDY_OUTPUTS,
        {**dynamic, "allowed": {}, "pick_patch": {}, "place_rows": {0: dynamic["cross_k"][1]}},
    )


def _example_args(example: EncoderInputs, names: Sequence[str]) -> tuple[Tensor, ...]:
    return tuple(getattr(example, name) for name in names)


def _prompt_example(model: UIO2Model) -> tuple[EncoderInputs, PromptCache]:
    """Example inputs with padding (so nothing is traced as always-real) and their cache."""
    cfg = model.cfg
    example = random_encoder_inputs(cfg, batch_size=2, generator=torch.Generator().manual_seed(0))
    example.token_mask[:, cfg.max_prompt_tokens // 2 :] = False
    example.scene_image_mask[1:] = False
    graph = PromptEncoderGraph(model).eval()
    with torch.no_grad():
        cache = PromptCache(
            *graph(*_example_args(example, graph.input_names))[: len(PROMPT_OUTPUTS)]
        )
    return example, cache


def export_prompt_encoder(model: UIO2Model, path: str | Path) -> Path:
    """Export the prompt half of a prefix model's encoder (dynamic batch, ``prompt_len``)."""
    example, _ = _prompt_example(model)
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    graph = PromptEncoderGraph(model)
    names = graph.input_names
    return _export(
        graph,
        _example_args(example, names),
        Path(path),
        names,
        graph_io_names("prompt_encoder", model.cfg.to_dict())[1],
        {"args": tuple({0: batch} for _ in names)},
        rename={"u0": "prompt_len"},
    )


def export_step_encoder(model: UIO2Model, path: str | Path) -> Path:
    """Export the step half of a prefix model's encoder (dynamic batch and ``prompt_len``)."""
    cfg = model.cfg
    example, cache = _prompt_example(model)
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    prompt_len = torch.export.Dim("prompt_len", min=2, max=cfg.prompt_seq_len)
    cached = {3: prompt_len, 1: batch}
    dynamic = {
        "obs_images": {0: batch},
        "history_images": {0: batch},
        "history_mask": {0: batch},
        "proprio": {0: batch},
        "prompt_k": cached,
        "prompt_v": cached,
        "prompt_mask": {0: batch, 1: prompt_len},
        "prompt_cross_k": cached,
        "prompt_cross_v": cached,
    }
    return _export(
        StepEncoderGraph(model),
        (*_example_args(example, OBSERVATION_INPUTS), *cache),
        Path(path),
        STEP_INPUTS,
        graph_io_names("step_encoder", model.cfg.to_dict())[1],
        dynamic,
    )
