"""UIO2's VIMA action text: a primitive plan written as words and value-bin tokens.

UIO2 was trained on VIMA-Bench with each primitive step as text,
``"{k}: {start} from ( a b r ) and {end} to ( a b r )"`` (suction: pick / place; spatula:
push / push), steps joined by spaces, the plan ended by EOS. ``a``, ``b``, ``r`` are value
bins (``<extra_id_{200+b}>``): x and y normalised over the workspace x 0.25..0.75 m,
y -0.5..0.5 m, and the rotation as a fraction of a full turn; a value v is bin ``int(v*999)``.

``ActionGrammar`` turns that format into constrained decoding: the step templates are
tokenized once with the user's tokenizer (bins as wildcards), and at every decoding position
only the tokens that continue some template are allowed, so the model can only write a
well-formed plan. ``parse_plan`` reads the tokens back into (x0, y0, yaw0, x1, y1, yaw1) rows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from uio2_robot.contracts import WORKSPACE_X, WORKSPACE_Y
from uio2_robot.tokenize.official_vocab import EOS_ID, OfficialVocabulary, bin_to_value

KINDS = {"pick_place": ("pick", "place"), "push": ("push", "push")}
_BIN = -1  # wildcard: any value-bin id
_PLACEHOLDER = "<extra_id_0>"  # a sentinel that is never a bin, tokenized as one piece


def step_text(k: int, kind: str, bins: Sequence[int] | None = None) -> str:
    """Step k of a plan as UIO2's text; ``bins`` (6 value bins) or placeholders."""
    start, end = KINDS[kind]
    words = [f"<extra_id_{200 + b}>" for b in bins] if bins is not None else [_PLACEHOLDER] * 6
    a0, b0, r0, a1, b1, r1 = words
    return f"{k}: {start} from ( {a0} {b0} {r0} ) and {end} to ( {a1} {b1} {r1} )"


@dataclass(frozen=True)
class ActionGrammar:
    """Token templates of plan steps 0..max_steps-1 for every primitive kind."""

    vocab: OfficialVocabulary
    templates: tuple[tuple[int, str, tuple[int, ...]], ...]  # (step, kind, tokens, -1 = bin)
    vocab_size: int

    @classmethod
    def build(
        cls,
        encode: Callable[[str], list[int]],
        vocab: OfficialVocabulary,
        vocab_size: int,
        max_steps: int = 8,
        kinds: Sequence[str] = tuple(KINDS),
    ) -> ActionGrammar:
        placeholder = vocab.extra_id(0)
        templates = []
        for k in range(max_steps):
            for kind in kinds:
                ids = encode(step_text(k, kind))
                if ids.count(placeholder) != 6:
                    raise ValueError(
                        f"the tokenizer splits {_PLACEHOLDER!r}: is it UIO2's edited model?"
                    )
                templates.append((k, kind, tuple(_BIN if i == placeholder else i for i in ids)))
        return cls(vocab, tuple(templates), vocab_size)

    def _bins(self) -> np.ndarray:
        lo, hi = self.vocab.bin_ids_range
        return np.arange(lo, hi)

    def _state(self, tokens: Sequence[int]) -> tuple[int, list[int], bool]:
        """(current step, its tokens so far, finished by EOS) of a decoded prefix."""
        step, cur, done = 0, [], False
        for t in tokens:
            if done:
                break
            if t == EOS_ID:
                done = True
                continue
            if self._complete(step, cur) and self._starts(step + 1, t):
                step, cur = step + 1, [t]
            else:
                cur.append(t)
        return step, cur, done

    def _matches(self, template: tuple[int, ...], cur: Sequence[int]) -> bool:
        if len(cur) > len(template):
            return False
        bins = self.vocab.bin_ids_range
        return all(
            (bins[0] <= c < bins[1]) if t == _BIN else c == t
            for t, c in zip(template, cur, strict=False)
        )

    def _complete(self, step: int, cur: Sequence[int]) -> bool:
        return any(
            k == step and len(t) == len(cur) and self._matches(t, cur) for k, _, t in self.templates
        )

    def _starts(self, step: int, token: int) -> bool:
        return any(k == step and t[0] == token for k, _, t in self.templates)

    def allowed(self, tokens: Sequence[int]) -> np.ndarray:
        """(V,) bool: the ids that may follow ``tokens`` (the plan decoded so far)."""
        mask = np.zeros(self.vocab_size, dtype=bool)
        step, cur, done = self._state(tokens)
        if done:
            mask[EOS_ID] = True  # nothing follows EOS; keep emitting it
            return mask
        for k, _, t in self.templates:
            if k == step and len(t) > len(cur) and self._matches(t, cur):
                nxt = t[len(cur)]
                if nxt == _BIN:
                    mask[self._bins()] = True
                else:
                    mask[nxt] = True
        if tokens and self._complete(step, cur):
            mask[EOS_ID] = True
            for k, _, t in self.templates:
                if k == step + 1:
                    mask[t[0]] = True
        return mask

    def parse_plan(self, tokens: Sequence[int]) -> tuple[list[str], np.ndarray]:
        """The kinds and (n_steps, 6) [x0, y0, yaw0, x1, y1, yaw1] of every complete step."""
        kinds, rows = [], []
        step, cur = 0, []
        for t in [*tokens, EOS_ID]:
            if t != EOS_ID and not (self._complete(step, cur) and self._starts(step + 1, t)):
                cur.append(t)
                continue
            for k, kind, tpl in self.templates:
                if k == step and len(tpl) == len(cur) and self._matches(tpl, cur):
                    bins = [c for c, x in zip(cur, tpl, strict=True) if x == _BIN]
                    kinds.append(kind)
                    rows.append(bins_to_pose(self.vocab.bin_of(np.asarray(bins))))
                    break
            if t == EOS_ID:
                break
            step, cur = step + 1, [t]
        return kinds, np.asarray(rows, dtype=np.float32).reshape(-1, 6)


def bins_to_pose(bins: np.ndarray) -> np.ndarray:
    """6 value bins (a0 b0 r0 a1 b1 r1) -> [x0, y0, yaw0, x1, y1, yaw1] in metres / radians."""
    v = bin_to_value(np.asarray(bins))
    x = WORKSPACE_X[0] + v[[0, 3]] * (WORKSPACE_X[1] - WORKSPACE_X[0])
    y = WORKSPACE_Y[0] + v[[1, 4]] * (WORKSPACE_Y[1] - WORKSPACE_Y[0])
    yaw = (v[[2, 5]] * 2 * math.pi + math.pi) % (2 * math.pi) - math.pi  # a full turn, wrapped
    return np.array([x[0], y[0], yaw[0], x[1], y[1], yaw[1]], dtype=np.float32)


def pose_to_bins(pose: Sequence[float]) -> list[int]:
    """Inverse of ``bins_to_pose`` up to quantisation (int(v * 999))."""
    x0, y0, yaw0, x1, y1, yaw1 = (float(p) for p in pose)
    vals = [
        (x0 - WORKSPACE_X[0]) / (WORKSPACE_X[1] - WORKSPACE_X[0]),
        (y0 - WORKSPACE_Y[0]) / (WORKSPACE_Y[1] - WORKSPACE_Y[0]),
        (yaw0 % (2 * math.pi)) / (2 * math.pi),
        (x1 - WORKSPACE_X[0]) / (WORKSPACE_X[1] - WORKSPACE_X[0]),
        (y1 - WORKSPACE_Y[0]) / (WORKSPACE_Y[1] - WORKSPACE_Y[0]),
        (yaw1 % (2 * math.pi)) / (2 * math.pi),
    ]
    return [int(min(max(v, 0.0), 1.0) * 999) for v in vals]


def plan_text(actions: np.ndarray, kind: str = "pick_place") -> str:
    """A demonstrated plan ((n, 6) primitive actions) as UIO2's target text."""
    rows = np.asarray(actions, dtype=np.float64).reshape(-1, 6)
    if kind not in KINDS:
        raise ValueError(f"unknown primitive kind {kind!r}; expected one of {tuple(KINDS)}")
    return " ".join(step_text(k, kind, pose_to_bins(row)) for k, row in enumerate(rows))
