"""Training objectives: action cross-entropy and UIO2's multimodal mixture of denoisers.

Every term runs with its own paradigm prefix (tokens 0 and 1 of the prompt, see
``uio2_robot.tokenize.prompt``), either on the whole batch with the total
``sum(weight * term)`` (``assignment="all"``), or, as UIO2 samples its mixture, on the examples
drawn for it (``assignment="split"``: one forward pass over the batch in all, total = mean over
examples):

==========  ===================  ==============================================================
term        prefix               what
==========  ===================  ==============================================================
s_action    ``[S] [Action]``     causal generation of the action tokens (teacher forcing,
                                 decoder input = BOS + targets[:-1]); the policy's objective
r_image     ``[R] [Image]``      masked denoising of the current observation: a fraction of
                                 the obs patches is replaced by the mask embedding in the
                                 encoder, MSE on the masked patches' pixels (MAE-style)
x_text      ``[X] [Text]``       extreme corruption: T5 span corruption of the prompt text at a
                                 high rate with long spans; the decoder writes
                                 ``<extra_id_0> span_0 <extra_id_1> span_1 ... <eos>``
r_text      ``[R] [Text]``       masked denoising with *autoregressive dynamic masking*: a few
                                 text spans are dropped from the encoder (token_mask False),
                                 the decoder regenerates the whole prompt (markers included);
                                 dropped tokens are hidden from later decoder steps
                                 (``masking.dynamic_self_attn_mask``), loss on them only
s_text      ``[S] [Text]``       causal generation of the prompt text from the other
                                 modalities (all text dropped from the encoder, image markers
                                 kept), loss on every target token
==========  ===================  ==============================================================

Image markers ``<img_k>`` are never corrupted (they tie words to pictures). Text targets longer
than the model's ``max_dec_len`` are cut there. Cross-entropy is the mean over all target tokens
of the batch, so a packed batch (``MixtureConfig.pack``) gives the same loss as an unpacked one.

Randomness comes only from the ``generator`` argument (a CPU ``torch.Generator``), so a step is
reproducible from its seed.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from uio2_robot.model.inputs import EncoderInputs
from uio2_robot.model.sequence import EncoderOutput
from uio2_robot.tokenize.prompt import PREFIX_LEN
from uio2_robot.tokenize.vocab import Vocabulary
from uio2_robot.train.batching import (
    ACTION_MASK,
    ACTION_TOKENS,
    POINT_TARGETS,
    batch_to_torch,
    encoder_inputs_from_numpy,
)
from uio2_robot.train.config import TERMS, MixtureConfig
from uio2_robot.train.masking import (
    dynamic_self_attn_mask,
    random_patch_mask,
    shift_right,
    span_corrupt,
    span_noise_mask,
)
from uio2_robot.train.packing import pack_decoder, pack_encoder, plan_packs, unpack_encoder

PREFIXES = {
    "s_action": ("S", "action"),
    "r_image": ("R", "image"),
    "x_text": ("X", "text"),
    "r_text": ("R", "text"),
    "s_text": ("S", "text"),
}


class SequenceLoss(NamedTuple):
    loss: Tensor  # scalar: mean CE over the target tokens with loss_mask True
    n_tokens: int
    accuracy: Tensor  # scalar, detached: argmax == target over the same tokens


def compute_losses(
    model: torch.nn.Module,
    batch: Mapping[str, np.ndarray | Tensor],
    cfg: MixtureConfig,
    generator: torch.Generator | None,
    vocab: Vocabulary,
) -> dict[str, Tensor]:
    """Every active term of the mixture and their total under ``"loss"`` (see
    ``MixtureConfig.assignment`` for how the batch is shared and the total weighted).

    ``batch``: the encoder inputs (prompts built by ``Processor.encode_prompt``, so position 0/1
    hold a paradigm prefix) plus ``action_tokens`` (B, N) and optional ``action_mask`` (see
    ``uio2_robot.train.batching``); numpy arrays or tensors. Also returns
    ``s_action_accuracy`` (detached) when the action term is active. A text term whose batch has
    no text is left out of the dict and of the total.
    """
    if not isinstance(cfg, MixtureConfig):
        raise ValueError(f"cfg must be a MixtureConfig, got {type(cfg).__name__}")
    device = next(model.parameters()).device
    tensors = batch_to_torch(batch, device)
    inputs = encoder_inputs_from_numpy(tensors)
    check_prefix(inputs.tokens, vocab)
    active = [t for t in TERMS if getattr(cfg, t) > 0]
    if cfg.assignment == "all":
        subsets = {t: (inputs, tensors) for t in active}
    else:
        subsets = _split_batch(inputs, tensors, active, cfg, generator)
    out: dict[str, Tensor] = {}
    parts: list[tuple[str, Tensor, float]] = []  # (term, loss, weight in the total)
    for term, (sub_inputs, sub_tensors) in subsets.items():
        result = _TERM_FNS[term](model, sub_inputs, sub_tensors, cfg, generator, vocab)
        if result is None:
            continue
        if isinstance(result, SequenceLoss):
            loss = result.loss
            if term == "s_action":
                out["s_action_accuracy"] = result.accuracy
        else:
            loss = result
        out[term] = loss
        share = float(getattr(cfg, term)) if cfg.assignment == "all" else sub_inputs.batch_size
        parts.append((term, loss, share))
    if not parts:
        raise ValueError(
            "no active loss term had targets in this batch (text terms need prompt text)"
        )
    if cfg.assignment == "split":  # the mean over the examples that produced a loss
        n = sum(share for _, _, share in parts)
        parts = [(t, loss, share / n) for t, loss, share in parts]
    total = parts[0][2] * parts[0][1]
    for _, loss, share in parts[1:]:
        total = total + share * loss
    out["loss"] = total
    return out


def _split_batch(
    inputs: EncoderInputs,
    tensors: dict[str, Tensor],
    active: list[str],
    cfg: MixtureConfig,
    generator: torch.Generator | None,
) -> dict[str, tuple[EncoderInputs, dict[str, Tensor]]]:
    """UIO2's sampling: each example goes to one term, drawn with probability ~ its weight."""
    b = inputs.batch_size
    probs = torch.tensor([float(getattr(cfg, t)) for t in active])
    assign = torch.multinomial(probs, b, replacement=True, generator=generator)  # (B,)
    out = {}
    for i, term in enumerate(active):
        idx = torch.nonzero(assign == i, as_tuple=False).flatten()
        if idx.numel() == 0:
            continue
        idx = idx.to(inputs.tokens.device)
        sub = EncoderInputs(**{n: getattr(inputs, n)[idx] for n in EncoderInputs.names()})
        out[term] = (sub, {k: v[idx] for k, v in tensors.items() if v.dim() and v.shape[0] == b})
    return out


# ---- shared pieces ------------------------------------------------------------------------------
def check_prefix(tokens: Tensor, vocab: Vocabulary) -> None:
    """Raise unless every row starts with ``[paradigm] [modality]`` (Processor prompts do)."""
    if tokens.dim() != 2 or tokens.shape[1] < PREFIX_LEN:
        raise ValueError(f"tokens must be (B, L) with L >= {PREFIX_LEN}, got {tuple(tokens.shape)}")
    par = torch.tensor([vocab.paradigm_id(p) for p in vocab.paradigms], device=tokens.device)
    mod = torch.tensor([vocab.modality_id(m) for m in vocab.modalities], device=tokens.device)
    if not (torch.isin(tokens[:, 0], par).all() and torch.isin(tokens[:, 1], mod).all()):
        raise ValueError(
            "prompt tokens must start with a paradigm and a modality token (e.g. [S] [Action]); "
            f"got {tokens[:, :PREFIX_LEN].tolist()[:4]} - build prompts with Processor.encode_prompt"
        )


def with_prefix(
    inputs: EncoderInputs,
    paradigm: str,
    modality: str,
    vocab: Vocabulary,
    tokens: Tensor | None = None,
    token_mask: Tensor | None = None,
) -> EncoderInputs:
    """A copy of ``inputs`` whose prompts state ``[paradigm] [modality]`` (and new tokens/mask)."""
    tok = (inputs.tokens if tokens is None else tokens).clone()
    tok[:, 0] = vocab.paradigm_id(paradigm)
    tok[:, 1] = vocab.modality_id(modality)
    mask = inputs.token_mask if token_mask is None else token_mask
    return dataclasses.replace(inputs, tokens=tok, token_mask=mask)


class BinSmoothing(NamedTuple):
    """Where the value bins are and how wide their Gaussian targets are (HL-Gauss)."""

    first_bin_id: int
    n_bins: int
    sigma: float  # in bins


def gaussian_bin_targets(targets: Tensor, vocab_size: int, smoothing: BinSmoothing) -> Tensor:
    """(B, L) ids -> (B, L, V) target distributions: value-bin ids become a Gaussian over the
    ``n_bins`` bins (each bin gets the Gaussian's mass between its edges, renormalised to the
    valid range); every other id stays one-hot."""
    first, n, sigma = smoothing
    soft = F.one_hot(targets, vocab_size).float()
    is_bin = (targets >= first) & (targets < first + n)
    if not bool(is_bin.any()):
        return soft
    centre = (targets - first).float().unsqueeze(-1)  # (B, L, 1)
    edges = torch.arange(n + 1, device=targets.device, dtype=torch.float32) - 0.5  # (n + 1,)
    cdf = 0.5 * (1 + torch.special.erf((edges - centre) / (sigma * math.sqrt(2.0))))
    mass = cdf[..., 1:] - cdf[..., :-1]  # (B, L, n)
    mass = mass / mass.sum(-1, keepdim=True).clamp_min(1e-12)
    gauss = torch.zeros_like(soft)
    gauss[..., first : first + n] = mass
    return torch.where(is_bin.unsqueeze(-1), gauss, soft)


def masked_cross_entropy(
    logits: Tensor,
    targets: Tensor,
    loss_mask: Tensor,
    label_smoothing: float = 0.0,
    bin_smoothing: BinSmoothing | None = None,
) -> SequenceLoss:
    """Mean CE over positions with loss_mask True. logits (B, L, V), targets/mask (B, L).

    With ``bin_smoothing`` value-bin targets are Gaussians over neighbouring bins (HL-Gauss);
    accuracy is still argmax == target.
    """
    n = int(loss_mask.sum())
    if bin_smoothing is not None and bin_smoothing.sigma > 0:
        soft = gaussian_bin_targets(targets, logits.shape[-1], bin_smoothing)
        ce = -(soft * F.log_softmax(logits.float(), dim=-1)).sum(-1)
    else:
        ce = F.cross_entropy(
            logits.float().flatten(0, 1),
            targets.flatten(),
            reduction="none",
            label_smoothing=label_smoothing,
        ).view_as(targets)
    m = loss_mask.to(ce.dtype)
    loss = (ce * m).sum() / max(n, 1)
    with torch.no_grad():
        acc = ((logits.argmax(-1) == targets) & loss_mask).sum().float() / max(n, 1)
    return SequenceLoss(loss, n, acc)


def sequence_loss(
    model: torch.nn.Module,
    inputs: EncoderInputs,
    targets: Tensor,
    loss_mask: Tensor,
    vocab: Vocabulary,
    *,
    hidden_targets: Tensor | None = None,
    obs_patch_mask: Tensor | None = None,
    pack: bool = False,
    pack_capacity: int = 0,
    label_smoothing: float = 0.0,
    bin_smoothing: BinSmoothing | None = None,
) -> SequenceLoss:
    """Teacher-forced CE of ``targets`` (B, L) given the encoder inputs.

    ``hidden_targets`` (B, L) bool turns on dynamic masking for those targets. With ``pack``
    the examples are packed into shared rows (``uio2_robot.train.packing``); the result is
    the same up to float rounding; ``pack_capacity`` is the encoder length of a packed row
    (0: the unpacked length S).
    """
    if targets.dim() != 2 or targets.shape != loss_mask.shape:
        raise ValueError(
            f"targets and loss_mask must both be (B, L), got {tuple(targets.shape)} and "
            f"{tuple(loss_mask.shape)}"
        )
    lo, hi = int(targets.min()), int(targets.max())
    if lo < 0 or hi >= vocab.size:
        raise ValueError(f"target ids must be in [0, {vocab.size}), got [{lo}, {hi}]")
    dec_in = shift_right(targets, vocab.bos_id)
    self_mask = dynamic_self_attn_mask(hidden_targets) if hidden_targets is not None else None
    if not pack:
        enc = model.encode(inputs, obs_patch_mask)
        logits = model.decode(dec_in, enc, self_attn_mask=self_mask)
        return masked_cross_entropy(logits, targets, loss_mask, label_smoothing, bin_smoothing)
    _check_packable(model)
    emb = model.embed(inputs, obs_patch_mask)
    # only positions up to the last real target are decoded: later ones cannot affect them
    pos = torch.arange(targets.shape[1], device=targets.device)
    last = torch.where(loss_mask, pos, torch.full_like(pos, -1)).amax(1)
    dec_lengths = (last + 1).clamp(min=1).tolist()
    packs = plan_packs(
        emb.mask.sum(1).tolist(),
        pack_capacity or emb.hidden.shape[1],
        dec_lengths,
        model.cfg.max_dec_len,
    )
    penc = pack_encoder(emb, packs)
    enc = model.encode_embedded(penc.emb, penc.attn_mask)
    pdec = pack_decoder(
        dec_in, targets, loss_mask, dec_lengths, packs, penc.segment, vocab.pad_id, self_mask
    )
    logits = model.decode(
        pdec.tokens, enc, pdec.positions, pdec.self_attn_mask, pdec.cross_attn_mask
    )
    return masked_cross_entropy(
        logits, pdec.targets, pdec.loss_mask, label_smoothing, bin_smoothing
    )


def _check_packable(model: torch.nn.Module) -> None:
    if model.cfg.prompt_prefix:
        raise ValueError(
            "pack=true cannot train a prefix-encoding model (ModelConfig.prompt_prefix): a packed "
            "row mixes several examples' prompts and steps; train with pack=false"
        )


def encode_maybe_packed(
    model: torch.nn.Module,
    inputs: EncoderInputs,
    obs_patch_mask: Tensor | None = None,
    pack: bool = False,
    pack_capacity: int = 0,
) -> EncoderOutput:
    """The encoder output in the (B, S, D) layout, computed packed or not."""
    if not pack:
        return model.encode(inputs, obs_patch_mask)
    _check_packable(model)
    emb = model.embed(inputs, obs_patch_mask)
    packs = plan_packs(emb.mask.sum(1).tolist(), pack_capacity or emb.hidden.shape[1])
    penc = pack_encoder(emb, packs)
    return unpack_encoder(model.encode_embedded(penc.emb, penc.attn_mask), penc, emb)


def _pad_targets(
    rows: list[list[int]], flags: list[list[bool]], max_len: int, pad_id: int, device: Any
) -> tuple[Tensor, Tensor]:
    """Ragged target rows (and their loss flags) -> (B, L) ids and bool mask, cut at max_len."""
    length = max(1, min(max_len, max(len(r) for r in rows)))
    ids = torch.full((len(rows), length), pad_id, dtype=torch.int64)
    mask = torch.zeros((len(rows), length), dtype=torch.bool)
    for i, (r, f) in enumerate(zip(rows, flags, strict=True)):
        n = min(len(r), length)
        ids[i, :n] = torch.tensor(r[:n], dtype=torch.int64)
        mask[i, :n] = torch.tensor(f[:n], dtype=torch.bool)
    return ids.to(device), mask.to(device)


def _prompt_rows(inputs: EncoderInputs) -> list[list[int]]:
    """Per example, the real prompt tokens after the prefix (text ids and image markers)."""
    rows = []
    for tok, mask in zip(inputs.tokens.tolist(), inputs.token_mask.tolist(), strict=True):
        rows.append([t for t, m in zip(tok[PREFIX_LEN:], mask[PREFIX_LEN:], strict=True) if m])
    return rows


def _compact(inputs: EncoderInputs, rows: list[list[int]], pad_id: int) -> tuple[Tensor, Tensor]:
    """Prompt rows (after the prefix) written back left-aligned: new tokens and token_mask."""
    tokens = inputs.tokens.clone()
    mask = torch.zeros_like(inputs.token_mask)
    tokens[:, PREFIX_LEN:] = pad_id
    mask[:, :PREFIX_LEN] = True
    for i, row in enumerate(rows):
        tokens[i, PREFIX_LEN : PREFIX_LEN + len(row)] = torch.tensor(
            row, dtype=torch.int64, device=tokens.device
        )
        mask[i, PREFIX_LEN : PREFIX_LEN + len(row)] = True
    return tokens, mask


# ---- the terms ----------------------------------------------------------------------------------
def _s_action(model, inputs, tensors, cfg, generator, vocab) -> SequenceLoss:
    if ACTION_TOKENS not in tensors:
        raise ValueError(f"the s_action term needs batch[{ACTION_TOKENS!r}] (B, N) int64")
    targets = tensors[ACTION_TOKENS]
    if targets.dim() != 2 or targets.shape[0] != inputs.batch_size:
        raise ValueError(
            f"batch[{ACTION_TOKENS!r}] must be (B={inputs.batch_size}, N), got {tuple(targets.shape)}"
        )
    mask = tensors.get(ACTION_MASK, torch.ones_like(targets, dtype=torch.bool))
    if mask.shape != targets.shape:
        raise ValueError(
            f"batch[{ACTION_MASK!r}] {tuple(mask.shape)} must match action_tokens {tuple(targets.shape)}"
        )
    inp = with_prefix(inputs, *PREFIXES["s_action"], vocab)
    smoothing = BinSmoothing(
        vocab.first_bin_id, cfg.action_n_bins or vocab.n_bins, cfg.action_bin_sigma
    )
    if cfg.point_weight > 0:
        return _action_with_pointing(model, inp, targets, mask, tensors, cfg, vocab, smoothing)
    return sequence_loss(
        model,
        inp,
        targets,
        mask,
        vocab,
        pack=cfg.pack,
        pack_capacity=cfg.pack_capacity,
        label_smoothing=cfg.label_smoothing,
        bin_smoothing=smoothing,
    )


def _action_with_pointing(
    model, inp, targets, mask, tensors, cfg, vocab, smoothing: BinSmoothing
) -> SequenceLoss:
    """The action CE plus ``point_weight`` x the pointing CE, from one encoder pass."""
    if POINT_TARGETS not in tensors:
        raise ValueError(
            f"point_weight > 0 needs batch[{POINT_TARGETS!r}] (B, K) int64 patch indices "
            "(TrainingTransform with point_grid, a processor with point_maps)"
        )
    points = tensors[POINT_TARGETS]
    enc = model.encode(inp)
    logits = model.decode(shift_right(targets, vocab.bos_id), enc)
    action = masked_cross_entropy(logits, targets, mask, cfg.label_smoothing, smoothing)
    scores = model.point_logits(enc)  # (B, heads, V*Np)
    heads = scores.shape[1]
    if points.dim() != 2 or points.shape[0] != scores.shape[0] or points.shape[1] > heads:
        raise ValueError(
            f"batch[{POINT_TARGETS!r}] must be (B={scores.shape[0]}, K<={heads}), got "
            f"{tuple(points.shape)}"
        )
    scores = scores[:, : points.shape[1]]
    valid = points >= 0
    loss = action.loss
    if bool(valid.any()):
        loss = loss + cfg.point_weight * F.cross_entropy(scores[valid].float(), points[valid])
    if cfg.scene_point_weight > 0:
        loss = loss + cfg.scene_point_weight * _scene_point_loss(model, enc, inp, points)
    return SequenceLoss(loss, action.n_tokens, action.accuracy)


def _scene_point_loss(model, enc, inp: EncoderInputs, points: Tensor) -> Tensor:
    """CE over the first prompt scene's patches of "which one holds the place point", scored
    from the pick point's observation patch; 0 when no row has a scene and both points."""
    scored = scene_point_scores(model, enc, inp, points)
    if scored is None:
        return enc.hidden.new_zeros(())
    scores, targets = scored
    return F.cross_entropy(scores.float(), targets)


def scene_point_scores(
    model, enc, inp: EncoderInputs, points: Tensor
) -> tuple[Tensor, Tensor] | None:
    """The scene-pointing scores (b, Np) and their place-patch targets (b,) on the rows that
    have a prompt scene and both points in view 0 (the scene camera's); None when none does.
    Shared by the training term and `uio2_robot.train.probe`."""
    n_patches = model.cfg.n_patches
    if points.dim() != 2 or points.shape[1] < 2:
        raise ValueError(f"scene pointing needs pick and place targets (B, 2), got {points.shape}")
    pick, place = points[:, 0], points[:, 1]
    in_view0 = (pick >= 0) & (pick < n_patches) & (place >= 0) & (place < n_patches)
    rows = (inp.scene_image_mask[:, 0] & in_view0).nonzero().squeeze(1)
    if not len(rows):
        return None
    scores = model.scene_point_logits(enc._replace(hidden=enc.hidden[rows]), pick[rows])
    return scores, place[rows]


def _r_image(model, inputs, tensors, cfg, generator, vocab) -> Tensor:
    mc = model.cfg
    device = inputs.tokens.device
    patch_mask = random_patch_mask(
        inputs.batch_size, mc.n_views, mc.n_patches, cfg.patch_mask_ratio, generator
    ).to(device)  # (B, V, Np)
    inp = with_prefix(inputs, *PREFIXES["r_image"], vocab)
    enc = encode_maybe_packed(model, inp, patch_mask, cfg.pack, cfg.pack_capacity)
    pred = model.reconstruct_patches(enc)  # (B, V, Np, p*p*3)
    target = model.obs_patch_targets(inp)
    err = (pred.float() - target.float()).pow(2).mean(-1)  # (B, V, Np)
    return err[patch_mask].mean()


def _x_text(model, inputs, tensors, cfg, generator, vocab) -> SequenceLoss | None:
    sentinels = vocab.sentinel_ids.tolist()
    new_rows, targets = [], []
    for row in _prompt_rows(inputs):
        corruptible = [bool(vocab.is_text(t)) for t in row]
        n_text = sum(corruptible)
        if n_text == 0:
            new_rows.append(row)
            targets.append([])
            continue
        noise = span_noise_mask(n_text, cfg.x_noise_rate, cfg.x_mean_span, generator)
        inp_row, tgt = span_corrupt(row, corruptible, noise, sentinels)
        new_rows.append(inp_row)
        targets.append([*tgt, vocab.eos_id])
    return _text_term(model, inputs, new_rows, targets, None, "x_text", cfg, vocab)


def _r_text(model, inputs, tensors, cfg, generator, vocab) -> SequenceLoss | None:
    rows = _prompt_rows(inputs)
    token_mask = inputs.token_mask.clone()
    targets, hidden = [], []
    for i, row in enumerate(rows):
        corruptible = [bool(vocab.is_text(t)) for t in row]
        n_text = sum(corruptible)
        if n_text == 0:
            targets.append([])
            hidden.append([])
            continue
        noise = iter(
            span_noise_mask(n_text, cfg.r_text_noise_rate, cfg.r_text_mean_span, generator)
        )
        drop = [next(noise) if c else False for c in corruptible]
        valid = torch.nonzero(inputs.token_mask[i], as_tuple=False).flatten()[PREFIX_LEN:]
        token_mask[i, valid[torch.tensor(drop, dtype=torch.bool, device=valid.device)]] = False
        targets.append([*row, vocab.eos_id])
        hidden.append([*drop, False])
    return _text_term(model, inputs, None, targets, hidden, "r_text", cfg, vocab, token_mask)


def _s_text(model, inputs, tensors, cfg, generator, vocab) -> SequenceLoss | None:
    rows = _prompt_rows(inputs)
    kept = [[t for t in row if not vocab.is_text(t)] for row in rows]  # image markers only
    targets = [[*row, vocab.eos_id] if any(vocab.is_text(t) for t in row) else [] for row in rows]
    return _text_term(model, inputs, kept, targets, None, "s_text", cfg, vocab)


def _text_term(
    model,
    inputs: EncoderInputs,
    new_rows: list[list[int]] | None,
    targets: list[list[int]],
    hidden: list[list[bool]] | None,
    term: str,
    cfg: MixtureConfig,
    vocab: Vocabulary,
    token_mask: Tensor | None = None,
) -> SequenceLoss | None:
    """Shared tail of the text terms: build the inputs and padded targets, run the CE.

    Loss flags: the hidden tokens for r_text (``hidden``), every target token otherwise.
    """
    if not any(targets):
        return None
    device = inputs.tokens.device
    if new_rows is not None:
        tokens, token_mask = _compact(inputs, new_rows, vocab.pad_id)
    else:
        tokens = inputs.tokens
    flags = hidden if hidden is not None else [[True] * len(t) for t in targets]
    tgt, loss_mask = _pad_targets(targets, flags, model.cfg.max_dec_len, vocab.pad_id, device)
    hidden_targets = None
    if hidden is not None:
        hidden_targets, _ = _pad_targets(
            [[int(h) for h in row] for row in hidden], flags, model.cfg.max_dec_len, 0, device
        )
        hidden_targets = hidden_targets.bool()
    if not bool(loss_mask.any()):
        return None
    inp = with_prefix(inputs, *PREFIXES[term], vocab, tokens=tokens, token_mask=token_mask)
    return sequence_loss(
        model,
        inp,
        tgt,
        loss_mask,
        vocab,
        hidden_targets=hidden_targets,
        pack=cfg.pack,
        pack_capacity=cfg.pack_capacity,
        label_smoothing=cfg.label_smoothing,
    )


_TERM_FNS: dict[str, Callable[..., Any]] = {
    "s_action": _s_action,
    "r_image": _r_image,
    "x_text": _x_text,
    "r_text": _r_text,
    "s_text": _s_text,
}
