"""Checkpoint folders: safetensors weights + JSON config + processors, never pickle.

A checkpoint folder is what `uio2-robot train` writes, `UIO2Policy.from_checkpoint` reads and
`uio2-robot export` turns into a deploy bundle::

    model.safetensors     weights (float32, or float16 for shipped policies to halve the size)
    config.json           {"model": ModelConfig dict, "train": resolved train config, ...}
    processor.json        the numpy Processor: vocabulary, tokenizers, action bins, stats
    train_state.safetensors + train_state.json   optimizer/scheduler/RNG for exact resume (optional)

Optimizer state is flattened into named tensors so it fits safetensors; the non-tensor parts
(step counts, hyper-parameters, numpy RNG state) go to JSON.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
PROCESSOR = "processor.json"
TRAIN_STATE = "train_state.safetensors"
TRAIN_STATE_JSON = "train_state.json"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint folder is missing, incomplete or incompatible."""


def save_checkpoint(
    path: str | Path,
    model: torch.nn.Module | dict[str, torch.Tensor],
    config: dict[str, Any],
    processor: dict[str, Any],
    train_state: dict[str, Any] | None = None,
    half: bool = False,
) -> Path:
    """Write a checkpoint folder atomically (a temp folder renamed into place).

    A crash while saving leaves the previous checkpoint intact: readers never see a folder with
    new weights and old config.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        weights = model if isinstance(model, dict) else model.state_dict()
        state = {k: v.detach().to("cpu").contiguous() for k, v in weights.items()}
        if half:
            state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
        save_file(state, str(tmp / WEIGHTS), metadata={"format_version": str(FORMAT_VERSION)})
        (tmp / CONFIG).write_text(
            json.dumps({"format_version": FORMAT_VERSION, **config}, indent=2)
        )
        (tmp / PROCESSOR).write_text(json.dumps(processor, indent=2))
        if train_state is not None:
            tensors, meta = _flatten_train_state(train_state)
            save_file(tensors, str(tmp / TRAIN_STATE))
            (tmp / TRAIN_STATE_JSON).write_text(json.dumps(meta))
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            if old.exists():
                shutil.rmtree(old)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def load_checkpoint(
    path: str | Path,
) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, Any]]:
    """Read (weights, config, processor dict) from a checkpoint folder, with clear errors."""
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
    weights = {k: v.float() if v.is_floating_point() else v for k, v in weights.items()}
    return weights, config, processor


def load_train_state(path: str | Path) -> dict[str, Any] | None:
    """The optimizer/scheduler/RNG state saved for exact resume, or None if absent."""
    path = Path(path)
    if not (path / TRAIN_STATE).is_file():
        return None
    tensors = load_file(str(path / TRAIN_STATE))
    meta = json.loads((path / TRAIN_STATE_JSON).read_text())
    return _unflatten_train_state(tensors, meta)


def _flatten_train_state(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split a nested state into {dotted name: tensor} and a JSON skeleton referencing them."""
    tensors: dict[str, torch.Tensor] = {}

    def walk(obj: Any, prefix: str) -> Any:
        if isinstance(obj, torch.Tensor):
            tensors[prefix] = obj.detach().to("cpu").contiguous()
            return {"__tensor__": prefix}
        if isinstance(obj, dict):
            return {"__dict__": [[_key(k), walk(v, f"{prefix}.{k}")] for k, v in obj.items()]}
        if isinstance(obj, list | tuple):
            return {"__list__": [walk(v, f"{prefix}.{i}") for i, v in enumerate(obj)]}
        return obj

    return tensors, walk(state, "s")


def _key(k: Any) -> Any:
    return {"__int__": k} if isinstance(k, int) else k


def _unflatten_train_state(tensors: dict[str, torch.Tensor], meta: Any) -> Any:
    def build(obj: Any) -> Any:
        if isinstance(obj, dict) and "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if isinstance(obj, dict) and "__dict__" in obj:
            return {
                (k["__int__"] if isinstance(k, dict) else k): build(v) for k, v in obj["__dict__"]
            }
        if isinstance(obj, dict) and "__list__" in obj:
            return [build(v) for v in obj["__list__"]]
        return obj

    return build(meta)
