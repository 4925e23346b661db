"""The released Unified-IO 2 vocabulary: LLaMA's SentencePiece, reordered, plus UIO2's pieces.

The official tokenizer (``uio2/vocabulary.py``, ``config.get_tokenizer``) edits LLaMA's
``tokenizer.model`` before loading it:

- BOS, EOS and UNK move to ids 0, 1, 2 (LLaMA has UNK=0, BOS=1, EOS=2); PAD is 0 = BOS;
- 1,200 ``<extra_id_i>`` pieces are appended in reverse order, so ``<extra_id_i>`` is id
  ``T + 1199 - i`` (33199 - i for LLaMA's T = 32,000 pieces);
- value bin b (0..999) is ``<extra_id_{200+b}>`` = id ``T + 999 - b``; a value v in [0, 1]
  is bin ``int(v * 999)``;
- then ``<image_history_k>``, ``<audio_history_k>`` for k = 1..8 (interleaved),
  ``<image_input>``, ``<audio_input>``, and the combined prefix pieces ``[Text] [S]``, ...;
- the model's table has 33,280 rows (the pieces padded to a multiple of 128).

``OfficialVocabulary`` is that layout as arithmetic (no file needed: the ids at and above T
never depend on the text model). ``OfficialTokenizer`` applies the same edit to a user's
``tokenizer.model`` (``sentencepiece`` is an optional extra) and encodes prompts as the
official preprocessor does: the ``[Text] [S]`` prefix, at most 511 pieces, then EOS.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

N_EXTRA_IDS = 1200
BIN_START = 200  # <extra_id_200> is bin 0
N_BINS = 1000
N_HISTORY_MARKERS = 8
PREFIXES = (
    "[Text] [S]",
    "[Text] [R]",
    "[Text] [X]",
    "[Image] [S]",
    "[Image] [R]",
    "[Audio] [S]",
    "[Audio] [R]",
)
MODEL_VOCAB_SIZE = 33280
MAX_TEXT_LEN = 512
BOS_ID = PAD_ID = 0
EOS_ID = 1
UNK_ID = 2


@dataclass(frozen=True)
class OfficialVocabulary:
    """Ids of UIO2's added pieces for a text model with ``text_size`` pieces (LLaMA: 32000)."""

    text_size: int = 32000

    def extra_id(self, i: int) -> int:
        if not 0 <= i < N_EXTRA_IDS:
            raise ValueError(f"<extra_id_{i}> does not exist; expected 0..{N_EXTRA_IDS - 1}")
        return self.text_size + N_EXTRA_IDS - 1 - i

    def bin_id(self, b: int | np.ndarray) -> int | np.ndarray:
        """Token id of value bin b (0..999): ``<extra_id_{200+b}>``."""
        arr = np.asarray(b)
        if arr.dtype.kind not in "iu" or arr.min(initial=0) < 0 or arr.max(initial=0) >= N_BINS:
            raise ValueError(f"value bins must be ints in [0, {N_BINS}), got {b!r}")
        ids = self.text_size + N_EXTRA_IDS - 1 - BIN_START - arr
        return int(ids) if ids.ndim == 0 else ids

    def bin_of(self, token_id: int | np.ndarray) -> int | np.ndarray:
        """Inverse of ``bin_id``; raises for an id that is not a value bin."""
        arr = np.asarray(token_id, dtype=np.int64)
        b = self.text_size + N_EXTRA_IDS - 1 - BIN_START - arr
        if b.min(initial=0) < 0 or b.max(initial=0) >= N_BINS:
            raise ValueError(f"token id(s) {token_id!r} are not value bins {self.bin_ids_range}")
        return int(b) if b.ndim == 0 else b

    @property
    def bin_ids_range(self) -> tuple[int, int]:
        """(lo, hi): the value-bin ids are lo..hi-1 (bin 999 at lo, bin 0 at hi - 1)."""
        return self.bin_id(N_BINS - 1), self.bin_id(0) + 1

    def image_history_id(self, k: int) -> int:
        """``<image_history_k>``, k = 1..8."""
        if not 1 <= k <= N_HISTORY_MARKERS:
            raise ValueError(f"<image_history_{k}> does not exist; expected 1..8")
        return self.text_size + N_EXTRA_IDS + 2 * (k - 1)

    def prefix_id(self, prefix: str) -> int:
        if prefix not in PREFIXES:
            raise ValueError(f"unknown prefix {prefix!r}; expected one of {PREFIXES}")
        return self.text_size + N_EXTRA_IDS + 2 * (N_HISTORY_MARKERS + 1) + PREFIXES.index(prefix)

    @property
    def n_pieces(self) -> int:
        return self.text_size + N_EXTRA_IDS + 2 * (N_HISTORY_MARKERS + 1) + len(PREFIXES)


def value_to_bin(v: float | np.ndarray) -> int | np.ndarray:
    """The official quantisation of v in [0, 1]: ``int(v * 999)`` (truncation), clipped."""
    b = (np.clip(np.asarray(v, dtype=np.float64), 0.0, 1.0) * 999).astype(np.int64)
    return int(b) if b.ndim == 0 else b


def bin_to_value(b: int | np.ndarray) -> float | np.ndarray:
    v = np.asarray(b, dtype=np.float64) / 999.0
    return float(v) if v.ndim == 0 else v


class OfficialTokenizer:
    """A user's LLaMA ``tokenizer.model`` with the official UIO2 edits (see module doc)."""

    kind = "uio2_official_sentencepiece"

    def __init__(self, model_path: str | Path) -> None:
        self.model_path = str(model_path)
        if not Path(self.model_path).is_file():
            raise FileNotFoundError(
                f"SentencePiece model not found: {self.model_path!r} (UIO2 needs LLaMA's "
                "tokenizer.model; it is not shipped with this package)"
            )
        try:
            import sentencepiece
            from sentencepiece import sentencepiece_model_pb2 as pb2
        except ImportError as exc:
            raise ImportError(
                "the official UIO2 tokenizer needs the 'sentencepiece' package (and protobuf): "
                "pip install -e '.[sentencepiece]'"
            ) from exc
        proto = pb2.ModelProto.FromString(Path(self.model_path).read_bytes())
        text_size = len(proto.pieces)
        unk, bos, eos = proto.pieces[0], proto.pieces[1], proto.pieces[2]
        first = [pb2.ModelProto.SentencePiece(), pb2.ModelProto.SentencePiece()]
        first.append(pb2.ModelProto.SentencePiece())
        for dst, src in zip(first, (bos, eos, unk), strict=True):
            dst.CopyFrom(src)
        rest = [pb2.ModelProto.SentencePiece() for _ in range(text_size - 3)]
        for dst, src in zip(rest, proto.pieces[3:], strict=True):
            dst.CopyFrom(src)
        del proto.pieces[:]
        proto.pieces.extend(first + rest)
        user = pb2.ModelProto.SentencePiece.USER_DEFINED
        added = [f"<extra_id_{i}>" for i in reversed(range(N_EXTRA_IDS))]
        for k in range(1, N_HISTORY_MARKERS + 1):
            added += [f"<image_history_{k}>", f"<audio_history_{k}>"]
        added += ["<image_input>", "<audio_input>"]
        added += [p.replace(" ", "\u2581") for p in PREFIXES]
        for piece in added:
            proto.pieces.add(piece="\u2581" + piece, score=0.0, type=user)
        self._sp = sentencepiece.SentencePieceProcessor()
        self._sp.LoadFromSerializedProto(proto.SerializeToString())
        self.vocab = OfficialVocabulary(text_size)
        if self._sp.get_piece_size() != self.vocab.n_pieces:
            raise ValueError(f"{self.model_path}: unexpected piece count after the UIO2 edit")

    @property
    def size(self) -> int:
        return int(self._sp.get_piece_size())

    def encode(self, text: str) -> list[int]:
        if not isinstance(text, str):
            raise ValueError(f"text to encode must be a str, got {type(text).__name__}")
        return [int(i) for i in self._sp.encode(text, out_type=int)]

    def encode_input(self, text: str, prefix: str = "[Text] [S]") -> list[int]:
        """An encoder text input as the official preprocessor makes it: ``prefix`` + text,
        at most 511 pieces, then EOS."""
        if prefix not in PREFIXES:
            raise ValueError(f"unknown prefix {prefix!r}; expected one of {PREFIXES}")
        return self.encode(f"{prefix} {text}")[: MAX_TEXT_LEN - 1] + [EOS_ID]

    def encode_target(self, text: str) -> list[int]:
        """A text target: the pieces (at most 511) then EOS (teacher forcing shifts in BOS)."""
        return self.encode(text)[: MAX_TEXT_LEN - 1] + [EOS_ID]

    def id_to_piece(self, i: int) -> str:
        return str(self._sp.id_to_piece(int(i)))

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        """Text up to the first EOS; ids past the pieces (table padding) read as UNK."""
        out = []
        for i in np.asarray(ids, dtype=np.int64).reshape(-1).tolist():
            if i == EOS_ID:
                break
            out.append(i if 0 <= i < self.size else UNK_ID)
        return str(self._sp.decode(out))
