import subprocess
import sys

import pytest

from uio2_robot.tokenize.text import (
    ByteTokenizer,
    SentencePieceTokenizer,
    make_text_tokenizer,
    text_tokenizer_from_dict,
)


@pytest.mark.parametrize(
    "text",
    ["", "Put the red block into the bowl.", "Grüße, 日本語, emoji 🤖 and\ttabs\n", "\x00\x7f"],
)
def test_byte_round_trip(text):
    tok = ByteTokenizer()
    ids = tok.encode(text)
    assert all(0 <= i < tok.size for i in ids)
    assert len(ids) == len(text.encode("utf-8"))
    assert tok.decode(ids) == text


def test_byte_errors():
    tok = ByteTokenizer()
    with pytest.raises(ValueError, match="str"):
        tok.encode(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="Unicode"):
        tok.encode("\ud800")  # lone surrogate
    with pytest.raises(ValueError, match=r"\[0, 256\)"):
        tok.decode([65, 300])
    # truncated multi-byte sequence (possible in model output) decodes without raising
    assert tok.decode(list("é".encode())[:1]) == "\ufffd"


def test_factory_and_dict():
    tok = make_text_tokenizer(None)
    assert isinstance(tok, ByteTokenizer)
    assert isinstance(text_tokenizer_from_dict(tok.to_dict()), ByteTokenizer)
    with pytest.raises(ValueError, match="kind"):
        text_tokenizer_from_dict({"kind": "wordpiece"})


def test_sentencepiece_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        SentencePieceTokenizer(tmp_path / "nope.model")


def test_sentencepiece_missing_package(tmp_path):
    model = tmp_path / "tok.model"
    model.write_bytes(b"not really a model")
    try:
        import sentencepiece  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pip install"):
            make_text_tokenizer(model)
    else:  # pragma: no cover - the optional extra is installed here
        with pytest.raises(Exception):  # noqa: B017 - garbage file must not load silently
            make_text_tokenizer(model)


def test_tokenize_does_not_import_torch():
    code = (
        "import sys; import uio2_robot.tokenize as t; "
        "p = t.Processor.for_suite(); "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
