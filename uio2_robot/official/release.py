"""Reading a released Unified-IO 2 folder: ``config.json`` + weights, without network.

A release folder (as downloaded from allenai/uio2-large, -xl, -xxl) holds ``config.json`` and
the weights as ``model.safetensors`` or ``pytorch_model.bin`` (or their sharded forms with an
``*.index.json``). ``pytorch_model.bin`` is opened with ``weights_only=True`` (no pickled code
runs) and ``mmap=True`` (tensors are paged in as they are read, so a converter touching one
tensor at a time never holds a second copy of the whole file).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from uio2_robot.errors import UsageError
from uio2_robot.model.official import (
    OfficialConfig,
    OfficialUIO2,
    assign_weights,
    official_on_meta,
)
from uio2_robot.official.keymap import MappingPlan, build_tensor, plan_mapping

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


@dataclass
class ReleaseWeights:
    """Lazy access to a release's tensors: ``shapes`` without reading data, ``get`` one tensor."""

    files: dict[str, Path]  # key -> file holding it
    shapes: dict[str, tuple[int, ...]]
    dtypes: dict[str, torch.dtype]
    _open: dict[Path, Any] = field(default_factory=dict, repr=False)

    def get(self, key: str) -> torch.Tensor:
        path = self.files[key]
        handle = self._open.get(path)
        if handle is None:
            handle = self._open[path] = _open_weights(path)
        return handle[key] if isinstance(handle, dict) else handle.get_tensor(key)

    def close(self) -> None:
        self._open.clear()


def read_release_config(src: str | Path) -> tuple[OfficialConfig, dict[str, Any]]:
    """The ``OfficialConfig`` (and the raw dict) of a release folder's ``config.json``."""
    path = Path(src) / "config.json"
    if not path.is_file():
        raise UsageError(f"{src}: no config.json (expected a released UIO2 folder)")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}: not JSON ({exc})") from None
    try:
        return OfficialConfig.from_release(raw, name=Path(src).resolve().name), raw
    except (ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"{path}: {exc}") from None


def open_release_weights(src: str | Path) -> ReleaseWeights:
    """Index the weights of a release folder (no tensor data is read)."""
    src = Path(src)
    files: dict[str, Path] = {}
    for name in WEIGHT_FILES:
        single, index = src / name, src / f"{name}.index.json"
        if index.is_file():
            weight_map = json.loads(index.read_text()).get("weight_map", {})
            files = {k: src / f for k, f in weight_map.items()}
            break
        if single.is_file():
            files = dict.fromkeys(_keys_of(single), single)
            break
    if not files:
        raise UsageError(
            f"{src}: no weights; expected one of {list(WEIGHT_FILES)} (or a sharded "
            "*.index.json) next to config.json"
        )
    weights = ReleaseWeights(files, {}, {})
    for path in sorted(set(files.values())):
        for key, (shape, dtype) in _meta_of(path).items():
            weights.shapes[key], weights.dtypes[key] = shape, dtype
    missing = sorted(set(files) - set(weights.shapes))
    if missing:
        raise UsageError(f"{src}: the index lists keys its shards lack: {missing[:5]}")
    return weights


def project_shapes(cfg: OfficialConfig) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in official_on_meta(cfg).state_dict().items()}


def plan_release(
    cfg: OfficialConfig, weights: ReleaseWeights, source: str = "release"
) -> MappingPlan:
    try:
        return plan_mapping(weights.shapes, project_shapes(cfg), source)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def load_release_model(
    src: str | Path, dtype: torch.dtype | None = torch.float32
) -> tuple[OfficialUIO2, MappingPlan]:
    """``OfficialUIO2`` (eval mode) with a release folder's weights, mapped in memory.

    ``dtype`` None keeps each tensor's stored dtype."""
    cfg, _ = read_release_config(src)
    weights = open_release_weights(src)
    plan = plan_release(cfg, weights, str(src))
    state = {}
    for target in plan.targets:
        t = build_tensor(target, weights.get)
        state[target.key] = t if dtype is None else t.to(dtype)
    weights.close()
    return assign_weights(official_on_meta(cfg), state), plan


def _keys_of(path: Path) -> list[str]:
    return list(_meta_of(path))


def _meta_of(path: Path) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    if path.suffix == ".safetensors":
        reader = _SafetensorsReader(path)
        try:
            return {
                k: (tuple(v["shape"]), _SAFE_DTYPES[v["dtype"]]) for k, v in reader.header.items()
            }
        except KeyError as exc:
            raise UsageError(f"{path}: unsupported tensor dtype {exc}") from None
    state = _open_weights(path)
    return {k: (tuple(v.shape), v.dtype) for k, v in state.items()}


class _SafetensorsReader:
    """Reads one tensor at a time from a safetensors file with plain file reads.

    Why not ``safe_open``: it memory-maps the file, and every page a converter touches stays
    resident (counted in its RSS) until the whole file is closed: importing a 6 GB xl release
    then peaked at 1.6x its weights. Read into a fresh buffer, a tensor's memory is returned
    as soon as it has been written out."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n))
        header.pop("__metadata__", None)
        self.base = 8 + n
        self.header = header

    def get_tensor(self, key: str) -> torch.Tensor:
        info = self.header[key]
        start, end = info["data_offsets"]
        buf = bytearray(end - start)
        with open(self.path, "rb") as f:
            f.seek(self.base + start)
            if f.readinto(buf) != len(buf):
                raise UsageError(f"{self.path}: truncated data for {key!r}")
        dtype = _SAFE_DTYPES[info["dtype"]]
        if not buf:
            return torch.empty(info["shape"], dtype=dtype)
        return torch.frombuffer(buf, dtype=dtype).reshape(info["shape"])


def _open_weights(path: Path) -> Any:
    if path.suffix == ".safetensors":
        return _SafetensorsReader(path)
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # torch raises several types for a bad or pickled-code file
        raise UsageError(f"{path}: cannot be read as a weights-only state dict ({exc})") from None
    if not isinstance(state, dict):
        raise UsageError(f"{path}: expected a state dict, got {type(state).__name__}")
    return state


_SAFE_DTYPES = {
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "F64": torch.float64,
    "I64": torch.int64,
    "I32": torch.int32,
}
