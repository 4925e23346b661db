"""The official vocabulary, tokenizer and numpy preprocessing against the official batch."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

from tests.official.conftest import DATA
from uio2_robot.tokenize.official_images import image_input, resize_antialias
from uio2_robot.tokenize.official_vocab import (
    MODEL_VOCAB_SIZE,
    OfficialVocabulary,
    bin_to_value,
    value_to_bin,
)

META = json.loads((DATA / "meta.json").read_text())
LAYOUT = json.loads((DATA / "vocab_layout.json").read_text())
PREPROCESS_TOL = 1e-6  # CLIP-normalised units; measured 4.8e-7 (float32 sums, TF vs numpy)


def test_vocabulary_layout_matches_the_released_ids_without_any_model_file():
    vocab = OfficialVocabulary(32000)
    assert vocab.n_pieces == LAYOUT["n_pieces_total"] == 33225 and MODEL_VOCAB_SIZE == 33280
    pieces = LAYOUT["pieces"]
    assert all(vocab.extra_id(i) == pieces[f"\u2581<extra_id_{i}>"] for i in range(1200))
    assert vocab.extra_id(0) == 33199 and vocab.bin_id(0) == 32999 and vocab.bin_id(999) == 32000
    assert all(
        vocab.image_history_id(k) == pieces[f"\u2581<image_history_{k}>"] for k in range(1, 9)
    )
    assert vocab.prefix_id("[Text] [S]") == pieces["\u2581[Text]\u2581[S]"] == 33218
    assert vocab.bin_ids_range == (32000, 33000)
    assert vocab.bin_of(np.array([32999, 32000])).tolist() == [0, 999]
    with pytest.raises(ValueError, match="not value bins"):
        vocab.bin_of(33100)
    # int(v * 999); the target's <extra_id_712/455/210> are bins 512, 255, 10
    assert value_to_bin(0.7128) == 712 and value_to_bin(1.0) == 999 and value_to_bin(-0.2) == 0
    assert [vocab.bin_id(b) for b in (512, 255, 10)] == META["target_tokens"][5:8]
    assert bin_to_value(999) == 1.0


def test_tokenizer_reorders_the_sentencepiece_model_like_the_official_code():
    pytest.importorskip("sentencepiece")
    from uio2_robot.tokenize.official_vocab import OfficialTokenizer

    tok = OfficialTokenizer(DATA / "tokenizer_synthetic.model")
    ids = tok.encode_input(META["prompt_text"])
    assert ids == META["input_tokens"]
    assert [tok.id_to_piece(i) for i in ids] == META["input_pieces"]
    assert tok.encode_target(META["target_text"]) == META["target_tokens"]
    assert tok.decode(META["target_tokens"]) == META["target_text"]
    assert (tok._sp.bos_id(), tok._sp.eos_id(), tok._sp.unk_id()) == (0, 1, 2)
    with pytest.raises(FileNotFoundError, match="tokenizer.model"):
        OfficialTokenizer(DATA / "missing.model")


def test_numpy_preprocessing_matches_the_tensorflow_batch():
    fx = load_file(str(DATA / "fixture.safetensors"))
    from uio2_robot.tokenize.official_images import history_input

    img = image_input(fx["raw/image_uint8"], (64, 64))
    assert np.abs(img["input"] - fx["batch/inputs/image/input"][0]).max() <= PREPROCESS_TOL
    assert (img["mask"] == fx["batch/inputs/image/mask"][0]).all()  # half the patches padding
    assert img["mask"].sum() == 8
    hist = history_input([fx["raw/history0_uint8"], fx["raw/history1_uint8"]], (48, 48), 3)
    want = fx["batch/inputs/image_history/input"][0]
    assert np.abs(hist["input"] - want).max() <= PREPROCESS_TOL
    for key in ("mask", "pos_ids"):
        assert (hist[key] == fx[f"batch/inputs/image_history/{key}"][0]).all()


def test_antialiasing_matters_when_shrinking():
    """Columns lit one in four, shrunk 4x: antialiased bilinear keeps their mean (0.25), as
    TF's does; plain bilinear samples between unlit columns and loses them (aliasing)."""
    stripes = np.zeros((64, 64, 1), dtype=np.float32)
    stripes[:, ::4] = 1.0
    small = resize_antialias(stripes, 16, 16)
    assert np.allclose(small[1:-1, 1:-1], 0.25, atol=1e-6)  # borders: TF clamps the kernel
    plain = torch.nn.functional.interpolate(
        torch.from_numpy(stripes[..., 0])[None, None], size=(16, 16), mode="bilinear"
    )
    assert float(plain.max()) < 0.1


def test_raw_images_and_text_to_official_logits(release_dir):
    """The whole numpy path (tokenizer + preprocessing) then the model, from the fixture's raw
    uint8 images and prompt: the official logits within 1e-4 (the preprocessing's 5e-7)."""
    pytest.importorskip("sentencepiece")
    from uio2_robot.model.official import OfficialInputs
    from uio2_robot.official.release import load_release_model
    from uio2_robot.tokenize.official_batch import official_example
    from uio2_robot.tokenize.official_vocab import OfficialTokenizer

    fx = load_file(str(DATA / "fixture.safetensors"))
    tok = OfficialTokenizer(DATA / "tokenizer_synthetic.model")
    history = [fx["raw/history0_uint8"], fx["raw/history1_uint8"]]
    batch = official_example(
        tok, META["prompt_text"], fx["raw/image_uint8"], history, (64, 64), (48, 48), 3,
        target=META["target_text"],
    )  # fmt: skip
    for key, value in batch.items():
        assert value.shape == fx[f"batch/{key}"].shape, key
    model, _ = load_release_model(release_dir)
    with torch.no_grad():
        logits = model(
            OfficialInputs.from_official(batch),
            torch.from_numpy(batch["targets/text/inputs"]).long(),
        )
    assert float((logits - torch.from_numpy(fx["out/text_logits"])).abs().max()) < 1e-4
