"""int8 (CPU) and fp16 (GPU) bundles derived from the fp32 export, checked against torch."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest

from uio2_robot.export.bundle import convert_bundle
from uio2_robot.export.parity import check_parity, min_margin
from uio2_robot.runtime.manifest import load_bundle


def _ops(path: Path) -> Counter:
    return Counter(n.op_type for n in onnx.load(str(path)).graph.node)


def test_int8_loads_and_mostly_agrees(bundle: Path, checkpoint: Path, tmp_path: Path) -> None:
    out = convert_bundle(bundle, tmp_path / "int8", "int8")
    assert out.variant == "int8" and out.manifest["exporter"]["int8_per_channel"] is True
    assert out.manifest["derived_from"]["model_hash"] == load_bundle(bundle).model_hash
    # every graph a control step runs is quantised (a prefix bundle's prompt encoder is not)
    graphs = ["encoder", "decoder_step", "decoder_greedy"]
    assert out.manifest["exporter"]["int8_graphs"] == graphs
    for graph in graphs:
        ops = _ops(out.graph_path(graph))
        assert ops["DynamicQuantizeLinear"] > 0 and ops["MatMulInteger"] > 0, ops
    report = check_parity(
        checkpoint, out.root, n_episodes=2, max_steps=3, use_suite=False, threads=1
    )
    assert report["variant"] == "int8" and report["threshold"] == 0.99
    assert report["token_agreement"] >= 0.9, report
    assert 0 < report["max_logit_diff"] < 0.5, report


def test_min_margin_is_the_closest_call_among_allowed_ids() -> None:
    logits = np.array([[5.0, 1.0, 0.9, 0.0], [9.0, 3.0, 1.0, 2.5]])
    allowed = np.array([False, True, True, True])  # id 0 would win but may not be emitted
    assert min_margin(logits, allowed) == pytest.approx(0.1)
    assert min_margin(logits[1:], allowed) == pytest.approx(0.5)


def test_int8_leaves_selection_and_rotation_matmuls_exact(tmp_path: Path) -> None:
    """A MatMul by a 0/1 permutation (the RoPE pair swap) is exact and one by a stack of
    rotations (a decoder token's RoPE) is geometry: int8 must not round either; the weight
    MatMul beside them is quantised."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    from uio2_robot.export.variants import quantize_int8, unquantized_matmuls

    swap = np.eye(8, dtype=np.float32)[np.arange(8) ^ 1]
    rotation = (np.eye(8) * 0.6 + swap * 0.8).astype(np.float32)[None, None]  # (1, 1, 8, 8)
    weight = np.random.default_rng(0).normal(size=(8, 8)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "swap"], ["y"], name="swap_mm"),
            helper.make_node("MatMul", ["y", "rotation"], ["r"], name="rope_mm"),
            helper.make_node("MatMul", ["r", "w"], ["z"], name="weight_mm"),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 1, 8])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [2, 3, 1, 8])],
        [
            numpy_helper.from_array(swap, "swap"),
            numpy_helper.from_array(rotation, "rotation"),
            numpy_helper.from_array(weight, "w"),
        ],
    )
    src = tmp_path / "g.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), src)
    assert unquantized_matmuls(onnx.load(str(src))) == ["swap_mm", "rope_mm"]
    quantized = onnx.load(str(quantize_int8(src, tmp_path / "q.onnx")))
    kinds = {n.name: n.op_type for n in quantized.graph.node}
    assert kinds["swap_mm"] == kinds["rope_mm"] == "MatMul"
    assert "MatMulInteger" in kinds.values()


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


def test_weight_transposes_are_folded_so_int8_sees_the_weights(tmp_path: Path) -> None:
    """A weight the exporter left behind a Transpose (a layer called twice, as in the unrolled
    greedy decoder) becomes a plain initializer: same outputs, and the quantiser can see it."""
    import numpy as np
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from uio2_robot.export.graphs import fold_weight_transposes
    from uio2_robot.export.variants import quantize_int8

    weight = np.random.default_rng(0).normal(size=(8, 16)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Transpose", ["w"], ["wt"], perm=[1, 0]),
            helper.make_node("MatMul", ["x", "wt"], ["h"]),
            helper.make_node("MatMul", ["h", "v"], ["y0"]),
            helper.make_node("MatMul", ["y0", "wt"], ["y"]),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 8])],
        [
            numpy_helper.from_array(weight, "w"),
            numpy_helper.from_array(np.eye(8, 16, dtype=np.float32) * 0.5, "v"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    x = np.random.default_rng(1).normal(size=(4, 16)).astype(np.float32)

    def run(m: onnx.ModelProto) -> np.ndarray:
        return ort.InferenceSession(m.SerializeToString()).run(None, {"x": x})[0]

    before = run(model)
    assert fold_weight_transposes(model.graph)
    assert [n.op_type for n in model.graph.node] == ["MatMul", "MatMul", "MatMul"]
    assert sorted(t.name for t in model.graph.initializer) == ["v", "wt"]  # "w" is unread now
    np.testing.assert_array_equal(run(model), before)
    onnx.save(model, tmp_path / "folded.onnx")
    quantized = onnx.load(str(quantize_int8(tmp_path / "folded.onnx", tmp_path / "q.onnx")))
    assert sum(n.op_type == "MatMulInteger" for n in quantized.graph.node) == 3
