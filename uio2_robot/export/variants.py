"""Graph variants derived from the fp32 export: dynamic int8 for CPUs, float16 for GPUs.

- **int8** (``onnxruntime.quantization.quantize_dynamic``): MatMul/Gemm weights stored as int8,
  activations quantised on the fly per call. No calibration data is needed, which suits a
  bundle made straight from a checkpoint. Per-channel weight scales are optional
  (``per_channel``): they track each output unit's own range and usually improve parity.
  Every graph that runs each control step is quantised (``INT8_GRAPHS``); the prompt encoder
  stays fp32: it runs once per episode, so there is no speed to win, and its error would reach
  every later step. MatMuls by a constant 0/1 matrix (the RoPE pair swap) are exact and never
  quantised: that would only round their input; nor are a decoder token's RoPE rotations. Activation rounding still flips near-tied
  action bins on some steps (the HL-Gauss logits of neighbouring bins nearly tie): measured on
  the shipped policy (v13, 54 suite steps), int8 decoders alone agree with torch on 93% of
  steps, every step graph on 76%, with closed-loop success within the confidence interval.
  Block-wise weight-only 8-bit (``MatMulNBits``) agrees on 98% but runs ~5x slower than fp32 on
  a CPU, so it is no speed variant (README, "ONNX export and runtime").
- **fp16** (``onnxruntime.transformers.float16``, shipped inside the onnxruntime wheel, so no
  extra dependency): weights and compute in half precision, graph inputs and outputs kept
  float32 (``keep_io_types``) so the runtime and the manifest stay the same for every variant.
  This is for CUDA/TensorRT; onnxruntime's CPU provider runs it, but slowly.

Neither needs torch: an existing fp32 bundle can be converted on the robot workstation.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnx
import onnx.numpy_helper

from uio2_robot.runtime.manifest import VARIANTS

INT8_GRAPHS = ("encoder", "step_encoder", "decoder_step", "decoder_greedy", "decoder_guided")
"""The graphs an int8 bundle quantises; the prompt encoder stays fp32 (see above)."""


def unquantized_matmuls(model: onnx.ModelProto) -> list[str]:
    """Names of the MatMul nodes int8 leaves fp32: those whose constant operand holds only 0s
    and 1s (permutations, selections: exact in fp32, so quantising would only add error) or is
    a stack of matrices, rank > 2 (a decoder token's RoPE rotation, ``rope.rotation_matrix``:
    a geometric transform, not a learned weight, which per-channel quantisation cannot take)."""
    constants = {t.name: t for t in model.graph.initializer}
    names = []
    for node in model.graph.node:
        if node.op_type != "MatMul":
            continue
        for name in node.input:
            if name in constants:
                if len(constants[name].dims) > 2:
                    names.append(node.name)
                    continue
                values = onnx.numpy_helper.to_array(constants[name])
                if values.size and np.isin(values, (0.0, 1.0)).all():
                    names.append(node.name)
    return names


def quantize_int8(src: str | Path, dst: str | Path, per_channel: bool = True) -> Path:
    """Dynamic int8 quantisation of the MatMul/Gemm weights of ``src`` into ``dst`` (except
    ``unquantized_matmuls``)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # it logs a pre-processing hint at WARNING on every call
    try:
        quantize_dynamic(
            str(src),
            str(dst),
            op_types_to_quantize=["MatMul", "Gemm"],
            per_channel=per_channel,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=unquantized_matmuls(onnx.load(str(src))),
        )
    finally:
        root.setLevel(level)
    return Path(dst)


def convert_fp16(src: str | Path, dst: str | Path) -> Path:
    """Float16 weights and compute, float32 graph inputs and outputs."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(src))
    half = convert_float_to_float16(model, keep_io_types=True)
    # The converter appends the casts of the kept-float32 inputs at the end of the node list;
    # onnxruntime does not mind, but the ONNX spec (and onnx.checker) wants topological order.
    topological_sort(half.graph)
    onnx.save(half, str(dst))
    return Path(dst)


def topological_sort(graph: onnx.GraphProto) -> None:
    """Reorder ``graph.node`` in place so every node comes after the producers of its inputs.

    Kahn's algorithm, stable (keeps the existing order where it is already valid). Names a
    subgraph (If/Loop body) reads from the outer scope count as inputs of its node.
    """
    nodes = list(graph.node)
    available = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    producer = {out: idx for idx, node in enumerate(nodes) for out in node.output}
    deps: list[set[int]] = []
    for node in nodes:
        names = set(node.input) | _outer_names(node)
        deps.append({producer[n] for n in names if n not in available and n in producer})
    users: dict[int, list[int]] = {i: [] for i in range(len(nodes))}
    for i, d in enumerate(deps):
        for j in d:
            users[j].append(i)
    pending = [len(d) for d in deps]
    ready = [i for i, n in enumerate(pending) if n == 0]
    order: list[int] = []
    while ready:
        ready.sort()
        i = ready.pop(0)
        order.append(i)
        for u in users[i]:
            pending[u] -= 1
            if pending[u] == 0:
                ready.append(u)
    if len(order) != len(nodes):
        raise ValueError("graph has a cycle; cannot order its nodes")
    graph.ClearField("node")
    graph.node.extend(nodes[i] for i in order)


def _outer_names(node: onnx.NodeProto) -> set[str]:
    """Names a node's subgraphs read but do not define (implicit inputs of If/Loop/Scan)."""
    names: set[str] = set()
    for attr in node.attribute:
        for sub in [attr.g] if attr.HasField("g") else list(attr.graphs):
            defined = {i.name for i in sub.input} | {t.name for t in sub.initializer}
            for inner in sub.node:
                defined.update(inner.output)
            for inner in sub.node:
                names.update(n for n in inner.input if n and n not in defined)
                names.update(_outer_names(inner) - defined)
    return names


def make_variant(
    variant: str, src: str | Path, dst: str | Path, per_channel: bool = True, graph: str = ""
) -> Path:
    """Write the ``variant`` of the fp32 graph ``src`` (the bundle's ``graph``) to ``dst`` and
    check it with onnx.checker. int8 leaves the graphs outside ``INT8_GRAPHS`` fp32."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown export variant {variant!r}; expected one of {VARIANTS}")
    src, dst = Path(src), Path(dst)
    quantized = variant == "int8" and graph in INT8_GRAPHS
    if variant == "fp32" or (variant == "int8" and not quantized):
        if src.resolve() != dst.resolve():
            dst.write_bytes(src.read_bytes())
    elif quantized:
        quantize_int8(src, dst, per_channel=per_channel)
    else:
        convert_fp16(src, dst)
    onnx.checker.check_model(str(dst), full_check=not quantized)
    return dst
