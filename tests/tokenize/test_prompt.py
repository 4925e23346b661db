import numpy as np
import pytest

from uio2_robot.tokenize.prompt import PREFIX_LEN, describe_tokens, encode_prompt
from uio2_robot.tokenize.text import ByteTokenizer
from uio2_robot.tokenize.vocab import Vocabulary

VOCAB = Vocabulary(text_size=256)
TEXT = ByteTokenizer()


def _img(value: int, h: int = 12, w: int = 20) -> np.ndarray:
    return np.full((h, w, 3), value, dtype=np.uint8)


def _encode(segments, **kw):
    args = {"max_tokens": 48, "max_images": 4, "image_size": (8, 8)}
    args.update(kw)
    return encode_prompt(segments, VOCAB, TEXT, **args)


def test_interleaved_markers_where_images_are():
    red, blue = _img(255), _img(0)
    out = _encode(["Put ", red, " into ", blue, "."])
    tokens, mask = out["tokens"], out["token_mask"]
    assert tokens.shape == (48,) and tokens.dtype == np.int64 and mask.dtype == bool
    assert tokens[0] == VOCAB.paradigm_id("S") and tokens[1] == VOCAB.modality_id("action")
    expected = [*TEXT.encode("Put "), VOCAB.image_marker_id(0)]
    expected += [*TEXT.encode(" into "), VOCAB.image_marker_id(1), *TEXT.encode(".")]
    n = PREFIX_LEN + len(expected)
    assert tokens[PREFIX_LEN:n].tolist() == expected
    assert mask[:n].all() and not mask[n:].any()
    assert (tokens[n:] == VOCAB.pad_id).all()
    # image k is in slot k, resized and scaled to [-1, 1]; unused slots are zero and masked
    imgs = out["prompt_images"]
    assert imgs.shape == (4, 3, 8, 8) and imgs.dtype == np.float32
    assert out["prompt_image_mask"].tolist() == [True, True, False, False]
    np.testing.assert_allclose(imgs[0], 1.0)
    np.testing.assert_allclose(imgs[1], -1.0)
    assert not imgs[2:].any()
    assert describe_tokens(tokens[:n], VOCAB, TEXT) == "[S][Action]Put <img_0> into <img_1>."


def test_paradigm_and_target_prefix():
    out = _encode(["hello"], paradigm="X", target_modality="text")
    assert out["tokens"][:2].tolist() == [VOCAB.paradigm_id("X"), VOCAB.modality_id("text")]


def test_too_long_raises_or_truncates():
    long_text = "x" * 60
    with pytest.raises(ValueError, match="max_tokens"):
        _encode([long_text])
    with pytest.raises(ValueError, match="max_images"):
        _encode(["a", _img(1), _img(2)], max_images=1)
    out = _encode([long_text[:46], _img(9), "tail"], overflow="truncate")
    assert out["token_mask"].all()
    assert out["tokens"][-1] == ord("x")  # the marker did not fit ...
    assert not out["prompt_image_mask"].any()  # ... so its image is dropped too
    out = _encode(["a", _img(1), "b", _img(2)], max_images=1, overflow="truncate")
    assert out["prompt_image_mask"].tolist() == [True]
    assert (out["tokens"] == VOCAB.image_marker_id(0)).sum() == 1


@pytest.mark.parametrize(
    "segments, match",
    [
        ("just a string", "list of segments"),
        (["ok", np.zeros((4, 4, 3), np.float32)], r"prompt segment 1 must have dtype uint8"),
        (["ok", np.zeros((4, 4), np.uint8)], r"prompt segment 1 must have shape"),
        (["ok", 5], "prompt segment 1 must be a str"),
    ],
)
def test_bad_segments(segments, match):
    with pytest.raises(ValueError, match=match):
        _encode(segments)


def test_bad_config():
    with pytest.raises(ValueError, match="max_images"):
        _encode(["a"], max_images=9)
    with pytest.raises(ValueError, match="overflow"):
        _encode(["a"], overflow="drop")
    with pytest.raises(ValueError, match="paradigm"):
        _encode(["a"], paradigm="Z")
