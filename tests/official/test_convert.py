"""`official import`: release folder -> project checkpoint, and `official check`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from tests.official.conftest import DATA
from uio2_robot.errors import UsageError
from uio2_robot.official.command import OfficialCommandConfig, run_official_command
from uio2_robot.official.convert import import_release, load_official_checkpoint
from uio2_robot.official.parity import compare_to_fixture


def test_import_writes_a_checkpoint_that_reproduces_the_official_logits(
    release_dir, tmp_path, fixture_tensors
):
    report = import_release(release_dir, tmp_path / "ckpt")
    assert report.dropped_keys == ("audio_token_embedder.weight", "image_token_embedder.weight")
    assert report.n_used_keys + len(report.dropped_keys) == report.n_official_keys == 146
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert config["dropped_keys"] == list(report.dropped_keys)
    model, processor, _ = load_official_checkpoint(tmp_path / "ckpt")
    assert processor["kind"] == "uio2_official"
    assert compare_to_fixture(model, fixture_tensors).ok


def test_bf16_stays_bf16_and_a_pickle_bin_is_read_weights_only(release_dir, tmp_path):
    weights = load_file(str(release_dir / "model.safetensors"))
    bf16 = {k: v.to(torch.bfloat16) for k, v in weights.items()}
    (release_dir / "model.safetensors").unlink()
    torch.save(bf16, release_dir / "pytorch_model.bin")
    import_release(release_dir, tmp_path / "kept")
    import_release(release_dir, tmp_path / "fp32", dtype="float32")
    with safe_open(str(tmp_path / "kept" / "model.safetensors"), "pt") as f:
        assert {f.get_slice(k).get_dtype() for k in f.keys()} == {"BF16"}  # noqa: SIM118
        wqkv = f.get_tensor("encoder_layers.0.attn.wqkv.weight")
    expected = torch.cat(
        [bf16[f"encoder.layers_0.attention.{p}.weight"] for p in ("query", "key", "value")]
    )
    assert torch.equal(wqkv, expected)
    with safe_open(str(tmp_path / "fp32" / "model.safetensors"), "pt") as f:
        assert {f.get_slice(k).get_dtype() for k in f.keys()} == {"F32"}  # noqa: SIM118


def test_bad_release_folders_get_clear_errors(tmp_path, release_dir):
    with pytest.raises(UsageError, match="no config.json"):
        import_release(tmp_path, tmp_path / "out")
    (release_dir / "model.safetensors").unlink()
    with pytest.raises(UsageError, match="no weights; expected one of"):
        import_release(release_dir, tmp_path / "out")
    cfg = json.loads((DATA / "config.json").read_text())
    cfg["image_history_cfg"]["mlp_activations"] = ["silu", "linear"]
    (release_dir / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UsageError, match=r"image_history_cfg\.mlp_activations"):
        import_release(release_dir, tmp_path / "out")


def test_check_command_passes_on_the_fixture_and_fails_past_tolerance(
    release_dir, tmp_path, capsys
):
    fixture = str(DATA / "fixture.safetensors")
    cfg = OfficialCommandConfig(src=str(release_dir), fixture=fixture)
    assert run_official_command(cfg, ["check"]) == 0
    out = capsys.readouterr().out
    assert "text_logits" in out and "greedy tokens" in out and "PASS" in out
    # a perturbed weight: the check must fail, naming the stages past tolerance
    weights = load_file(str(release_dir / "model.safetensors"))
    weights["encoder.layers_1.mlp.wo.weight"] += 1e-2
    from safetensors.torch import save_file

    save_file(weights, str(release_dir / "model.safetensors"))
    assert run_official_command(cfg, ["check"]) == 1
    assert "FAIL" in capsys.readouterr().out


@pytest.mark.skipif(not os.environ.get("UIO2_RELEASE_DIR"), reason="set UIO2_RELEASE_DIR")
def test_a_real_release_imports_and_runs(tmp_path):
    """With the real weights (allenai/uio2-large|xl|xxl downloaded by the user)."""
    src = Path(os.environ["UIO2_RELEASE_DIR"])
    report = import_release(src, tmp_path / "ckpt")
    assert report.dropped_keys and report.n_weights > 0
    model, _, _ = load_official_checkpoint(tmp_path / "ckpt")
    assert model.cfg.vocab_size == 33280


def test_a_bf16_checkpoint_runs_in_bf16_when_asked(release_dir, tmp_path, fixture_tensors):
    """keep_dtype: a bf16 xxl is 12 GiB as stored, 24 GiB in float32 (a 24 GiB machine)."""
    import_release(release_dir, tmp_path / "bf16", dtype="bfloat16")
    model, _, _ = load_official_checkpoint(tmp_path / "bf16", keep_dtype=True)
    assert model.token_embed.weight.dtype == torch.bfloat16
    report = compare_to_fixture(model, fixture_tensors)
    logits = next(s for s in report.stages if s.stage == "text_logits")
    assert logits.max_abs_diff < 0.5 and report.greedy_match  # bf16 rounding, same tokens


def test_a_sharded_release_with_an_index_imports_the_same(release_dir, tmp_path):
    from safetensors.torch import save_file

    weights = load_file(str(release_dir / "model.safetensors"))
    keys = sorted(weights)
    shards = {
        "model-00001-of-00002.safetensors": keys[::2],
        "model-00002-of-00002.safetensors": keys[1::2],
    }
    for name, part in shards.items():
        save_file({k: weights[k] for k in part}, str(release_dir / name))
    index = {"weight_map": {k: name for name, part in shards.items() for k in part}}
    (release_dir / "model.safetensors.index.json").write_text(json.dumps(index))
    (release_dir / "model.safetensors").unlink()
    report = import_release(release_dir, tmp_path / "ckpt")
    assert report.n_official_keys == 146
    with safe_open(str(tmp_path / "ckpt" / "model.safetensors"), "pt") as f:
        assert torch.equal(
            f.get_tensor("token_embed.weight"), weights["text_token_embedder.weight"]
        )
