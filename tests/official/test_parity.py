"""OfficialUIO2 against the official implementation's recorded activations (tiny fixture)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from tests.official.conftest import DATA
from uio2_robot.model.official import OfficialConfig, OfficialUIO2
from uio2_robot.official.keymap import build_tensor, plan_mapping
from uio2_robot.official.parity import compare_to_fixture
from uio2_robot.official.release import load_release_model


def _load(cfg: OfficialConfig, official: dict[str, torch.Tensor]) -> OfficialUIO2:
    model = OfficialUIO2(cfg).eval()
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    plan = plan_mapping({k: tuple(v.shape) for k, v in official.items()}, shapes)
    model.load_state_dict({t.key: build_tensor(t, official.__getitem__) for t in plan.targets})
    return model


def test_every_stage_logits_and_greedy_tokens_match_the_official_code(release_dir, fixture_tensors):
    model, plan = load_release_model(release_dir)
    report = compare_to_fixture(model, fixture_tensors)
    stages = {s.stage: s for s in report.stages}
    # every stage the fixture records is compared, each within its stated tolerance
    assert set(stages) == {
        "vit_image/0", "vit_image/1", "input_text/embed", "input_image/embed",
        "input_image_history/embed", "resampler", "encoder_hidden",
        "target_text/input_embedding", "decoder_hidden", "text_logits",
    }  # fmt: skip
    assert all(s.ok for s in report.stages), report.lines()
    assert stages["text_logits"].max_abs_diff < 1e-5
    assert report.greedy_match is True and report.ok
    assert plan.dropped == ("audio_token_embedder.weight", "image_token_embedder.weight")


def test_a_missing_target_modality_embedding_is_caught(release_dir, fixture_tensors):
    model, _ = load_release_model(release_dir)
    with torch.no_grad():
        model.target_text_modality.zero_()
    report = compare_to_fixture(model, fixture_tensors)
    logits = next(s for s in report.stages if s.stage == "text_logits")
    assert not logits.ok and logits.max_abs_diff > 0.1 and not report.ok


def test_xxl_scaled_cosine_resampler_variant(official_weights):
    """The XXL release has per-head logit_scale (H,) and no resampler QK-norm weights."""
    cfg = OfficialConfig.from_release(json.loads((DATA / "config_xxl_resampler.json").read_text()))
    assert cfg.resampler_scaled_cosine
    xxl = load_file(str(DATA / "xxl_resampler.safetensors"))
    weights = {
        k: v
        for k, v in official_weights.items()
        if not (
            "image_history.resampler" in k and k.endswith(("query_norm.scale", "key_norm.scale"))
        )
    }
    scales = {k[len("param/") :]: v for k, v in xxl.items() if k.startswith("param/")}
    assert len(scales) == 2 and all(v.shape == (2,) for v in scales.values())
    # one head per layer is set above the log(100) clamp: the clamp must act
    assert all(float(v.max()) > torch.log(torch.tensor(100.0)) for v in scales.values())
    model = _load(cfg, {**weights, **scales})
    fixture = {**load_file(str(DATA / "fixture.safetensors")), **xxl}
    fixture = {k: v for k, v in fixture.items() if not k.startswith(("act/", "out/"))} | {
        k: v for k, v in xxl.items() if not k.startswith("param/")
    }
    report = compare_to_fixture(model, fixture)
    stages = {s.stage for s in report.stages}
    assert {"input_image_history/embed", "encoder_hidden", "text_logits_last"} <= stages
    assert report.ok, report.lines()


def test_a_release_with_an_unknown_or_missing_key_is_refused(official_weights, release_config):
    cfg = OfficialConfig.from_release(release_config)
    shapes = {k: tuple(v.shape) for k, v in OfficialUIO2(cfg).state_dict().items()}
    official = {k: tuple(v.shape) for k, v in official_weights.items()}
    with pytest.raises(ValueError, match="not in the key table"):
        plan_mapping({**official, "encoder.layers_0.surprise.weight": (4,)}, shapes)
    missing = dict(official)
    del missing["encoder.layers_1.mlp.wi_1.weight"]
    with pytest.raises(ValueError, match=r"lacks official parts \['wi_1'\]"):
        plan_mapping(missing, shapes)
    bad = {**official, "decoder.decoder_norm.scale": (17,)}
    with pytest.raises(ValueError, match="shape mismatch for 'decoder_norm.weight'"):
        plan_mapping(bad, shapes)


def test_bad_inputs_and_unsupported_configs_are_refused(release_config, fixture_tensors):
    from uio2_robot.official.parity import fixture_inputs

    cfg = OfficialConfig.from_release(release_config)
    inp = fixture_inputs(fixture_tensors)
    inp.image = inp.image[:, :, :100]  # not 16 x 16 x 3 pixels per patch
    with pytest.raises(ValueError, match=r"OfficialInputs.image has shape \(1, 16, 100\)"):
        inp.validate(cfg)
    bad = json.loads(json.dumps(release_config))
    bad["t5_config"]["decoder_xattention_internval"] = 2
    with pytest.raises(ValueError, match="decoder_xattention_internval"):
        OfficialConfig.from_release(bad)
    assert OfficialConfig.from_dict(cfg.to_dict()) == cfg
