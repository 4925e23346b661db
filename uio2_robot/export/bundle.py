"""Checkpoint folder -> deploy bundle folder (`uio2-robot export`).

The bundle is written into a temporary sibling folder and renamed into place at the end, so a
crash or a failed check never leaves a half-written bundle where a robot would load it. The
fp32 graphs are always exported first; the int8 and fp16 variants are derived from them
(``uio2_robot.export.variants``), and ``convert_bundle`` derives them from an existing fp32
bundle without torch or the checkpoint.
"""

from __future__ import annotations

import json
import platform
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from uio2_robot.export.cache import checkpoint_digest
from uio2_robot.runtime.manifest import (
    BUNDLE_FORMAT_VERSION,
    GRAPHS,
    GUIDE_GRAPHS,
    INTEGRITY_KEY,
    MANIFEST_FILE,
    OPSET,
    PREFIX_GRAPHS,
    PROCESSOR_FILE,
    VARIANTS,
    Bundle,
    bundle_graphs,
    load_bundle,
    model_hash,
    processor_sections,
    seal,
    sha256_file,
)
from uio2_robot.staging import staged_folder
from uio2_robot.tokenize.processor import Processor


def exporter_versions() -> dict[str, str]:
    """Versions of everything that shaped the graphs (recorded in the manifest)."""
    import onnx
    import onnxruntime

    import uio2_robot

    versions = {
        "uio2_robot": uio2_robot.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "python": platform.python_version(),
    }
    try:
        import torch

        versions["torch"] = torch.__version__
        import onnxscript

        versions["onnxscript"] = onnxscript.__version__
    except ImportError:  # convert_bundle runs without torch
        pass
    return versions


def graph_io(path: str | Path) -> dict[str, list[dict[str, Any]]]:
    """Inputs and outputs of an ONNX file as manifest specs (name, numpy dtype, shape with
    dynamic axes by name, e.g. ``["n_dec", "batch", ...]``)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)

    def spec(value: Any) -> dict[str, Any]:
        t = value.type.tensor_type
        dtype = onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name
        shape = [d.dim_param if d.dim_param else int(d.dim_value) for d in t.shape.dim]
        return {"name": value.name, "dtype": dtype, "shape": shape}

    return {
        "inputs": [spec(v) for v in model.graph.input],
        "outputs": [spec(v) for v in model.graph.output],
    }


def build_manifest(
    folder: Path,
    processor: Processor,
    model_config: dict[str, Any],
    variant: str,
    exporter: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The manifest of the graphs and processor already written in ``folder``."""
    files: dict[str, dict[str, Any]] = {}
    graphs = bundle_graphs(model_config)
    for graph, name in graphs.items():
        path = folder / name
        files[graph] = {"path": name, "sha256": sha256_file(path), "bytes": path.stat().st_size}
    proc = folder / PROCESSOR_FILE
    files["processor"] = {"path": PROCESSOR_FILE, "sha256": sha256_file(proc)}
    manifest: dict[str, Any] = {
        "format_version": BUNDLE_FORMAT_VERSION,
        "variant": variant,
        "opset": OPSET,
        "model_hash": model_hash({g: files[g]["sha256"] for g in graphs}),
        "files": files,
        "graphs": {g: graph_io(folder / name) for g, name in graphs.items()},
        "model_config": model_config,
        **processor_sections(processor),
        "exporter": exporter,
    }
    manifest.update(extra or {})
    manifest[INTEGRITY_KEY] = seal(manifest)  # last: it covers every field above
    return manifest


def _write_bundle(
    out: Path,
    overwrite: bool,
    variant: str,
    write_fp32_graphs: Callable[[Path], None],
    processor: Processor,
    model_config: dict[str, Any],
    exporter: dict[str, Any],
    extra: dict[str, Any],
    per_channel: bool,
) -> Bundle:
    from uio2_robot.export.variants import INT8_GRAPHS, make_variant

    if variant not in VARIANTS:
        raise ValueError(f"unknown export variant {variant!r}; expected one of {VARIANTS}")
    with staged_folder(out, overwrite) as tmp:
        fp32 = tmp / "_fp32"
        fp32.mkdir()
        write_fp32_graphs(fp32)
        for graph, name in bundle_graphs(model_config).items():
            make_variant(variant, fp32 / name, tmp / name, per_channel=per_channel, graph=graph)
        shutil.rmtree(fp32)
        processor.save(tmp / PROCESSOR_FILE)
        if variant == "int8":
            exporter = {
                **exporter,
                "int8_per_channel": per_channel,
                "int8_graphs": [g for g in bundle_graphs(model_config) if g in INT8_GRAPHS],
            }
        manifest = build_manifest(tmp, processor, model_config, variant, exporter, extra)
        (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2))
        load_bundle(tmp)  # the bundle must pass the same checks a robot will run
    return load_bundle(out, verify_hashes=False)


def export_bundle(
    checkpoint: str | Path,
    out: str | Path,
    variant: str = "fp32",
    per_channel: bool = True,
    overwrite: bool = False,
    compact_encoder: bool = True,
    source_digest: str | None = None,
) -> Bundle:
    """Export a checkpoint folder (``uio2_robot.train.checkpoint``) to a deploy bundle.

    Returns the loaded, validated bundle. ``variant``: fp32 | int8 | fp16; ``per_channel``
    applies to int8. Raises ``CheckpointError`` for a bad checkpoint, ``ValueError`` when its
    processor and model config disagree, ``FileExistsError`` if ``out`` exists and not
    ``overwrite``.
    """
    import torch

    from uio2_robot.export.graphs import (
        export_decoder_step,
        export_encoder,
        export_greedy_decoder,
        export_guided_decoder,
        export_prompt_encoder,
        export_step_encoder,
    )
    from uio2_robot.policies.pretrained import load_pretrained

    if variant not in VARIANTS:
        raise ValueError(f"unknown export variant {variant!r}; expected one of {VARIANTS}")
    checkpoint = Path(checkpoint)
    loaded = load_pretrained(checkpoint)
    model, processor, config = loaded.model, loaded.processor, loaded.config
    cfg = model.cfg
    # one unrolled greedy decoder long enough for every action mode (a shorter mode reads the
    # first tokens: greedy decoding is causal, so they are the ones it would have decoded)
    n_greedy = max(processor.n_action_tokens(m) for m in processor.action_modes)
    greedy_ids = processor.action_id_range()

    def write_fp32(folder: Path) -> None:
        with torch.no_grad():
            export_encoder(model, folder / GRAPHS["encoder"], compact=compact_encoder)
            export_decoder_step(model, folder / GRAPHS["decoder_step"])
            export_greedy_decoder(
                model,
                folder / GRAPHS["decoder_greedy"],
                n_greedy,
                processor.vocab.bos_id,
                greedy_ids,
            )
            if cfg.prompt_prefix:
                export_prompt_encoder(model, folder / PREFIX_GRAPHS["prompt_encoder"])
                export_step_encoder(model, folder / PREFIX_GRAPHS["step_encoder"])
            if "decoder_guided" in bundle_graphs(cfg.to_dict()):
                export_guided_decoder(
                    model,
                    folder / GUIDE_GRAPHS["decoder_guided"],
                    n_greedy,
                    processor.vocab.bos_id,
                    greedy_ids,
                )

    extra: dict[str, Any] = {
        "source_checkpoint": {
            "path": str(checkpoint.resolve()),
            "weights_sha256": sha256_file(checkpoint / "model.safetensors"),
            # the export cache's key (`uio2_robot.export.cache.checkpoint_digest`)
            "digest": source_digest or checkpoint_digest(checkpoint),
        },
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "encoder_drops_padding": compact_encoder,
        "greedy_decoder": {"n_tokens": n_greedy, "ids": list(greedy_ids)},
    }
    if config.get("train_seeds"):
        extra["train_seeds"] = config["train_seeds"]
    if config.get("inference"):  # how the checkpoint is meant to be run (scene guidance)
        extra["inference"] = config["inference"]
    return _write_bundle(
        Path(out),
        overwrite,
        variant,
        write_fp32,
        processor,
        cfg.to_dict(),
        exporter_versions(),
        extra,
        per_channel,
    )


def convert_bundle(
    src: str | Path,
    out: str | Path,
    variant: str,
    per_channel: bool = True,
    overwrite: bool = False,
) -> Bundle:
    """Derive the int8 or fp16 bundle from an fp32 bundle (no torch, no checkpoint needed)."""
    source = load_bundle(src)
    if source.variant != "fp32":
        raise ValueError(
            f"convert_bundle needs an fp32 bundle to derive {variant!r} from, {src} is "
            f"{source.variant!r}"
        )

    def copy_fp32(folder: Path) -> None:
        for graph, name in bundle_graphs(source.manifest["model_config"]).items():
            shutil.copyfile(source.graph_path(graph), folder / name)

    keep = (
        "source_checkpoint",
        "created_at",
        "train_seeds",
        "inference",
        "encoder_drops_padding",
        "greedy_decoder",
    )
    extra = {k: source.manifest[k] for k in keep if k in source.manifest}
    extra["derived_from"] = {"model_hash": source.model_hash, "variant": "fp32"}
    exporter = {**source.manifest["exporter"], "converter": exporter_versions()}
    return _write_bundle(
        Path(out),
        overwrite,
        variant,
        copy_fp32,
        source.processor,
        source.manifest["model_config"],
        exporter,
        extra,
        per_channel,
    )
