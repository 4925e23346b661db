"""Packing: several short examples in one encoder row and one decoder row.

UIO2 packs examples so the padding of static-size inputs is not computed (about 4x throughput in
the paper, where most inputs are short). Here every example is first embedded on its own
(``model.embed``: resampler, patch embedding and positions are per example), then the *real*
tokens (``mask`` True) of the examples in a pack are concatenated into one row. Attention stays
inside each example:

- encoder self-attention: block-diagonal (``segment[q] == segment[k]``);
- decoder self-attention: block-diagonal and causal (examples are concatenated in order, so the
  model's row-causal mask is causal inside each block), ANDed with the example's own mask
  (e.g. dynamic masking);
- decoder cross-attention: only to the encoder tokens of the same example;
- positions: the encoder keeps each token's own RoPE position from ``embed``; decoder positions
  restart at 0 for every example.

So a packed forward computes exactly the same function per example as running the examples one
by one (up to float summation order), which the tests check on the loss.

``plan_packs`` decides which examples share a row: first-fit decreasing under an encoder and a
decoder capacity (the decoder's is the model's ``max_dec_len``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from uio2_robot.model.sequence import EncoderOutput


def plan_packs(
    enc_lengths: Sequence[int],
    enc_capacity: int,
    dec_lengths: Sequence[int] | None = None,
    dec_capacity: int | None = None,
) -> list[list[int]]:
    """Group example indices into packs, first-fit decreasing by encoder length.

    Every pack's total encoder length is <= ``enc_capacity`` and total decoder length
    <= ``dec_capacity``. Indices inside a pack are ascending (deterministic layout).
    """
    n = len(enc_lengths)
    dec = list(dec_lengths) if dec_lengths is not None else [0] * n
    if len(dec) != n:
        raise ValueError(f"dec_lengths has {len(dec)} entries, enc_lengths {n}")
    dcap = dec_capacity if dec_capacity is not None else max(sum(dec), 1)
    for i in range(n):
        if enc_lengths[i] > enc_capacity or dec[i] > dcap:
            raise ValueError(
                f"example {i} (encoder {enc_lengths[i]}, decoder {dec[i]} tokens) does not fit "
                f"a pack of capacity (encoder {enc_capacity}, decoder {dcap})"
            )
    packs: list[list[int]] = []
    used: list[list[int]] = []  # [enc, dec] per pack
    for i in sorted(range(n), key=lambda j: (-enc_lengths[j], j)):
        for p, (e, d) in enumerate(used):
            if e + enc_lengths[i] <= enc_capacity and d + dec[i] <= dcap:
                packs[p].append(i)
                used[p] = [e + enc_lengths[i], d + dec[i]]
                break
        else:
            packs.append([i])
            used.append([enc_lengths[i], dec[i]])
    return [sorted(p) for p in packs]


@dataclass
class PackedEncoder:
    """Encoder embeddings of packed examples and the bookkeeping to undo the packing."""

    emb: EncoderOutput  # (R, Sp, ...) the packed rows
    segment: Tensor  # (R, Sp) int64 example index of each slot, -1 = padding
    source: Tensor  # (R, Sp) int64 flat index b * S + s of each slot in the unpacked batch, -1 pad
    attn_mask: Tensor  # (R, Sp, Sp) bool block-diagonal
    batch_size: int
    seq_len: int  # S of the unpacked batch


def pack_encoder(emb: EncoderOutput, packs: Sequence[Sequence[int]]) -> PackedEncoder:
    """Concatenate the real tokens of each pack's examples into one row per pack."""
    b, s, _ = emb.hidden.shape
    _check_packs(packs, b)
    device = emb.hidden.device
    rows = []
    for pack in packs:
        idx = [torch.nonzero(emb.mask[i], as_tuple=False).flatten() + i * s for i in pack]
        seg = [torch.full_like(x, i) for i, x in zip(pack, idx, strict=True)]
        rows.append((torch.cat(idx), torch.cat(seg)))
    sp = max(int(r[0].numel()) for r in rows)
    source = torch.full((len(packs), sp), -1, dtype=torch.int64, device=device)
    segment = torch.full((len(packs), sp), -1, dtype=torch.int64, device=device)
    for r, (idx, seg) in enumerate(rows):
        source[r, : idx.numel()] = idx
        segment[r, : seg.numel()] = seg
    valid = source >= 0
    gather = source.clamp(min=0)
    hidden = emb.hidden.reshape(b * s, -1)[gather]  # (R, Sp, D)
    hidden = torch.where(valid.unsqueeze(-1), hidden, torch.zeros_like(hidden))
    positions = emb.positions.reshape(b * s, -1)[gather]  # (R, Sp, 2)
    rope_2d = emb.rope_2d.reshape(b * s)[gather] & valid
    packed = EncoderOutput(hidden=hidden, mask=valid, positions=positions, rope_2d=rope_2d)
    attn = (segment.unsqueeze(2) == segment.unsqueeze(1)) & valid.unsqueeze(1)
    return PackedEncoder(packed, segment, source, attn, b, s)


def unpack_encoder(
    enc: EncoderOutput, packed: PackedEncoder, original: EncoderOutput
) -> EncoderOutput:
    """Scatter packed encoder outputs back to the (B, S, D) layout of ``original``.

    Slots that were padding in ``original`` (not packed) come back as zeros; mask, positions
    and 2D flags are those of ``original``. Used by objectives that read a fixed encoder group
    (the [R] patch reconstruction).
    """
    b, s = packed.batch_size, packed.seq_len
    valid = packed.source >= 0
    flat = enc.hidden.new_zeros(b * s, enc.hidden.shape[-1])
    flat = flat.index_copy(0, packed.source[valid], enc.hidden[valid])
    return original._replace(hidden=flat.reshape(b, s, -1))


@dataclass
class PackedDecoder:
    """Decoder rows of packed examples (teacher forcing)."""

    tokens: Tensor  # (R, Lp) int64 decoder inputs
    targets: Tensor  # (R, Lp) int64
    loss_mask: Tensor  # (R, Lp) bool
    positions: Tensor  # (R, Lp) int64, restarting at 0 per example
    segment: Tensor  # (R, Lp) int64 example index, -1 = padding
    self_attn_mask: Tensor  # (R, Lp, Lp) bool
    cross_attn_mask: Tensor  # (R, Lp, Sp) bool


def pack_decoder(
    dec_tokens: Tensor,
    targets: Tensor,
    loss_mask: Tensor,
    lengths: Sequence[int],
    packs: Sequence[Sequence[int]],
    enc_segment: Tensor,
    pad_id: int,
    self_attn_mask: Tensor | None = None,
) -> PackedDecoder:
    """Concatenate the first ``lengths[i]`` decoder positions of each pack's examples.

    dec_tokens, targets, loss_mask: (B, L); self_attn_mask: optional (B, L, L) per-example mask
    (e.g. dynamic masking), kept inside each block. enc_segment (R, Sp) from ``pack_encoder``.
    """
    b, length = dec_tokens.shape
    _check_packs(packs, b)
    if len(lengths) != b or any(not 0 < n <= length for n in lengths):
        raise ValueError(f"lengths must be {b} values in [1, {length}], got {list(lengths)}")
    device = dec_tokens.device
    lp = max(sum(lengths[i] for i in pack) for pack in packs)
    r = len(packs)
    tokens = torch.full((r, lp), pad_id, dtype=torch.int64, device=device)
    tgt = torch.full((r, lp), pad_id, dtype=torch.int64, device=device)
    lmask = torch.zeros((r, lp), dtype=torch.bool, device=device)
    positions = torch.zeros((r, lp), dtype=torch.int64, device=device)
    segment = torch.full((r, lp), -1, dtype=torch.int64, device=device)
    self_mask = torch.zeros((r, lp, lp), dtype=torch.bool, device=device)
    for row, pack in enumerate(packs):
        start = 0
        for i in pack:
            n = lengths[i]
            sl = slice(start, start + n)
            tokens[row, sl] = dec_tokens[i, :n]
            tgt[row, sl] = targets[i, :n]
            lmask[row, sl] = loss_mask[i, :n]
            positions[row, sl] = torch.arange(n, device=device)
            segment[row, sl] = i
            block = torch.ones(n, n, dtype=torch.bool, device=device).tril()
            if self_attn_mask is not None:
                block = block & self_attn_mask[i, :n, :n]
            self_mask[row, sl, sl] = block
            start += n
        # padding positions attend to themselves only (their outputs are never used)
        pad = torch.arange(start, lp, device=device)
        self_mask[row, pad, pad] = True
    cross = (segment.unsqueeze(2) == enc_segment.unsqueeze(1)) & (segment >= 0).unsqueeze(2)
    return PackedDecoder(tokens, tgt, lmask, positions, segment, self_mask, cross)


def _check_packs(packs: Sequence[Sequence[int]], batch: int) -> None:
    flat = sorted(i for p in packs for i in p)
    if flat != list(range(batch)) or any(len(p) == 0 for p in packs):
        raise ValueError(
            f"packs must be non-empty and cover every example 0..{batch - 1} exactly once, "
            f"got {[list(p) for p in packs]}"
        )
