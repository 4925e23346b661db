"""The `uio2-robot export` command: config in, bundle (and parity report) out."""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from uio2_robot.errors import UsageError
from uio2_robot.export.config import ExportConfig


def _as_config(cfg: DictConfig | ExportConfig) -> ExportConfig:
    if isinstance(cfg, ExportConfig):
        return cfg
    plain = OmegaConf.to_object(cfg) if isinstance(cfg, DictConfig) else cfg
    if isinstance(plain, ExportConfig):
        return plain
    known = {f.name for f in fields(ExportConfig)}
    unknown = sorted(set(plain) - known)  # type: ignore[arg-type]
    if unknown:
        raise ValueError(f"unknown export options {unknown}; expected some of {sorted(known)}")
    return ExportConfig(**plain)  # type: ignore[arg-type]


def run_export_command(cfg: DictConfig | ExportConfig) -> int:
    """Export ``cfg.checkpoint`` to ``cfg.out``; with ``check`` also run the parity checks.

    Prints one JSON summary per stage. Returns 0 on success, 1 when a parity check fails;
    user errors (missing checkpoint, bad variant, existing output) raise ``uio2_robot.errors.UsageError``.
    """
    from uio2_robot.export.bundle import export_bundle
    from uio2_robot.runtime.manifest import VARIANTS

    try:
        c = _as_config(cfg)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if not c.checkpoint or not c.out:
        raise UsageError(
            "export needs checkpoint=DIR (a training checkpoint) and out=DIR (the bundle)"
        )
    if c.variant not in VARIANTS:
        raise UsageError(f"variant must be one of {list(VARIANTS)}, got {c.variant!r}")
    if not Path(c.checkpoint).is_dir():
        raise UsageError(f"checkpoint folder not found: {c.checkpoint}")
    try:
        bundle = export_bundle(
            c.checkpoint,
            c.out,
            c.variant,
            per_channel=c.per_channel,
            overwrite=c.overwrite,
            compact_encoder=c.compact_encoder,
        )
    except (ValueError, FileExistsError, FileNotFoundError) as exc:  # CheckpointError included
        raise UsageError(str(exc)) from None
    signed = None
    if c.sign_key:
        from uio2_robot.runtime.signing import sign_bundle

        try:
            signed = str(sign_bundle(bundle, c.sign_key))
        except (ValueError, FileNotFoundError) as exc:  # BundleError included
            raise UsageError(str(exc)) from None
    files = bundle.manifest["files"]
    print(
        json.dumps(
            {
                "bundle": str(bundle.root),
                "variant": bundle.variant,
                "model_hash": bundle.model_hash,
                "bundle_hash": bundle.bundle_hash,
                "signature": signed,
                "opset": bundle.manifest["opset"],
                "bytes": {g: files[g]["bytes"] for g in bundle.graphs},
            },
            indent=2,
        )
    )
    status = 0
    results: dict[str, Any] = {}
    if c.check:
        from uio2_robot.export.parity import check_parity

        parity = check_parity(
            c.checkpoint,
            c.out,
            n_episodes=c.parity_episodes,
            max_steps=c.parity_steps,
            seed=c.parity_seed,
            use_suite=c.use_suite,
            providers=c.providers,
            threads=c.threads,
        )
        results["parity"] = parity
        print(json.dumps({"parity": parity}, indent=2))
        status |= 0 if parity["passed"] else 1
    if c.closed_loop_episodes > 0:
        from uio2_robot.export.parity import compare_closed_loop

        try:
            closed = compare_closed_loop(
                c.checkpoint,
                c.out,
                c.tasks,
                c.levels,
                c.closed_loop_episodes,
                providers=c.providers,
                threads=c.threads,
            )
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        results["closed_loop"] = closed
        print(json.dumps({"closed_loop": closed}, indent=2))
        status |= 0 if closed["onnx_within_torch_ci"] else 1
    if c.report and results:
        Path(c.report).parent.mkdir(parents=True, exist_ok=True)
        Path(c.report).write_text(json.dumps({"config": asdict(c), **results}, indent=2))
    return status
