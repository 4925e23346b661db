"""Parameter counts of the presets, counted on the meta device (no weights allocated)."""

from __future__ import annotations

import json

import pytest
import torch

from uio2_robot.model import GROUPS, UIO2Model, count_parameters, get_config, model_info

# UIO2 paper: encoder + decoder + embeddings (REFERENCE.md section 1).
PAPER = {"large": 0.78e9, "xl": 2.84e9, "xxl": 6.52e9}


@pytest.mark.parametrize("name", sorted(PAPER))
def test_paper_presets_within_5_percent(name):
    counts = count_parameters(name)
    core = counts["encoder"] + counts["decoder"] + counts["embeddings"]
    assert abs(core / PAPER[name] - 1) < 0.05, (name, core)
    assert counts["total"] == core + counts["resampler"]


def test_tiny_is_a_few_hundred_k_and_counts_match_real_weights(tiny_cfg):
    counts = count_parameters(tiny_cfg)
    assert 1e5 < counts["total"] < 1e6
    real = UIO2Model(tiny_cfg)
    assert counts["total"] == sum(p.numel() for p in real.parameters())
    assert counts["embeddings"] == tiny_cfg.vocab_size * tiny_cfg.d_model


def test_counting_allocates_nothing():
    from uio2_robot.model.params import build_meta_model

    model = build_meta_model(get_config("xxl"))
    assert all(p.device == torch.device("meta") for p in model.parameters())


def test_model_info_is_json_and_describes_the_layout():
    info = json.loads(json.dumps(model_info("small")))
    cfg = get_config("small")
    assert info["name"] == "small"
    assert info["config"] == cfg.to_dict()
    assert info["parameters"] == count_parameters("small")
    groups = info["encoder_groups"]
    assert list(groups) == list(GROUPS)
    assert groups["prompt_scenes"]["tokens"] == 0  # no scene slots unless configured
    assert groups["proprio"]["stop"] == info["encoder_seq_len"] == cfg.encoder_seq_len
    with pytest.raises(ValueError, match="unknown model preset"):
        model_info("nope")
