"""int8 (CPU) and fp16 (GPU) bundles derived from the fp32 export, checked against torch."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import onnx
import pytest

from uio2_robot.export.bundle import convert_bundle
from uio2_robot.export.manifest import load_bundle
from uio2_robot.export.parity import check_parity


def _ops(path: Path) -> Counter:
    return Counter(n.op_type for n in onnx.load(str(path)).graph.node)


def test_int8_loads_and_mostly_agrees(bundle: Path, checkpoint: Path, tmp_path: Path) -> None:
    out = convert_bundle(bundle, tmp_path / "int8", "int8")
    assert out.variant == "int8" and out.manifest["exporter"]["int8_per_channel"] is True
    assert out.manifest["derived_from"]["model_hash"] == load_bundle(bundle).model_hash
    for graph in ("encoder", "decoder_step"):
        ops = _ops(out.graph_path(graph))
        assert ops["DynamicQuantizeLinear"] > 0 and ops["MatMulInteger"] > 0, ops
    report = check_parity(
        checkpoint, out.root, n_episodes=2, max_steps=3, use_suite=False, threads=1
    )
    assert report["variant"] == "int8" and report["threshold"] == 0.99
    assert report["token_agreement"] >= 0.9, report
    assert 0 < report["max_logit_diff"] < 0.5, report


def test_fp16_loads_on_cpu_with_rough_parity(
    bundle: Path, checkpoint: Path, tmp_path: Path
) -> None:
    """fp16 is meant for GPUs; on CPU only loading and rough agreement are checked."""
    out = convert_bundle(bundle, tmp_path / "fp16", "fp16")
    model = onnx.load(str(out.graph_path("decoder_step")))
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer)
    # the interface stays float32, so the runtime feeds every variant the same arrays
    assert out.inputs("decoder_step") == load_bundle(bundle).inputs("decoder_step")
    report = check_parity(
        checkpoint, out.root, n_episodes=1, max_steps=3, use_suite=False, threads=1
    )
    assert report["token_agreement"] >= 0.9, report
    assert report["max_logit_diff"] < 0.05, report


def test_convert_needs_an_fp32_source(bundle: Path, tmp_path: Path) -> None:
    int8 = convert_bundle(bundle, tmp_path / "int8", "int8")
    with pytest.raises(ValueError, match="needs an fp32 bundle"):
        convert_bundle(int8.root, tmp_path / "again", "fp16")
    with pytest.raises(ValueError, match="unknown export variant"):
        convert_bundle(bundle, tmp_path / "x", "int4")
