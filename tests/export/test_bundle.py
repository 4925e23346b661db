"""The deploy bundle: what `uio2-robot export` writes, and that it round-trips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from uio2_robot.errors import UsageError
from uio2_robot.export.command import run_export_command
from uio2_robot.export.config import ExportConfig
from uio2_robot.export.parity import synthetic_episodes, torch_greedy
from uio2_robot.model.inputs import EncoderInputs
from uio2_robot.runtime.manifest import (
    ENCODER_INPUTS,
    OPSET,
    load_bundle,
    model_hash,
    sha256_file,
)
from uio2_robot.tokenize.processor import Processor
from uio2_robot.train.checkpoint import load_checkpoint


def test_bundle_round_trip(exported: dict, bundle: Path, checkpoint: Path) -> None:
    assert exported["status"] == 0
    assert sorted(p.name for p in bundle.iterdir()) == [
        "decoder_greedy.onnx",
        "decoder_step.onnx",
        "encoder.onnx",
        "manifest.json",
        "processor.json",
    ]  # weights inside the graphs: no external-data side files
    loaded = load_bundle(bundle)
    m = loaded.manifest
    _, config, processor_dict = load_checkpoint(checkpoint)
    assert m["model_config"] == config["model"]
    assert loaded.processor == Processor.from_dict(processor_dict)
    assert m["variant"] == "fp32" and m["opset"] == OPSET
    assert {"torch", "onnx", "onnxscript", "onnxruntime"} <= set(m["exporter"])
    assert m["source_checkpoint"]["weights_sha256"] == sha256_file(checkpoint / "model.safetensors")
    graphs = ("encoder", "decoder_step", "decoder_greedy")
    hashes = {g: sha256_file(bundle / m["files"][g]["path"]) for g in graphs}
    assert {g: m["files"][g]["sha256"] for g in hashes} == hashes
    assert m["model_hash"] == model_hash(hashes)
    for name in ("encoder.onnx", "decoder_step.onnx", "decoder_greedy.onnx"):
        onnx.checker.check_model(str(bundle / name), full_check=True)
        assert [
            o.version for o in onnx.load(str(bundle / name)).opset_import if o.domain == ""
        ] == [OPSET]
    # the manifest documents the processors a non-Python reader needs
    assert m["vocabulary"] == loaded.processor.vocab.to_dict()
    assert m["normalization"]["proprio_std"] == loaded.processor.proprio_std.tolist()
    assert m["image_preprocessing"]["image_size"] == list(loaded.processor.image_size)
    assert set(m["action_bins"]) == {"primitive", "delta"}


def test_graph_io_has_dynamic_batch_and_cache(bundle: Path) -> None:
    loaded = load_bundle(bundle)
    enc = loaded.inputs("encoder")
    # EncoderInputs less the prompt-scene inputs: this model has no scene slots
    names = tuple(n for n in EncoderInputs.names() if not n.startswith("scene_"))
    assert tuple(s.name for s in enc) == names == ENCODER_INPUTS
    assert all(s.shape[0] == "batch" for s in enc)
    dec = {s.name: s for s in loaded.inputs("decoder_step")}
    assert dec["self_k"].shape[1] == "batch" and dec["self_k"].shape[3] == "cache"
    assert [s.name for s in loaded.outputs("decoder_step")] == [
        "logits",
        "self_k_out",
        "self_v_out",
    ]
    assert (
        loaded.outputs("decoder_step")[0].shape[-1] == loaded.manifest["model_config"]["vocab_size"]
    )
    # the fused decoder unrolls the longest action mode's tokens and computes the logits of the
    # action bins only; batch and encoder length stay dynamic
    tokens, logits = loaded.outputs("decoder_greedy")
    modes = loaded.manifest["decoding"]["action_modes"].values()
    longest = max(m["n_tokens"] for m in modes)
    lo, hi = loaded.manifest["greedy_decoder"]["ids"]
    assert [lo, hi] == [
        min(m["allowed_ids"][0] for m in modes),
        max(m["allowed_ids"][1] for m in modes),
    ]
    assert tokens.shape == ("batch", longest) and tokens.dtype == "int64"
    assert logits.shape == ("batch", longest, hi - lo)
    greedy = {s.name: s for s in loaded.inputs("decoder_greedy")}
    assert greedy["cross_k"].shape[3] == "enc_len" and greedy["allowed"].dtype == "bool"


def test_greedy_decoder_token_graph_stays_lean(bundle: Path) -> None:
    """The export-only paths that make a decoder token cheap are in the graph: RoPE rotations
    are constant (no Cos/Sin; one MatMul by a (1, 1, Dh, Dh) matrix each), and the cross mask is
    a bias made once (no NaN clean-up, one Where for the whole call besides the constraint's)."""
    loaded = load_bundle(bundle)
    model = onnx.load(str(loaded.graph_path("decoder_greedy")))
    ops = [n.op_type for n in model.graph.node]
    cfg = loaded.manifest["model_config"]
    n_tokens = loaded.outputs("decoder_greedy")[0].shape[1]
    assert "Cos" not in ops and "Sin" not in ops and "IsNaN" not in ops
    assert ops.count("Where") <= 1 + n_tokens  # the bias, then one constraint mask per token
    dh = cfg["head_dim"]
    rotations = {t.name for t in model.graph.initializer if list(t.dims) == [1, 1, dh, dh]}
    rotated = [n for n in model.graph.node if n.op_type == "MatMul" and n.input[1] in rotations]
    # q and k of self-attention and q of cross-attention, per layer and token
    assert len(rotated) == 3 * cfg["n_dec_layers"] * n_tokens


def test_command_ran_parity_and_wrote_report(exported: dict) -> None:
    parity = exported["report"]["parity"]
    assert parity["variant"] == "fp32"
    assert parity["steps"] == 6 and parity["observations"].startswith("synthetic")
    assert parity["step_agreement"] == 1.0
    assert parity["action_agreement"] == 1.0
    assert parity["within_one_bin"] == 1.0
    assert 0.0 <= parity["clear_steps"] <= 1.0
    assert parity["clear_step_agreement"] in (None, 1.0)
    assert parity["max_logit_diff"] < 1e-4
    assert parity["passed"] is True


def test_batched_decoding_matches_torch_and_single(runner, checkpoint: Path) -> None:
    """Dynamic batch: one batch of 3 gives each example's tokens, as torch does."""
    from uio2_robot.policies.uio2 import UIO2Policy

    torch_policy = UIO2Policy.from_checkpoint(checkpoint)
    processor = runner.bundle.processor
    episodes = synthetic_episodes(processor, n_episodes=3, steps=1, seed=5)
    examples = [
        {**processor.encode_prompt(e.prompt), **processor.encode_observation(e.observations[0])}
        for e in episodes
    ]
    batch = processor.collate(examples)
    ids = processor.allowed_action_ids("primitive")
    allowed = np.zeros(runner.vocab_size, dtype=bool)
    allowed[ids] = True
    n = processor.n_action_tokens("primitive")
    tokens = runner.generate(batch, n, ids)
    assert tokens.shape == (3, n) and np.isin(tokens, ids).all()
    for i, ex in enumerate(examples):
        single = runner.generate(processor.collate([ex]), n, ids)
        np.testing.assert_array_equal(single[0], tokens[i])
    torch.manual_seed(0)
    t_tokens, _ = torch_greedy(torch_policy.model, batch, n, allowed, processor.vocab.bos_id)
    np.testing.assert_array_equal(t_tokens, tokens)


def test_command_rejects_bad_requests(tmp_path: Path, checkpoint: Path, bundle: Path) -> None:
    with pytest.raises(UsageError, match="checkpoint=DIR"):
        run_export_command(ExportConfig(out=str(tmp_path / "b")))
    with pytest.raises(UsageError, match="variant must be one of"):
        run_export_command(
            ExportConfig(checkpoint=str(checkpoint), out=str(tmp_path / "b"), variant="int4")
        )
    with pytest.raises(UsageError, match="checkpoint folder not found"):
        run_export_command(ExportConfig(checkpoint=str(tmp_path / "nope"), out=str(tmp_path / "b")))
    with pytest.raises(UsageError, match="already exists"):
        run_export_command(ExportConfig(checkpoint=str(checkpoint), out=str(bundle)))
    # a failed export leaves the existing bundle untouched and nothing half-written beside it
    assert load_bundle(bundle).variant == "fp32"
    assert not [p for p in bundle.parent.iterdir() if p.name.startswith(".bundle.")]


def test_a_typo_in_a_plain_config_is_refused_by_name() -> None:
    from omegaconf import OmegaConf

    with pytest.raises(UsageError, match="unknown export options.*typo_option"):
        run_export_command(OmegaConf.create({"checkpoint": None, "typo_option": 1}))


def test_wide_conv_stem_model_exports_with_parity(tmp_path: Path, export_and_check) -> None:
    """The shipped policy's shape: a 2:1 observation through the conv patch stem."""
    result = export_and_check(
        tmp_path, seed=1, episodes=1, steps=2, image_width=64, patch_size=8, patch_stem="conv"
    )
    assert result["status"] == 0
    parity = result["report"]["parity"]
    assert parity["passed"] is True and parity["action_agreement"] == 1.0
    enc = {s.name: s for s in load_bundle(tmp_path / "bundle").inputs("encoder")}
    assert tuple(enc["obs_images"].shape[-2:]) == (32, 64)


def test_parity_refuses_a_checkpoint_changed_since_export(
    tmp_path: Path, checkpoint: Path, bundle: Path
) -> None:
    import shutil

    from uio2_robot.export.parity import check_parity
    from uio2_robot.export.random_checkpoint import make_random_checkpoint

    moved = tmp_path / "ckpt"
    shutil.copytree(checkpoint, moved)
    make_random_checkpoint(moved, "tiny", seed=7)  # same place, other weights (a later save)
    with pytest.raises(ValueError, match="no longer holds the weights"):
        check_parity(moved, bundle, use_suite=False)
