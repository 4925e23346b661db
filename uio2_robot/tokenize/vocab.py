"""The unified vocabulary: one id space for text, span sentinels, value bins and special tokens.

UIO2 puts every discrete token the decoder can emit into one embedding table, so text, boxes and
robot actions share the output softmax. The layout follows UIO2's convention (text ids first,
then ``<extra_id_*>`` tokens), which keeps a LLaMA SentencePiece model's ids unchanged:

====================  ==================================================================
range                 tokens
====================  ==================================================================
``[0, T)``            text ids (T = 32000 for LLaMA SentencePiece, 256 for the byte tokenizer)
``T + [0, 200)``      span sentinels ``<extra_id_0..199>`` (T5 span corruption)
``T + 200 + [0, N)``  value bins ``<extra_id_200..>`` (N = 1000: actions, locations)
then                  modality tokens ``[Text] [Image] [Action] [Proprio]``
then                  paradigm prefixes ``[R] [S] [X]`` (mixture of denoisers)
then                  prompt-image markers ``<img_0..K-1>``
then                  ``<bos>`` (decoder start), ``<pad>``, ``<eos>``
====================  ==================================================================

Everything is derived from a handful of integers, so ``to_dict`` stores only those and two
processes that agree on them agree on every id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

DEFAULT_MODALITIES = ("text", "image", "action", "proprio")
DEFAULT_PARADIGMS = ("R", "S", "X")
_SPECIALS = ("bos", "pad", "eos")


@dataclass(frozen=True)
class Vocabulary:
    """Id layout of the unified vocabulary (see the module docstring for the order)."""

    text_size: int
    n_sentinels: int = 200
    n_bins: int = 1000
    n_image_markers: int = 8
    modalities: tuple[str, ...] = DEFAULT_MODALITIES
    paradigms: tuple[str, ...] = DEFAULT_PARADIGMS
    _starts: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("text_size", "n_sentinels", "n_bins", "n_image_markers"):
            value = getattr(self, name)
            if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < 0:
                raise ValueError(f"Vocabulary.{name} must be a non-negative int, got {value!r}")
        if self.text_size < 1:
            raise ValueError(f"Vocabulary.text_size must be >= 1, got {self.text_size}")
        for name in ("modalities", "paradigms"):
            names = tuple(getattr(self, name))
            object.__setattr__(self, name, names)
            if len(set(names)) != len(names) or not all(isinstance(n, str) and n for n in names):
                raise ValueError(
                    f"Vocabulary.{name} must be distinct non-empty strings, got {names}"
                )
        starts: dict[str, int] = {}
        pos = int(self.text_size)
        for group, count in (
            ("sentinel", self.n_sentinels),
            ("bin", self.n_bins),
            ("modality", len(self.modalities)),
            ("paradigm", len(self.paradigms)),
            ("image_marker", self.n_image_markers),
            ("special", len(_SPECIALS)),
        ):
            starts[group] = pos
            pos += int(count)
        starts["end"] = pos
        object.__setattr__(self, "_starts", starts)

    # ---- sizes and ranges -------------------------------------------------------------------
    @property
    def size(self) -> int:
        """Number of ids, i.e. the embedding table size the model needs (``vocab_size``)."""
        return self._starts["end"]

    @property
    def first_sentinel_id(self) -> int:
        return self._starts["sentinel"]

    @property
    def first_bin_id(self) -> int:
        return self._starts["bin"]

    @property
    def bin_ids(self) -> np.ndarray:
        """All value-bin ids, ascending and contiguous: (n_bins,) int64."""
        return np.arange(self.first_bin_id, self.first_bin_id + self.n_bins, dtype=np.int64)

    @property
    def sentinel_ids(self) -> np.ndarray:
        """(n_sentinels,) int64."""
        return np.arange(
            self.first_sentinel_id, self.first_sentinel_id + self.n_sentinels, dtype=np.int64
        )

    @property
    def image_marker_ids(self) -> np.ndarray:
        """(n_image_markers,) int64."""
        start = self._starts["image_marker"]
        return np.arange(start, start + self.n_image_markers, dtype=np.int64)

    # ---- single ids -----------------------------------------------------------------------
    def sentinel_id(self, i: int) -> int:
        """Id of ``<extra_id_i>``, the i-th span sentinel."""
        return self._starts["sentinel"] + _check_index("sentinel", i, self.n_sentinels)

    def bin_id(self, i: int) -> int:
        """Id of value bin i (UIO2's ``<extra_id_{200+i}>``)."""
        return self._starts["bin"] + _check_index("bin", i, self.n_bins)

    def image_marker_id(self, k: int) -> int:
        """Id of ``<img_k>``, the marker standing where prompt image k appears."""
        return self._starts["image_marker"] + _check_index("image marker", k, self.n_image_markers)

    def modality_id(self, name: str) -> int:
        """Id of a modality token such as ``[Action]``."""
        if name not in self.modalities:
            raise ValueError(f"unknown modality {name!r}; expected one of {self.modalities}")
        return self._starts["modality"] + self.modalities.index(name)

    def paradigm_id(self, name: str) -> int:
        """Id of a paradigm prefix token ``[R]``, ``[S]`` or ``[X]``."""
        if name not in self.paradigms:
            raise ValueError(f"unknown paradigm {name!r}; expected one of {self.paradigms}")
        return self._starts["paradigm"] + self.paradigms.index(name)

    @property
    def bos_id(self) -> int:
        """Decoder start token."""
        return self._starts["special"]

    @property
    def pad_id(self) -> int:
        return self._starts["special"] + 1

    @property
    def eos_id(self) -> int:
        return self._starts["special"] + 2

    # ---- classification ---------------------------------------------------------------------
    def is_text(self, ids: np.ndarray | Sequence[int] | int) -> np.ndarray:
        """Elementwise: is the id a text id? (bool array of the input's shape)"""
        a = np.asarray(ids)
        return (a >= 0) & (a < self.text_size)

    def is_bin(self, ids: np.ndarray | Sequence[int] | int) -> np.ndarray:
        a = np.asarray(ids)
        return (a >= self.first_bin_id) & (a < self.first_bin_id + self.n_bins)

    def token_name(self, token_id: int) -> str:
        """Human-readable name of an id, for debugging printouts."""
        t = int(token_id)
        s = self._starts
        if 0 <= t < self.text_size:
            return f"<text_{t}>"
        if s["sentinel"] <= t < s["bin"]:
            return f"<extra_id_{t - s['sentinel']}>"
        if s["bin"] <= t < s["modality"]:
            return f"<bin_{t - s['bin']}>"
        if s["modality"] <= t < s["paradigm"]:
            return f"[{self.modalities[t - s['modality']].capitalize()}]"
        if s["paradigm"] <= t < s["image_marker"]:
            return f"[{self.paradigms[t - s['paradigm']]}]"
        if s["image_marker"] <= t < s["special"]:
            return f"<img_{t - s['image_marker']}>"
        if s["special"] <= t < s["end"]:
            return f"<{_SPECIALS[t - s['special']]}>"
        raise ValueError(f"token id {t} is outside the vocabulary [0, {self.size})")

    # ---- serialisation ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "text_size": int(self.text_size),
            "n_sentinels": int(self.n_sentinels),
            "n_bins": int(self.n_bins),
            "n_image_markers": int(self.n_image_markers),
            "modalities": list(self.modalities),
            "paradigms": list(self.paradigms),
            "size": self.size,  # informational: checked on load
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Vocabulary:
        known = {"text_size", "n_sentinels", "n_bins", "n_image_markers", "modalities", "paradigms"}
        if "text_size" not in d:
            raise ValueError(f"vocabulary dict has no 'text_size'; got keys {sorted(d)}")
        vocab = cls(
            **{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k in known}
        )
        if "size" in d and int(d["size"]) != vocab.size:
            raise ValueError(
                f"vocabulary dict says size {d['size']} but its layout gives {vocab.size}"
            )
        return vocab


def _check_index(what: str, i: int, n: int) -> int:
    if isinstance(i, bool) or not isinstance(i, int | np.integer) or not 0 <= int(i) < n:
        raise ValueError(f"{what} index must be an int in [0, {n}), got {i!r}")
    return int(i)
