"""`uio2-robot data import-lerobot SRC out=STORE`: a LeRobot v3.0 dataset as a trajectory store.

Feature names map to store keys: ``observation.images.K`` / ``observation.image(s)`` video (or
PNG image) features -> camera key ``K``, ``observation.state`` -> ``proprio``, ``next.reward``
-> ``reward``, ``action`` -> ``action``, ``observation.K`` -> ``K``, anything else keeps its name.
Numbers are copied bit for bit from parquet; videos (AV1, H.264, ...) are decoded with PyAV at
each frame's timestamp (``from_timestamp + timestamp``), which must be within ``tolerance_s``
of a frame in the file. Each episode's task strings become its prompt (one string; several
tasks in one episode are kept per frame in ``extra["lerobot"]["frame_tasks"]``). A dataset that
``export-lerobot`` wrote carries the original store's schema and records, and comes back as
that store.

Nothing half-written is left: the store is built beside ``out``, verified deeply (every chunk
read, every checksum compared) and renamed into place only then. Any problem with the dataset
(a missing meta file, a feature whose column has the wrong shape, a truncated parquet or video)
stops the import with a StoreError naming the file and what was expected.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from uio2_robot.trajectories import lerobot_v3 as v3
from uio2_robot.trajectories.episode import ACTION_KEY, REWARD_KEY, Episode, PromptSegment
from uio2_robot.trajectories.errors import StoreError
from uio2_robot.trajectories.integrity import verify_store
from uio2_robot.trajectories.mp4 import Mp4Reader
from uio2_robot.trajectories.schema import KeySpec, StoreSchema
from uio2_robot.trajectories.store import EpisodeStore

BATCH = 16  # episodes per store append
NUMERIC = ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
NUMERIC += ("float16", "float32", "float64")


@dataclass(frozen=True)
class Column:
    """How one LeRobot feature becomes one store key."""

    feature: str
    key: str
    kind: str  # "video", "image" (PNG in parquet) or "numeric"
    shape: tuple[int, ...]  # the store's per-step shape
    dtype: str
    channels_first: bool = False  # video/image feature declared (C, H, W)


def store_key(feature: str) -> str:
    """The store key of a LeRobot feature name (see the module docstring)."""
    special = {"action": ACTION_KEY, "next.reward": REWARD_KEY, "observation.state": "proprio"}
    if feature in special:
        return special[feature]
    for prefix in ("observation.images.", "observation."):
        if feature.startswith(prefix) and len(feature) > len(prefix):
            return feature[len(prefix) :]
    return feature


def plan_columns(meta: v3.Meta) -> tuple[list[Column], StoreSchema]:
    """The columns to import and the store schema they make (action bounds from the data)."""
    uio2 = meta.info.get(v3.UIO2_INFO_KEY)
    if isinstance(uio2, dict):
        return _plan_exported(meta, uio2)
    columns: list[Column] = []
    for name, feat in meta.features.items():
        if name in v3.DEFAULT_FEATURES:
            continue
        shape, dtype = tuple(int(s) for s in feat["shape"]), str(feat["dtype"])
        if dtype in ("video", "image"):
            names = [str(n).lower() for n in feat.get("names") or []]
            chw = len(names) == 3 and names[0].startswith("channel")
            hwc = (shape[1], shape[2], shape[0]) if chw else shape
            if len(hwc) != 3 or hwc[2] != 3:
                raise StoreError(
                    f"{meta.root / v3.INFO_PATH}: feature {name!r} has shape {list(shape)} "
                    f"(names {feat.get('names')}); expected a (H, W, 3) or (3, H, W) colour view"
                )
            columns.append(Column(name, store_key(name), dtype, hwc, "uint8", chw))
        elif dtype in NUMERIC:
            if len(shape) != 1:
                raise StoreError(
                    f"{meta.root / v3.INFO_PATH}: feature {name!r} has shape {list(shape)}; "
                    "expected a scalar or a vector (or a camera view)"
                )
            scalar = shape == (1,) and name.startswith("next.")
            columns.append(Column(name, store_key(name), "numeric", () if scalar else shape, dtype))
        else:
            raise StoreError(
                f"{meta.root / v3.INFO_PATH}: feature {name!r} has dtype {dtype!r}; expected "
                f"video, image or one of {NUMERIC}"
            )
    keys = [c.key for c in columns]
    clash = sorted({k for k in keys if keys.count(k) > 1})
    if clash:
        raise StoreError(
            f"features {[c.feature for c in columns if c.key in clash]} all map to {clash}"
        )
    action = [c for c in columns if c.key == ACTION_KEY]
    if not action:
        raise StoreError(
            f"{meta.root / v3.INFO_PATH} has no 'action' feature; a trajectory store needs one"
        )
    act = action[0]
    low, high = _action_range(meta, act)
    schema = StoreSchema(
        {c.key: KeySpec(c.shape, c.dtype) for c in columns},
        _action_names(meta.features[act.feature].get("names"), len(low)),
        tuple(map(float, low)),
        tuple(map(float, high)),
    )
    return columns, schema


def import_lerobot(
    src: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    tolerance_s: float = 1e-4,
) -> dict[str, Any]:
    """Import the LeRobot v3.0 dataset folder ``src`` into a new store ``out``; returns a summary."""
    meta = v3.read_meta(src)
    columns, schema = plan_columns(meta)
    dest = Path(out)
    _check_destination(dest, overwrite)
    tmp = dest.with_name(f".{dest.name}.importing-{uuid.uuid4().hex[:8]}")
    source = _Source(meta, columns, tolerance_s)
    try:
        with EpisodeStore.create(tmp, schema) as store:
            n = len(meta.episodes)
            for first in range(0, n, BATCH):
                store.append_episodes(
                    [source.episode(e) for e in range(first, min(first + BATCH, n))]
                )
            store.stats()
            report = verify_store(store, deep=True)
            if not report.ok:  # the disk failed under us
                raise StoreError(f"the imported store failed verification: {report.problems()}")
            frames = store.n_frames
        if dest.exists():
            shutil.rmtree(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, dest)
    finally:
        source.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "store": str(dest),
        "source": str(meta.root),
        "episodes": len(meta.episodes),
        "frames": frames,
        "tasks": len(meta.tasks),
        "keys": {c.feature: c.key for c in columns},
        "videos": source.codecs,
    }


class _Source:
    """Reads episodes out of the dataset's parquet and video files (one open file each)."""

    def __init__(self, meta: v3.Meta, columns: list[Column], tolerance_s: float) -> None:
        self.meta, self.columns, self.tolerance_s = meta, columns, tolerance_s
        self._table: tuple[Path, pa.Table] | None = None
        self._videos: dict[str, Mp4Reader] = {}  # feature -> its open file (episodes in order)
        self.codecs: dict[str, str] = {}

    def episode(self, e: int) -> Episode:
        row = self.meta.episodes[e]
        path = self.meta.data_file(row)
        rows = self._rows(path, row)
        n = int(row["length"])
        where = f"{path} (episode {e})"
        frame_index = v3.column_array(rows, "frame_index", (1,), "int64")
        index = v3.column_array(rows, "index", (1,), "int64")
        start = int(row["dataset_from_index"])
        if not (
            np.array_equal(frame_index, np.arange(n))
            and np.array_equal(index, start + np.arange(n))
        ):
            raise StoreError(
                f"{where}: frame_index/index are {frame_index[:5].tolist()}.../"
                f"{index[:5].tolist()}...; expected 0..{n - 1} and {start}..{start + n - 1}"
            )
        timestamps = v3.column_array(rows, "timestamp", (1,), "float32").astype(np.float64)
        steps: dict[str, np.ndarray] = {}
        for col in self.columns:
            try:
                if col.kind == "video":
                    steps[col.key] = self._video(row, col, timestamps)
                elif col.kind == "image":
                    steps[col.key] = _png_frames(rows, col)
                else:
                    arr = v3.column_array(rows, col.feature, (int(np.prod(col.shape)),), col.dtype)
                    steps[col.key] = arr.reshape(n, *col.shape)
            except StoreError as exc:
                raise StoreError(f"{where}, feature {col.feature!r}: {exc}") from None
        task_index = v3.column_array(rows, "task_index", (1,), "int64")
        if task_index.min() < 0 or task_index.max() >= len(self.meta.tasks):
            raise StoreError(
                f"{where}: task_index {int(task_index.max())} is not in meta/tasks.parquet "
                f"({len(self.meta.tasks)} tasks)"
            )
        runs = _runs([self.meta.tasks[int(i)] for i in task_index])
        record = row.get(v3.UIO2_RECORD_COLUMN)
        if record is not None:
            return _exported_episode(steps, json.loads(record), row.get(v3.UIO2_PROMPT_COLUMN))
        success = steps.get("next.success")
        extra: dict[str, Any] = {"lerobot": {"episode_index": e}}
        if self.meta.info.get("robot_type"):
            extra["lerobot"]["robot_type"] = self.meta.info["robot_type"]
        if len(runs) > 1:
            extra["lerobot"]["frame_tasks"] = [[t, c] for t, c in runs]
        return Episode(
            steps=steps,
            prompt=[runs[0][0]],
            task=runs[0][0],
            success=bool(np.any(success)) if success is not None else False,
            control_hz=self.meta.fps,
            extra=extra,
        )

    def close(self) -> None:
        for reader in self._videos.values():
            reader.close()
        self._videos.clear()

    def _rows(self, path: Path, row: dict[str, Any]) -> pa.Table:
        if self._table is None or self._table[0] != path:
            self._table = (path, v3.read_parquet(path))
        table = self._table[1]
        episode = v3.column_array(table, "episode_index", (1,), "int64")
        picked = np.flatnonzero(episode == int(row["episode_index"]))
        if len(picked) != int(row["length"]) or (
            len(picked) and picked[-1] - picked[0] + 1 != len(picked)
        ):
            raise StoreError(
                f"{path} holds {len(picked)} rows of episode {row['episode_index']}; "
                f"meta/episodes says {row['length']} (one contiguous run)"
            )
        return table.slice(int(picked[0]), len(picked))

    def _video(self, row: dict[str, Any], col: Column, timestamps: np.ndarray) -> np.ndarray:
        path = self.meta.video_file(row, col.feature)
        reader = self._videos.get(col.feature)
        if reader is None or reader.path != path:
            if reader is not None:
                reader.close()
            reader = self._videos[col.feature] = Mp4Reader(path)
            self.codecs[col.feature] = reader.codec
        start = float(row[v3.video_columns(col.feature)[2]])
        frames = reader.frames_at(list(start + timestamps), self.tolerance_s)
        if frames.shape[1:] != col.shape:
            raise StoreError(
                f"{path} has frames of {frames.shape[1:]}; info.json says {list(col.shape)} (H, W, C)"
            )
        return frames


def _exported_episode(
    steps: dict[str, np.ndarray], record: dict[str, Any], blob: bytes | None
) -> Episode:
    """The store episode ``export-lerobot`` wrote: its record and prompt images, bit for bit."""
    prompt: list[PromptSegment] = []
    offset = 0
    raw = blob or b""
    for seg in record["prompt"]:
        if "text" in seg:
            prompt.append(seg["text"])
            continue
        img = seg["image"]
        dtype = np.dtype(img["dtype"])
        size = int(np.prod(img["shape"], dtype=np.int64)) * dtype.itemsize
        if offset + size > len(raw):
            raise StoreError(
                f"{v3.UIO2_PROMPT_COLUMN} holds {len(raw)} bytes; the record's prompt images need "
                f"{offset + size}"
            )
        prompt.append(
            np.frombuffer(raw[offset : offset + size], dtype).reshape(img["shape"]).copy()
        )
        offset += size
    fields = ("task", "level", "seed", "success", "action_mode", "control_hz", "extra")
    return Episode(steps=steps, prompt=prompt, **{k: record[k] for k in fields})


def _plan_exported(meta: v3.Meta, uio2: dict[str, Any]) -> tuple[list[Column], StoreSchema]:
    """Columns of a dataset this package exported: the store's own schema and key names."""
    schema = StoreSchema.from_json(uio2.get("schema", {}))
    names = uio2.get("features", {})
    columns = []
    for key, spec in schema.keys.items():
        feature = names.get(key)
        if feature not in meta.features:
            raise StoreError(
                f"{meta.root / v3.INFO_PATH}: uio2_robot maps key {key!r} to {feature!r}, which "
                f"is not among the features {sorted(meta.features)}"
            )
        kind = meta.features[feature]["dtype"]
        kind = kind if kind in ("video", "image") else "numeric"
        columns.append(Column(feature, key, kind, spec.shape, spec.dtype))
    return columns, schema


def _action_range(meta: v3.Meta, act: Column) -> tuple[np.ndarray, np.ndarray]:
    """Min and max of every action dimension over the whole dataset (the store's bounds)."""
    files = sorted({meta.data_file(r) for r in meta.episodes})
    width = int(np.prod(act.shape)) if act.shape else 1
    parts = []
    for path in files:
        try:
            table = v3.read_parquet(path, [act.feature])
            parts.append(v3.column_array(table, act.feature, (width,), act.dtype))
        except StoreError as exc:
            raise StoreError(f"{path}: {exc}") from None
    values = np.concatenate(parts).reshape(-1, width).astype(np.float64)
    if not np.all(np.isfinite(values)):
        raise StoreError(f"the dataset's {act.feature!r} column has NaN or Inf; expected finite")
    return values.min(axis=0), values.max(axis=0)


def _action_names(names: Any, n: int) -> tuple[str, ...]:
    """info.json's action names (a list, or a dict holding one list), else a0, a1, ..."""
    if isinstance(names, dict) and len(names) == 1:
        names = next(iter(names.values()))
    if isinstance(names, list) and len(names) == n and all(isinstance(x, str) for x in names):
        return tuple(names)
    return tuple(f"a{i}" for i in range(n))


def _png_frames(rows: pa.Table, col: Column) -> np.ndarray:
    """Decode an ``image`` feature (PNG bytes in parquet, as HF datasets' Image stores them)."""
    import cv2

    out = []
    for i, cell in enumerate(rows.column(col.feature).to_pylist()):
        raw = cell.get("bytes") if isinstance(cell, dict) else None
        img = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR) if raw else None
        if img is None:
            raise StoreError(f"frame {i} holds no decodable image bytes; expected a PNG/JPEG")
        out.append(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
    frames = np.stack(out)
    if frames.shape[1:] != col.shape:
        raise StoreError(f"images are {frames.shape[1:]}; info.json says {list(col.shape)}")
    return frames


def _runs(tasks: list[str]) -> list[tuple[str, int]]:
    """Run-length encoding of per-frame task strings."""
    out: list[tuple[str, int]] = []
    for t in tasks:
        if out and out[-1][0] == t:
            out[-1] = (t, out[-1][1] + 1)
        else:
            out.append((t, 1))
    return out


def _check_destination(dest: Path, overwrite: bool) -> None:
    """Refuse to replace anything but an empty folder or (with overwrite) one of our stores."""
    if not dest.exists() or (dest.is_dir() and not any(dest.iterdir())):
        return
    if not overwrite:
        raise StoreError(f"{dest} exists and is not empty; pass overwrite=true to replace it")
    try:
        EpisodeStore.open(dest, mode="r").close()
    except StoreError:
        raise StoreError(
            f"refusing to overwrite {dest}: it is not a trajectory store, so it may hold "
            "someone else's data"
        ) from None
