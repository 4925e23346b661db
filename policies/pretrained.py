"""A policy checkpoint folder: safetensors weights + config.json + processor.json, never pickle.

The one loader and saver of a policy (weights, ModelConfig, Processor), used by training,
export, the torch policy and serving. A checkpoint folder is what `uio2-robot train` writes::

    model.safetensors     weights (float32, or float16 for shipped policies to halve the size)
    config.json           {"model": ModelConfig dict, "train": resolved train config, ...}
    processor.json        the numpy Processor: vocabulary, tokenizers, action bins, stats

(+ ``train_state.*`` for exact resume, written and read by ``uio2_robot.train.checkpoint``.)
The Processor's sizes derive from the ModelConfig (:func:`processor_sizes`) and are checked
against it on every load (:func:`check_processor_matches_model`).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from uio2_robot.model.config import ModelConfig
from uio2_robot.model.official import OfficialConfig, OfficialUIO2, assign_weights, official_on_meta
from uio2_robot.model.uio2 import UIO2Model
from uio2_robot.staging import staged_folder
from uio2_robot.tokenize.processor import Processor, model_mismatches

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
PROCESSOR = "processor.json"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint folder is missing, incomplete or incompatible."""


@dataclass(frozen=True)
class LazyWeights:
    """Weights made one tensor at a time while they are written: ``specs`` gives each key's
    shape and dtype up front, ``produce(key)`` the tensor. Converting a multi-GB release
    (``uio2-robot official import``) then holds one converted tensor at a time instead of a
    second copy of the whole model."""

    specs: dict[str, tuple[tuple[int, ...], torch.dtype]]
    produce: Callable[[str], torch.Tensor]


_SAFETENSORS_DTYPES = {
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.float64: "F64",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.bool: "BOOL",
}


def _write_safetensors_streaming(
    path: Path, weights: LazyWeights, metadata: dict[str, str]
) -> None:
    """The safetensors format (8-byte header length, JSON header, raw little-endian data),
    written tensor by tensor; each produced tensor is checked against its spec."""
    header: dict[str, Any] = {"__metadata__": metadata}
    offset = 0
    for key, (shape, dtype) in weights.specs.items():
        size = torch.empty((), dtype=dtype).element_size()
        for s in shape:
            size *= s
        header[key] = {
            "dtype": _SAFETENSORS_DTYPES[dtype],
            "shape": list(shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for key, (shape, dtype) in weights.specs.items():
            t = weights.produce(key).detach().to("cpu").contiguous()
            if tuple(t.shape) != tuple(shape) or t.dtype != dtype:
                raise CheckpointError(
                    f"weight {key!r}: produced {t.dtype} {tuple(t.shape)}, declared {dtype} "
                    f"{tuple(shape)}"
                )
            f.write(memoryview(t.reshape(-1).view(torch.uint8).numpy()) if t.numel() else b"")


def save_checkpoint(
    path: str | Path,
    model: torch.nn.Module | dict[str, torch.Tensor] | LazyWeights,
    config: dict[str, Any],
    processor: dict[str, Any],
    half: bool = False,
    extra: Callable[[Path], None] | None = None,
) -> Path:
    """Write a checkpoint folder atomically (a temp folder renamed into place).

    A crash while saving leaves the previous checkpoint intact: readers never see a folder with
    new weights and old config. ``extra(folder)`` writes more files into the same transaction
    (the trainer's resume state). ``LazyWeights`` are written as they are produced (``half``
    does not apply: declare the dtype wanted).
    """
    path = Path(path)
    with staged_folder(path) as tmp:
        if isinstance(model, LazyWeights):
            meta = {"format_version": str(FORMAT_VERSION)}
            _write_safetensors_streaming(tmp / WEIGHTS, model, meta)
        else:
            weights = model if isinstance(model, dict) else model.state_dict()
            state = {k: v.detach().to("cpu").contiguous() for k, v in weights.items()}
            if half:
                state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
            save_file(state, str(tmp / WEIGHTS), metadata={"format_version": str(FORMAT_VERSION)})
        (tmp / CONFIG).write_text(
            json.dumps({"format_version": FORMAT_VERSION, **config}, indent=2)
        )
        (tmp / PROCESSOR).write_text(json.dumps(processor, indent=2))
        if extra is not None:
            extra(tmp)
    return path


def load_checkpoint(
    path: str | Path, keep_dtype: bool = False
) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, Any]]:
    """Read (weights, config, processor dict) from a checkpoint folder, with clear errors.
    Floating weights come back as float32 unless ``keep_dtype`` (a bf16 xxl is 12 GiB as
    stored, 24 GiB in float32)."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"checkpoint folder not found: {path}")
    missing = [n for n in (WEIGHTS, CONFIG, PROCESSOR) if not (path / n).is_file()]
    if missing:
        raise CheckpointError(f"{path} is not a checkpoint folder: missing {missing}")
    try:
        config = json.loads((path / CONFIG).read_text())
        processor = json.loads((path / PROCESSOR).read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: unreadable JSON ({exc})") from None
    version = config.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format {version}, expected {FORMAT_VERSION}")
    try:
        weights = load_file(str(path / WEIGHTS))
    except Exception as exc:  # safetensors raises its own error types
        raise CheckpointError(f"{path}/{WEIGHTS}: unreadable weights ({exc})") from None
    if not keep_dtype:
        weights = {k: v.float() if v.is_floating_point() else v for k, v in weights.items()}
    return weights, config, processor


@dataclass
class Pretrained:
    """A loaded policy checkpoint: the network, its processor and the whole config dict."""

    model: UIO2Model
    processor: Processor
    config: dict[str, Any]


def load_pretrained(path: str | Path, device: str | torch.device = "cpu") -> Pretrained:
    """The model (eval mode, on ``device``) and processor of a checkpoint folder, checked to
    agree on every size; raises CheckpointError / ValueError naming what is wrong."""
    weights, config, processor_dict = load_checkpoint(path)
    cfg = ModelConfig.from_dict(config["model"])
    processor = Processor.from_dict(processor_dict)
    check_processor_matches_model(processor, cfg)
    model = UIO2Model(cfg)
    model.load_state_dict(weights)
    return Pretrained(model.to(device).eval(), processor, config)


OFFICIAL_PROCESSOR_KIND = "uio2_official"
"""``processor.json``'s kind in a checkpoint imported from a released UIO2 (``uio2-robot official
import``); its ``config.json`` has an ``official`` section (an ``OfficialConfig``)."""


def load_official_checkpoint(
    path: str | Path, keep_dtype: bool = False
) -> tuple[OfficialUIO2, dict[str, Any], dict[str, Any]]:
    """(model in eval mode; processor dict; config dict) of an imported official UIO2
    checkpoint, float32 unless ``keep_dtype`` (then as stored, e.g. bf16); CheckpointError
    when the folder is not one."""
    weights, config, processor = load_checkpoint(path, keep_dtype)
    if "official" not in config or processor.get("kind") != OFFICIAL_PROCESSOR_KIND:
        raise CheckpointError(
            f"{path} is not an imported official UIO2 checkpoint (made by `uio2-robot official "
            "import`): its config.json has no 'official' section"
        )
    model = official_on_meta(OfficialConfig.from_dict(config["official"]))
    try:
        return assign_weights(model, weights), processor, config
    except RuntimeError as exc:  # missing / unexpected keys, wrong shapes
        raise CheckpointError(f"{path}: weights do not fit its config ({exc})") from None


def processor_sizes(cfg: ModelConfig) -> dict[str, Any]:
    """The Processor fields a model config fixes: pass as ``Processor.for_suite(**sizes)``."""
    return {
        "image_size": cfg.image_hw,
        "prompt_image_size": cfg.prompt_image_size,
        "max_prompt_tokens": cfg.max_prompt_tokens,
        "max_prompt_images": cfg.max_prompt_images,
        "max_history": cfg.max_history,
        "max_prompt_scenes": cfg.max_prompt_scenes,
    }


def check_processor_matches_model(processor: Processor, cfg: ModelConfig) -> None:
    """Raise a ValueError listing every size on which a processor and a model disagree
    (`uio2_robot.tokenize.processor.model_mismatches`)."""
    bad = model_mismatches(processor, cfg.to_dict())
    if bad:
        raise ValueError("processor and model config disagree: " + "; ".join(bad))
