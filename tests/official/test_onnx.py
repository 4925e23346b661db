"""ONNX export of the imported tiny official model: onnxruntime vs torch, greedy tokens."""

from __future__ import annotations

import json

from tests.official.conftest import DATA
from uio2_robot.official.command import OfficialCommandConfig, run_official_command
from uio2_robot.official.convert import import_release


def test_export_and_parity_on_the_fixture_batch(release_dir, tmp_path, capsys):
    import_release(release_dir, tmp_path / "ckpt")
    cfg = OfficialCommandConfig(
        src=str(tmp_path / "ckpt"), out=str(tmp_path / "onnx"),
        fixture=str(DATA / "fixture.safetensors"),
    )  # fmt: skip
    assert run_official_command(cfg, ["export"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["tokens_match"] and report["logits_max_diff"] < 1e-4
    # the encoder graph takes 128 padded text tokens and max_frames history frames; the runtime
    # pads the fixture's own batch (15 tokens, 3 frames) and decodes the same tokens as torch
    assert report["runtime_tokens_match"] and report["text_len"] == 128
    assert report["cross_kv_max_diff"] < 1e-4
    # the official greedy tokens of the fixture, now from onnxruntime
    assert report["tokens_onnx"][:6] == [4589] * 6
    assert (tmp_path / "onnx" / "encoder.onnx").is_file()
    assert (tmp_path / "onnx" / "decoder_step.onnx").is_file()
