"""The LeRobot v3.0 dataset format, read and written with pyarrow alone (no lerobot, no pandas).

What a v3.0 dataset is (lerobot 0.4.x, ``lerobot/datasets/utils.py`` and ``lerobot_dataset.py``)::

    meta/info.json                          codebase_version "v3.0", fps, features, paths
    meta/stats.json                         per feature: min, max, mean, std, count, q01..q99
    meta/tasks.parquet                      task_index, and the task string as the pandas index
    meta/episodes/chunk-NNN/file-NNN.parquet  one row per episode: length, tasks,
                                            dataset_from_index/to_index, data/chunk_index,
                                            data/file_index, videos/<key>/{chunk_index,
                                            file_index, from_timestamp, to_timestamp}
    data/chunk-NNN/file-NNN.parquet         one row per frame, many episodes per file
    videos/<key>/chunk-NNN/file-NNN.mp4     many episodes per file, one after the other

A frame's non-video features are parquet columns (a feature of shape (1,) is a scalar column,
a vector a fixed-size list); ``timestamp`` (float32), ``frame_index``, ``episode_index``,
``index`` and ``task_index`` (int64) are in every dataset. Episode ``e``'s frame ``k`` of video
``key`` is the frame at ``from_timestamp + timestamp`` in its file.

This module owns the names, the checks of the metadata and the parquet reading/writing; the
importer and exporter (``lerobot_import``, ``lerobot_export``) own the mapping to the store.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from uio2_robot.trajectories.errors import StoreError

CODEBASE_VERSION = "v3.0"
INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
TASKS_PATH = "meta/tasks.parquet"
EPISODES_DIR = "meta/episodes"
CHUNK_FILE = "chunk-{chunk_index:03d}/file-{file_index:03d}"
DATA_PATH = "data/" + CHUNK_FILE + ".parquet"
VIDEO_PATH = "videos/{video_key}/" + CHUNK_FILE + ".mp4"
EPISODES_PATH = EPISODES_DIR + "/" + CHUNK_FILE + ".parquet"
DEFAULT_FEATURES: dict[str, dict[str, Any]] = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}
CHUNKS_SIZE = 1000  # files per chunk folder (lerobot's DEFAULT_CHUNK_SIZE)
DATA_FILE_MB = 100  # lerobot's DEFAULT_DATA_FILE_SIZE_IN_MB
VIDEO_FILE_MB = 200  # lerobot's DEFAULT_VIDEO_FILE_SIZE_IN_MB
UIO2_INFO_KEY = "uio2_robot"
"""info.json entry of datasets this package exported: the store's schema and key -> feature map,
so an import gives back the exact store (names, bounds, shapes)."""
UIO2_RECORD_COLUMN = "uio2_robot/record"
"""meta/episodes column (JSON) with the store's episode record: task, level, seed, success..."""
UIO2_PROMPT_COLUMN = "uio2_robot/prompt_images"
"""meta/episodes column (binary): the raw bytes of the episode's prompt images."""
EPISODE_COLUMNS = (
    "episode_index",
    "tasks",
    "length",
    "dataset_from_index",
    "dataset_to_index",
    "data/chunk_index",
    "data/file_index",
)


def video_columns(key: str) -> tuple[str, str, str, str]:
    """The meta/episodes columns that place an episode in the files of video feature ``key``."""
    base = f"videos/{key}/"
    return (
        base + "chunk_index",
        base + "file_index",
        base + "from_timestamp",
        base + "to_timestamp",
    )


@dataclass
class Meta:
    """A v3.0 dataset's metadata, checked: info, tasks by index, one dict per episode."""

    root: Path
    info: dict[str, Any]
    tasks: list[str]
    episodes: list[dict[str, Any]]  # sorted by episode_index, which runs 0..E-1

    @property
    def fps(self) -> float:
        return float(self.info["fps"])

    @property
    def features(self) -> dict[str, dict[str, Any]]:
        return self.info["features"]

    @property
    def video_keys(self) -> list[str]:
        return [k for k, f in self.features.items() if f["dtype"] == "video"]

    def data_file(self, episode: dict[str, Any]) -> Path:
        return self.root / str(self.info.get("data_path") or DATA_PATH).format(
            chunk_index=int(episode["data/chunk_index"]),
            file_index=int(episode["data/file_index"]),
        )

    def video_file(self, episode: dict[str, Any], key: str) -> Path:
        chunk, file, _, _ = video_columns(key)
        return self.root / str(self.info.get("video_path") or VIDEO_PATH).format(
            video_key=key, chunk_index=int(episode[chunk]), file_index=int(episode[file])
        )


def read_meta(root: str | os.PathLike[str]) -> Meta:
    """Read and check ``meta/`` of the dataset at ``root``; every problem names the file."""
    root = Path(root)
    if not root.is_dir():
        raise StoreError(f"no LeRobot dataset at {root}: the folder does not exist")
    info = _read_json(root / INFO_PATH)
    version = str(info.get("codebase_version", ""))
    if not version.startswith("v3."):
        raise StoreError(
            f"{root / INFO_PATH}: codebase_version is {version!r}, expected 'v3.0' (LeRobot's v3 "
            "format); convert older datasets with lerobot's convert_dataset_v21_to_v30 first"
        )
    features = info.get("features")
    fps = info.get("fps")
    if not isinstance(features, dict) or not features:
        raise StoreError(f"{root / INFO_PATH} has no 'features'; expected a dict of features")
    if not isinstance(fps, int | float) or not np.isfinite(fps) or fps <= 0:
        raise StoreError(f"{root / INFO_PATH}: fps is {fps!r}, expected a number > 0")
    for name, feat in features.items():
        shape = feat.get("shape") if isinstance(feat, dict) else None
        if (
            not isinstance(shape, list | tuple)
            or not all(isinstance(s, int) and s > 0 for s in shape)
            or "dtype" not in feat
        ):
            raise StoreError(
                f"{root / INFO_PATH}: feature {name!r} is {feat!r}; expected "
                "{'dtype': ..., 'shape': [positive ints], 'names': ...}"
            )
    missing = [k for k in DEFAULT_FEATURES if k not in features]
    if missing:
        raise StoreError(
            f"{root / INFO_PATH}: features lack {missing}; every v3.0 dataset has them"
        )
    tasks = read_tasks(root / TASKS_PATH)
    files = sorted((root / EPISODES_DIR).glob("chunk-*/file-*.parquet"))
    if not files:
        raise StoreError(
            f"{root / EPISODES_DIR} holds no chunk-*/file-*.parquet; expected the episode index"
        )
    meta = Meta(root, info, tasks, [])
    want = [*EPISODE_COLUMNS, *(c for k in meta.video_keys for c in video_columns(k))]
    rows: list[dict[str, Any]] = []
    for path in files:
        names = _column_names(path)
        extra = [c for c in (UIO2_RECORD_COLUMN, UIO2_PROMPT_COLUMN) if c in names]
        rows += read_parquet(path, [*want, *extra]).to_pylist()
    rows.sort(key=lambda r: int(r["episode_index"]))
    if [int(r["episode_index"]) for r in rows] != list(range(len(rows))):
        raise StoreError(
            f"{root / EPISODES_DIR}: episode_index runs "
            f"{[r['episode_index'] for r in rows][:10]}...; expected 0..{len(rows) - 1}"
        )
    for r in rows:
        if int(r["dataset_to_index"]) - int(r["dataset_from_index"]) != int(r["length"]) or (
            int(r["length"]) < 1
        ):
            raise StoreError(
                f"{root / EPISODES_DIR}: episode {r['episode_index']} has length {r['length']} "
                f"but spans frames {r['dataset_from_index']}..{r['dataset_to_index']}; expected "
                "to - from == length >= 1"
            )
    meta.episodes = rows
    return meta


def read_tasks(path: Path) -> list[str]:
    """Task strings by task_index, from lerobot's tasks.parquet (the task is the pandas index)."""
    table = read_parquet(path)
    names = table.column_names
    text = "task" if "task" in names else _pandas_index_column(table)
    if "task_index" not in names or text is None:
        raise StoreError(
            f"{path} has columns {names}; expected task_index and the task strings (a 'task' "
            "column or the pandas index)"
        )
    index = table.column("task_index").to_pylist()
    strings = table.column(text).to_pylist()
    if sorted(index) != list(range(len(index))):
        raise StoreError(f"{path}: task_index is {index[:10]}...; expected 0..{len(index) - 1}")
    out = [""] * len(index)
    for i, s in zip(index, strings, strict=True):
        out[int(i)] = str(s)
    return out


def tasks_table(tasks: list[str]) -> pa.Table:
    """tasks.parquet as lerobot (pandas) writes it: task_index, the strings as the index."""
    pandas_meta = {
        "index_columns": ["__index_level_0__"],
        "column_indexes": [
            {
                "name": None,
                "field_name": None,
                "pandas_type": "unicode",
                "numpy_type": "object",
                "metadata": {"encoding": "UTF-8"},
            }
        ],
        "columns": [
            {
                "name": "task_index",
                "field_name": "task_index",
                "pandas_type": "int64",
                "numpy_type": "int64",
                "metadata": None,
            },
            {
                "name": None,
                "field_name": "__index_level_0__",
                "pandas_type": "unicode",
                "numpy_type": "object",
                "metadata": None,
            },
        ],
        "attributes": {},
        "creator": {"library": "pyarrow", "version": pa.__version__},
    }
    schema = pa.schema(
        [("task_index", pa.int64()), ("__index_level_0__", pa.large_string())],
        metadata={b"pandas": json.dumps(pandas_meta).encode()},
    )
    return pa.table(
        {"task_index": list(range(len(tasks))), "__index_level_0__": list(tasks)}, schema=schema
    )


def read_parquet(path: Path, columns: list[str] | None = None) -> pa.Table:
    """A parquet file (or some of its columns); a missing, truncated or foreign file, or a
    missing column, is a StoreError naming the file and what was expected."""
    names = _column_names(path)
    absent = [c for c in columns or [] if c not in names]
    if absent:
        raise StoreError(f"{path} lacks the columns {absent}; it has {names}")
    try:
        return pq.read_table(path, columns=columns)
    except (pa.ArrowException, OSError) as e:
        raise StoreError(
            f"{path} is not a readable parquet file ({type(e).__name__}: {str(e)[:160]}); it is "
            "truncated or corrupt"
        ) from None


def _column_names(path: Path) -> list[str]:
    """The column names of a parquet file (its footer only)."""
    if not path.is_file():
        raise StoreError(f"{path} does not exist; the dataset is incomplete")
    try:
        return list(pq.read_schema(path).names)
    except (pa.ArrowException, OSError) as e:
        raise StoreError(
            f"{path} is not a readable parquet file ({type(e).__name__}: {str(e)[:160]}); it is "
            "truncated or corrupt"
        ) from None


def write_parquet(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="snappy")


def column_array(table: pa.Table, name: str, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    """A numeric feature column as (rows, *shape) numpy, checked against info.json's shape."""
    col = table.column(name).combine_chunks()
    n, size = len(col), int(np.prod(shape))
    if col.null_count:
        raise StoreError(f"column {name!r} has {col.null_count} null values; expected none")
    if pa.types.is_fixed_size_list(col.type) or pa.types.is_list(col.type):
        lengths = set(pc.list_value_length(col).to_numpy(zero_copy_only=False).tolist())
        if lengths - {size}:
            raise StoreError(
                f"column {name!r} holds {'/'.join(map(str, sorted(lengths)[:4]))} values per "
                f"frame; expected {size} (shape {list(shape)} in info.json)"
            )
        arr = col.flatten().to_numpy(zero_copy_only=False).reshape(n, *shape)
    else:
        if tuple(shape) != (1,):
            raise StoreError(
                f"column {name!r} is a scalar column ({col.type}); expected shape {list(shape)} "
                "(a list per frame)"
            )
        arr = col.to_numpy(zero_copy_only=False).reshape(n)
    if arr.dtype != np.dtype(dtype):
        raise StoreError(f"column {name!r} has dtype {arr.dtype}, info.json says {dtype}")
    return arr


def feature_type(shape: tuple[int, ...], dtype: str) -> pa.DataType:
    """The parquet column type lerobot (HF datasets) writes for a feature."""
    item = pa.from_numpy_dtype(np.dtype(dtype))
    if tuple(shape) == (1,):
        return item
    if len(shape) != 1:
        raise StoreError(
            f"feature of shape {list(shape)} is neither a scalar nor a vector; only those (and "
            "camera views as videos) are exported"
        )
    return pa.list_(item, shape[0])


def hf_features_json(features: dict[str, dict[str, Any]]) -> bytes:
    """The ``huggingface`` schema metadata HF datasets writes next to the columns."""
    out: dict[str, Any] = {}
    for name, f in features.items():
        if f["dtype"] in ("video", "image"):
            continue
        value = {"dtype": f["dtype"], "_type": "Value"}
        out[name] = (
            value
            if tuple(f["shape"]) == (1,)
            else {"feature": value, "length": f["shape"][0], "_type": "List"}
        )
    return json.dumps({"info": {"features": out}}).encode()


def stats_of(values: np.ndarray) -> dict[str, Any]:
    """lerobot's stats entry of a feature: min, max, mean, std, count, q01..q99 over frames
    (axis 0); every other axis is kept, so a vector gets one number per dimension."""
    x = values.astype(np.float64)
    out = {
        "min": values.min(axis=0),
        "max": values.max(axis=0),
        "mean": x.mean(axis=0),
        "std": x.std(axis=0),
        "count": np.array([len(values)]),
    }
    for q in (1, 10, 50, 90, 99):
        out[f"q{q:02d}"] = np.quantile(x, q / 100, axis=0)
    return {k: np.asarray(v).tolist() for k, v in out.items()}


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise StoreError(f"{path} does not exist; expected a LeRobot v3.0 dataset folder")
    try:
        obj = json.loads(path.read_text())
    except (ValueError, OSError) as e:
        raise StoreError(f"{path} is not valid JSON ({e}); it is truncated or corrupt") from None
    if not isinstance(obj, dict):
        raise StoreError(f"{path} holds {type(obj).__name__}; expected a JSON object")
    return obj


def _pandas_index_column(table: pa.Table) -> str | None:
    raw = (table.schema.metadata or {}).get(b"pandas")
    try:
        index = json.loads(raw)["index_columns"] if raw else []
    except (ValueError, KeyError):
        return None
    names = [c for c in index if isinstance(c, str) and c in table.column_names]
    return names[0] if names else None
