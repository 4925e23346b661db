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
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from uio2_robot.policies.pretrained import (  # noqa: F401  (re-exported for the trainer)
    CheckpointError,
    load_checkpoint,
)
from uio2_robot.policies.pretrained import save_checkpoint as save_policy_checkpoint

TRAIN_STATE = "train_state.safetensors"
TRAIN_STATE_JSON = "train_state.json"


def save_checkpoint(
    path: str | Path,
    model: torch.nn.Module | dict[str, torch.Tensor],
    config: dict[str, Any],
    processor: dict[str, Any],
    train_state: dict[str, Any] | None = None,
    half: bool = False,
) -> Path:
    """A policy checkpoint (:func:`uio2_robot.policies.pretrained.save_checkpoint`), plus the
    optimizer/scheduler/RNG state for exact resume when ``train_state`` is given."""

    def write_state(folder: Path) -> None:
        tensors, meta = _flatten_train_state(train_state)
        save_file(tensors, str(folder / TRAIN_STATE))
        (folder / TRAIN_STATE_JSON).write_text(json.dumps(meta))

    return save_policy_checkpoint(
        path, model, config, processor, half=half, extra=write_state if train_state else None
    )


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
