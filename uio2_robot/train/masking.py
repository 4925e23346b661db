"""Corruption and attention masks for the mixture of denoisers.

Pure functions of tensors and a ``torch.Generator`` (so a training step is reproducible from its
seed): observation patch masks for [R], T5 span corruption for [X] (and the token drop of
[R]-text), the teacher-forcing shift and the decoder's *dynamic* self-attention mask.

Dynamic masking rule (UIO2's "autoregressive with dynamic masking"). With teacher forcing the
decoder input at position ``k`` is target ``k - 1`` (position 0 is BOS). If target ``j`` was
hidden on the encoder side, then the input position ``j + 1`` that carries it is hidden from
every *other* decoder position::

    allow[q, k] = (k <= q) and (not hidden_input[k] or k == q)
    hidden_input[k] = hidden_target[k - 1] for k >= 1, False for k = 0

So the step that predicts target ``j`` (position ``j``) never saw it (causality), and no later
step can read it back from the decoder either: it must be reconstructed from the encoder
context at every step. The diagonal stays open because position ``j + 1`` already holds the
token in its own residual stream (masking the key would hide nothing) and because it keeps
every row with at least one allowed key. BOS is never hidden.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def shift_right(targets: Tensor, bos_id: int) -> Tensor:
    """Teacher forcing: decoder input = BOS + targets[:-1]. (B, L) -> (B, L)."""
    bos = torch.full_like(targets[:, :1], bos_id)
    return torch.cat([bos, targets[:, :-1]], dim=1)


def causal_mask(length: int, device: torch.device | None = None) -> Tensor:
    """(L, L) bool, True where query q may attend key k (k <= q)."""
    return torch.ones(length, length, dtype=torch.bool, device=device).tril()


def dynamic_self_attn_mask(hidden_targets: Tensor) -> Tensor:
    """Decoder self-attention mask for teacher forcing with dynamic masking.

    ``hidden_targets`` (B, L) bool: target j was masked on the encoder side. Returns
    (B, L, L) bool (True = may attend), causal included; see the module docstring.
    """
    if hidden_targets.dtype != torch.bool or hidden_targets.dim() != 2:
        raise ValueError(
            f"hidden_targets must be a (B, L) bool tensor, got {hidden_targets.dtype} "
            f"{tuple(hidden_targets.shape)}"
        )
    b, length = hidden_targets.shape
    hidden_input = torch.zeros_like(hidden_targets)
    hidden_input[:, 1:] = hidden_targets[:, :-1]  # input k carries target k - 1
    eye = torch.eye(length, dtype=torch.bool, device=hidden_targets.device)
    visible = ~hidden_input.unsqueeze(1) | eye  # (B, Lq, Lk)
    return visible & causal_mask(length, hidden_targets.device)


def random_patch_mask(
    batch: int, n_views: int, n_patches: int, ratio: float, generator: torch.Generator
) -> Tensor:
    """(B, V, Np) bool: exactly ``round(ratio * Np)`` patches masked per view, at random.

    A fixed count (not i.i.d. Bernoulli) keeps every example's reconstruction loss over the
    same number of patches. At least one patch is masked and at least one left visible.
    """
    if not 0.0 < ratio < 1.0:
        raise ValueError(f"patch mask ratio must be in (0, 1), got {ratio}")
    n_mask = min(max(round(ratio * n_patches), 1), n_patches - 1)
    scores = torch.rand(batch, n_views, n_patches, generator=generator)
    ranks = scores.argsort(dim=-1).argsort(dim=-1)  # a random permutation per view
    return ranks < n_mask


def _random_segmentation(n_items: int, n_segments: int, generator: torch.Generator) -> list[int]:
    """Split n_items into n_segments non-empty parts at random; returns the part lengths."""
    if n_segments <= 1:
        return [n_items]
    cuts = torch.randperm(n_items - 1, generator=generator)[: n_segments - 1] + 1
    edges = [0, *sorted(cuts.tolist()), n_items]
    return [edges[i + 1] - edges[i] for i in range(n_segments)]


def span_noise_mask(
    length: int, rate: float, mean_span: float, generator: torch.Generator
) -> list[bool]:
    """T5-style random-spans noise mask over ``length`` items (True = corrupted).

    ``round(length * rate)`` items are corrupted (at least 1, and at least 1 kept when
    ``length > 1``), in ``round(n_noise / mean_span)`` spans (at least 1, at most one more than
    the kept items) of random lengths, separated by at least one kept item. Unlike T5, the kept
    items before the first span and after the last one may be empty, so a single span can sit
    anywhere (T5 always puts it at the end, which would make [X] on short prompts a plain
    suffix completion).
    """
    if length <= 0:
        return []
    if not 0.0 < rate <= 1.0:
        raise ValueError(f"noise rate must be in (0, 1], got {rate}")
    if mean_span < 1.0:
        raise ValueError(f"mean span length must be >= 1, got {mean_span}")
    n_noise = round(length * rate)
    n_noise = max(1, min(n_noise, length - 1)) if length > 1 else 1
    n_keep = length - n_noise
    n_spans = min(max(1, round(n_noise / mean_span)), n_noise, n_keep + 1)
    noise_lengths = _random_segmentation(n_noise, n_spans, generator)
    # n_spans + 1 gaps; the outer two may be empty: segment n_keep + 2 items, take 1 off each end
    gaps = _random_segmentation(n_keep + 2, n_spans + 1, generator)
    gaps[0] -= 1
    gaps[-1] -= 1
    out: list[bool] = [False] * gaps[0]
    for noise, keep in zip(noise_lengths, gaps[1:], strict=True):
        out += [True] * noise + [False] * keep
    return out


def span_corrupt(
    tokens: Sequence[int],
    corruptible: Sequence[bool],
    noise: Sequence[bool],
    sentinel_ids: Sequence[int],
) -> tuple[list[int], list[int]]:
    """T5 span corruption of one sequence given its noise mask over the corruptible items.

    ``noise`` has one flag per corruptible position (in order); other positions (e.g. image
    markers) are kept and split spans. Each maximal run of noised positions becomes one
    sentinel in the input; the target is ``sentinel_i span_i`` for every run, in order.
    Returns (inputs, targets); raises if there are more runs than sentinels.
    """
    if len(tokens) != len(corruptible):
        raise ValueError(f"tokens ({len(tokens)}) and corruptible ({len(corruptible)}) differ")
    if sum(bool(c) for c in corruptible) != len(noise):
        raise ValueError("noise must have one flag per corruptible position")
    flags = iter(noise)
    noised = [bool(next(flags)) if c else False for c in corruptible]
    inputs: list[int] = []
    targets: list[int] = []
    run = -1
    prev = False
    for tok, is_noise in zip(tokens, noised, strict=True):
        if is_noise:
            if not prev:
                run += 1
                if run >= len(sentinel_ids):
                    raise ValueError(f"more than {len(sentinel_ids)} corrupted spans")
                inputs.append(int(sentinel_ids[run]))
                targets.append(int(sentinel_ids[run]))
            targets.append(int(tok))
        else:
            inputs.append(int(tok))
        prev = is_noise
    return inputs, targets
