"""Text tokenizers: UTF-8 bytes by default, a SentencePiece model when one is configured.

The byte tokenizer needs nothing downloaded and round-trips any string, which is all a robot
prompt needs. UIO2 itself uses the LLaMA SentencePiece model (32000 ids); configuring its file
gives the same text ids, so a UIO2-compatible vocabulary is one setting away. ``sentencepiece``
is an optional extra and is imported only when such a model is actually configured.

Text ids occupy ``[0, size)`` of the unified vocabulary; the tokenizers here add no special
tokens of their own (BOS/EOS/pad live in :class:`~uio2_robot.tokenize.vocab.Vocabulary`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class TextTokenizer(Protocol):
    """What prompt building needs from a text tokenizer."""

    @property
    def size(self) -> int:
        """Number of text ids; the vocabulary's ``text_size``."""
        ...

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int] | np.ndarray) -> str: ...

    def to_dict(self) -> dict[str, Any]: ...


class ByteTokenizer:
    """One id per UTF-8 byte (ids 0..255). Round-trips every string that UTF-8 can encode."""

    kind = "byte"

    @property
    def size(self) -> int:
        return 256

    def encode(self, text: str) -> list[int]:
        if not isinstance(text, str):
            raise ValueError(f"text to encode must be a str, got {type(text).__name__}")
        try:
            return list(text.encode("utf-8"))
        except UnicodeEncodeError as e:  # lone surrogates, e.g. from a bad file decode
            raise ValueError(f"text is not valid Unicode (cannot be UTF-8 encoded): {e}") from e

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        """Bytes back to text. Invalid UTF-8 (only possible for model output) becomes U+FFFD."""
        arr = np.asarray(ids, dtype=np.int64).reshape(-1)
        bad = arr[(arr < 0) | (arr >= 256)]
        if bad.size:
            raise ValueError(
                f"byte tokenizer ids must be in [0, 256); got {bad[:8].tolist()} "
                "(strip special and bin ids before decoding text)"
            )
        return bytes(arr.astype(np.uint8).tolist()).decode("utf-8", errors="replace")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind}


class SentencePieceTokenizer:
    """A SentencePiece model file, e.g. the LLaMA tokenizer UIO2 uses (32000 ids).

    The model file is referenced by path; whoever writes a checkpoint or deploy bundle that
    uses it must ship the file alongside (the path is stored as given).
    """

    kind = "sentencepiece"

    def __init__(self, model_path: str | Path) -> None:
        self.model_path = str(model_path)
        if not Path(self.model_path).is_file():
            raise FileNotFoundError(
                f"SentencePiece model file not found: {self.model_path!r} "
                "(configure an existing .model file, or use the byte tokenizer)"
            )
        try:
            import sentencepiece  # optional extra, imported only when configured
        except ImportError as e:
            raise ImportError(
                "a SentencePiece text tokenizer is configured but the 'sentencepiece' package is "
                "not installed; install it with `pip install -e '.[sentencepiece]'` or configure "
                "the byte tokenizer"
            ) from e
        self._sp = sentencepiece.SentencePieceProcessor(model_file=self.model_path)

    @property
    def size(self) -> int:
        return int(self._sp.get_piece_size())

    def encode(self, text: str) -> list[int]:
        if not isinstance(text, str):
            raise ValueError(f"text to encode must be a str, got {type(text).__name__}")
        return [int(i) for i in self._sp.encode(text, out_type=int)]

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        arr = np.asarray(ids, dtype=np.int64).reshape(-1)
        bad = arr[(arr < 0) | (arr >= self.size)]
        if bad.size:
            raise ValueError(
                f"SentencePiece ids must be in [0, {self.size}); got {bad[:8].tolist()}"
            )
        return str(self._sp.decode(arr.tolist()))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "model_path": self.model_path}


def text_tokenizer_from_dict(d: dict[str, Any]) -> ByteTokenizer | SentencePieceTokenizer:
    """Rebuild a text tokenizer from its ``to_dict`` output."""
    kind = d.get("kind")
    if kind == ByteTokenizer.kind:
        return ByteTokenizer()
    if kind == SentencePieceTokenizer.kind:
        if "model_path" not in d:
            raise ValueError("sentencepiece tokenizer config needs a 'model_path'")
        return SentencePieceTokenizer(d["model_path"])
    raise ValueError(f"unknown text tokenizer kind {kind!r}; expected 'byte' or 'sentencepiece'")


def make_text_tokenizer(
    sentencepiece_model: str | Path | None = None,
) -> ByteTokenizer | SentencePieceTokenizer:
    """The byte tokenizer, or a SentencePiece one when a model file is configured."""
    if sentencepiece_model is None or str(sentencepiece_model) == "":
        return ByteTokenizer()
    return SentencePieceTokenizer(sentencepiece_model)
