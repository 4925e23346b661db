"""ModelConfig presets, overrides, validation and JSON round trip."""

from __future__ import annotations

import json

import pytest

from uio2_robot.model import PRESETS, ModelConfig, get_config
from uio2_robot.model import config as config_module


def test_all_presets_exist_and_are_consistent():
    assert set(PRESETS) == {"tiny", "small", "base", "large", "xl", "xxl"}
    for name, cfg in PRESETS.items():
        assert cfg.name == name
        assert cfg.encoder_seq_len == (
            cfg.max_prompt_tokens
            + cfg.max_prompt_images * cfg.n_latents
            + cfg.n_views * cfg.n_patches
            + cfg.max_history * cfg.n_views * cfg.n_latents
            + 1
        )


def test_paper_presets_have_paper_dimensions():
    table = {  # REFERENCE.md section 1
        "large": (1024, 2816, 16, 64, 768, 12, 2048),
        "xl": (2048, 5120, 16, 128, 1024, 16, 4096),
        "xxl": (3072, 8192, 24, 128, 1024, 16, 4096),
    }
    for name, dims in table.items():
        c = get_config(name)
        got = (c.d_model, c.mlp_hidden, c.n_heads, c.head_dim)
        got += (c.resampler_dim, c.resampler_heads, c.resampler_mlp)
        assert got == dims, name
        assert (c.n_enc_layers, c.n_dec_layers, c.n_latents) == (24, 24, 32)


def test_unknown_preset_lists_the_presets():
    with pytest.raises(ValueError, match="unknown model preset 'huge'.*tiny"):
        get_config("huge")


def test_overrides_and_unknown_override():
    cfg = get_config("tiny", vocab_size=999, image_marker_id=None)
    assert cfg.vocab_size == 999 and PRESETS["tiny"].vocab_size != 999
    with pytest.raises(ValueError, match="unknown ModelConfig fields"):
        get_config("tiny", d_modle=8)


def test_json_round_trip():
    for cfg in PRESETS.values():
        again = ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
        assert again == cfg


def test_from_dict_rejects_unknown_keys():
    d = PRESETS["tiny"].to_dict() | {"dropout": 0.1}
    with pytest.raises(ValueError, match="unknown ModelConfig keys \\['dropout'\\]"):
        ModelConfig.from_dict(d)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"head_dim": 18}, "head_dim must be a multiple of 4"),
        ({"image_size": 30}, "image_size=30 must be a multiple of patch_size=8"),
        ({"d_model": 0}, "d_model must be an int >= 1"),
        ({"n_heads": 2.0}, "n_heads must be an int"),
        ({"resampler_heads": 3}, "divisible by resampler_heads=3"),
        ({"image_marker_id": 1473}, "end past vocab_size"),
    ],
)
def test_invalid_configs_are_refused(override, message):
    with pytest.raises(ValueError, match=message):
        get_config("tiny", **override)


def test_vocab_constants_match_the_tokenizer_layout():
    """config.py keeps the vocabulary sizes as numbers (model must not import tokenize)."""
    from uio2_robot.tokenize.vocab import Vocabulary

    byte, llama = Vocabulary(text_size=256), Vocabulary(text_size=32000)
    assert byte.size == config_module.BYTE_VOCAB_SIZE
    assert byte.image_marker_id(0) == config_module.BYTE_IMAGE_MARKER_ID
    assert llama.size == config_module.UIO2_VOCAB_SIZE
    assert llama.image_marker_id(0) == config_module.UIO2_IMAGE_MARKER_ID
    for cfg in PRESETS.values():
        assert cfg.max_prompt_images <= byte.n_image_markers
