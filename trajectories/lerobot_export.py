"""`uio2-robot data export-lerobot STORE out=DIR`: a trajectory store as a LeRobot v3.0 dataset.

Keys map to LeRobot's feature names: camera views ``K`` -> ``observation.images.K`` (videos),
``proprio`` -> ``observation.state``, ``reward`` -> ``next.reward``, ``action`` -> ``action``,
any other key ``K`` -> ``observation.K``. Numbers go into parquet as they are stored (bit for
bit); camera views are encoded as H.264 (or AV1) with a key frame every ``gop`` frames, as
lerobot's own recorder does, many episodes per file. The store's schema and each episode's
record (task, level, seed, success, prompt with its images...) travel in an ``uio2_robot`` entry
of info.json and two extra meta/episodes columns, which lerobot ignores and
``import-lerobot`` reads back, so store -> LeRobot -> store gives back the same store (images
through the video codec aside).

The dataset is written beside ``out`` and renamed into place only when complete: a failed
export leaves nothing that looks like a dataset.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from uio2_robot.trajectories import lerobot_v3 as v3
from uio2_robot.trajectories.episode import ACTION_KEY, REWARD_KEY, Episode
from uio2_robot.trajectories.errors import StoreError
from uio2_robot.trajectories.mp4 import CODECS, Mp4Writer
from uio2_robot.trajectories.schema import StoreSchema
from uio2_robot.trajectories.store import EpisodeStore

STATE_KEY = "proprio"
IMAGE_TOKEN = "<image>"  # stands for a prompt image in the task string


def feature_names(schema: StoreSchema) -> dict[str, str]:
    """Store key -> LeRobot feature name (see the module docstring)."""
    out = {}
    for key, spec in schema.keys.items():
        if spec.is_image:
            out[key] = f"observation.images.{key}"
        elif key == ACTION_KEY:
            out[key] = "action"
        elif key == REWARD_KEY:
            out[key] = "next.reward"
        elif key == STATE_KEY:
            out[key] = "observation.state"
        else:
            out[key] = f"observation.{key}"
    return out


def task_string(episode: Episode) -> str:
    """The episode's instruction as one string: its prompt's text with images as ``<image>``,
    or the task name when the episode has no prompt."""
    parts = [seg.strip() if isinstance(seg, str) else IMAGE_TOKEN for seg in episode.prompt]
    text = " ".join(p for p in parts if p)
    return text or episode.task


def export_lerobot(
    store: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    codec: str = "h264",
    crf: int | None = None,
    gop: int = 2,
    fps: float | None = None,
    robot_type: str | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write the store at ``store`` as a LeRobot v3.0 dataset folder ``out``; returns a summary.

    ``fps`` defaults to the episodes' ``control_hz`` (all equal) or 10."""
    if codec not in CODECS:
        raise StoreError(f"codec is {codec!r}, expected one of {sorted(CODECS)}")
    dest = Path(out)
    _check_destination(dest, overwrite)
    tmp = dest.with_name(f".{dest.name}.exporting-{uuid.uuid4().hex[:8]}")
    try:
        with EpisodeStore.open(store, mode="r") as src:
            if src.n_episodes == 0:
                raise StoreError(f"{src.path} has no episodes; nothing to export")
            summary = _write(src, tmp, codec, crf, gop, fps, robot_type)
        if dest.exists():
            shutil.rmtree(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"dataset": str(dest), **summary}


def _check_destination(dest: Path, overwrite: bool) -> None:
    if not dest.exists() or (dest.is_dir() and not any(dest.iterdir())):
        return
    if not overwrite:
        raise StoreError(f"{dest} exists and is not empty; pass overwrite=true to replace it")
    if not (dest / v3.INFO_PATH).is_file():
        raise StoreError(
            f"refusing to overwrite {dest}: it is not a LeRobot dataset (no {v3.INFO_PATH}), so "
            "it may hold someone else's data"
        )


def _write(
    src: EpisodeStore,
    root: Path,
    codec: str,
    crf: int | None,
    gop: int,
    fps: float | None,
    robot_type: str | None,
) -> dict[str, Any]:
    schema = src.schema
    names = feature_names(schema)
    images = [k for k, s in schema.keys.items() if s.is_image]
    numeric = [k for k in schema.keys if k not in images]
    for key in images:
        h, w, c = schema.keys[key].shape
        if c != 3 or h % 2 or w % 2:
            raise StoreError(
                f"image key {key!r} has frames of shape {schema.keys[key].shape}; a LeRobot video "
                "feature needs (H, W, 3) with even H and W (yuv420p)"
            )
    metas = src.all_meta()
    rate = fps if fps is not None else _store_fps(metas)
    if rate != int(rate):
        raise StoreError(f"fps is {rate}; LeRobot datasets need a whole number of frames/second")
    rate = int(rate)
    features: dict[str, dict[str, Any]] = {}
    for key in images:
        features[names[key]] = {
            "dtype": "video",
            "shape": list(schema.keys[key].shape),
            "names": ["height", "width", "channels"],
        }
    for key in numeric:
        spec = schema.keys[key]
        shape = list(spec.shape) or [1]
        v3.feature_type(tuple(shape), spec.dtype)  # refuses 2-d+ non-image keys by name
        features[names[key]] = {
            "dtype": spec.dtype,
            "shape": shape,
            "names": list(schema.action_names) if key == ACTION_KEY else None,
        }
    features |= {k: dict(v) for k, v in v3.DEFAULT_FEATURES.items()}

    tasks: list[str] = []
    task_ids: dict[str, int] = {}
    data = _RollingParquet(root, features)
    videos = {k: _RollingVideo(root, names[k], rate, codec, crf, gop) for k in images}
    columns: dict[str, list[np.ndarray]] = {names[k]: [] for k in numeric}
    image_sums = {k: _ImageStats() for k in images}
    episodes: list[dict[str, Any]] = []
    frame0 = 0
    for i in range(src.n_episodes):
        ep = src.episode(i)
        n = ep.length
        frame_tasks = _frame_tasks(ep)
        ids = []
        for text, count in frame_tasks:
            if text not in task_ids:
                task_ids[text] = len(tasks)
                tasks.append(text)
            ids += [task_ids[text]] * count
        if len(ids) != n:
            raise StoreError(
                f"episode {i}: extra.lerobot.frame_tasks covers {len(ids)} frames, expected {n}"
            )
        frame_index = np.arange(n, dtype=np.int64)
        cols: dict[str, np.ndarray] = {names[k]: ep.steps[k] for k in numeric}
        cols |= {
            "timestamp": (frame_index / rate).astype(np.float32),
            "frame_index": frame_index,
            "episode_index": np.full(n, i, dtype=np.int64),
            "index": frame0 + frame_index,
            "task_index": np.asarray(ids, dtype=np.int64),
        }
        for name in columns:
            columns[name].append(cols[name])
        row: dict[str, Any] = {
            "episode_index": i,
            "tasks": list(dict.fromkeys(t for t, _ in frame_tasks)),
            "length": n,
            **data.append(cols),
            "dataset_from_index": frame0,
            "dataset_to_index": frame0 + n,
        }
        for key in images:
            row |= videos[key].append(ep.steps[key])
            image_sums[key].add(ep.steps[key])
        record, blob = _episode_record(src, i)
        row[v3.UIO2_RECORD_COLUMN] = json.dumps(record, allow_nan=False)
        row[v3.UIO2_PROMPT_COLUMN] = blob
        row["meta/episodes/chunk_index"] = 0
        row["meta/episodes/file_index"] = 0
        episodes.append(row)
        frame0 += n
    data.close()
    for video in videos.values():
        video.close()

    stats: dict[str, Any] = {
        name: v3.stats_of(np.concatenate(parts).reshape(frame0, -1))
        for name, parts in columns.items()
    }
    for name in v3.DEFAULT_FEATURES:
        stats[name] = v3.stats_of(np.concatenate(data.defaults[name]).reshape(-1, 1))
    stats |= {names[k]: image_sums[k].stats() for k in images}
    for key in images:
        features[names[key]]["info"] = videos[key].info()
    info = {
        "codebase_version": v3.CODEBASE_VERSION,
        "robot_type": robot_type,
        "total_episodes": src.n_episodes,
        "total_frames": frame0,
        "total_tasks": len(tasks),
        "chunks_size": v3.CHUNKS_SIZE,
        "data_files_size_in_mb": v3.DATA_FILE_MB,
        "video_files_size_in_mb": v3.VIDEO_FILE_MB,
        "fps": rate,
        "splits": {"train": f"0:{src.n_episodes}"},
        "data_path": v3.DATA_PATH,
        "video_path": v3.VIDEO_PATH if images else None,
        "features": features,
        v3.UIO2_INFO_KEY: {"schema": schema.to_json(), "features": names},
    }
    (root / "meta").mkdir(parents=True, exist_ok=True)
    (root / v3.INFO_PATH).write_text(json.dumps(info, indent=4))
    (root / v3.STATS_PATH).write_text(json.dumps(stats, indent=4))
    v3.write_parquet(v3.tasks_table(tasks), root / v3.TASKS_PATH)
    v3.write_parquet(
        pa.Table.from_pylist(episodes), root / v3.EPISODES_PATH.format(chunk_index=0, file_index=0)
    )
    return {
        "episodes": src.n_episodes,
        "frames": frame0,
        "tasks": len(tasks),
        "fps": rate,
        "codec": codec if images else None,
        "features": sorted(features),
    }


def _store_fps(metas: list[dict[str, Any]]) -> float:
    rates = {m["control_hz"] for m in metas if m["control_hz"] is not None}
    if len(rates) > 1:
        raise StoreError(
            f"the store's episodes have control rates {sorted(rates)}; a LeRobot dataset has one "
            "fps: pass fps= to choose it"
        )
    return float(rates.pop()) if rates else 10.0


def _frame_tasks(ep: Episode) -> list[tuple[str, int]]:
    """(task string, frames) runs: the ones an import kept, else the episode's one task."""
    kept = ep.extra.get("lerobot", {}).get("frame_tasks") if isinstance(ep.extra, dict) else None
    if kept:
        return [(str(t), int(n)) for t, n in kept]
    return [(task_string(ep), ep.length)]


def _episode_record(src: EpisodeStore, i: int) -> tuple[dict[str, Any], bytes]:
    """The store's record of episode ``i`` without its store offsets, and its prompt bytes."""
    rec = src.record(i)
    prompt = []
    blobs = []
    for seg, value in zip(rec["prompt"], src.prompt(i), strict=True):
        if "text" in seg:
            prompt.append({"text": seg["text"]})
        else:
            arr = np.ascontiguousarray(value)
            prompt.append({"image": {"shape": list(arr.shape), "dtype": arr.dtype.str}})
            blobs.append(arr.tobytes())
    keep = ("task", "level", "seed", "success", "action_mode", "control_hz", "extra")
    return {**{k: rec[k] for k in keep}, "prompt": prompt}, b"".join(blobs)


class _RollingParquet:
    """data/chunk-*/file-*.parquet, a new file when the current one passes DATA_FILE_MB."""

    def __init__(self, root: Path, features: dict[str, dict[str, Any]]) -> None:
        self.root = root
        fields = []
        for name, f in features.items():
            if f["dtype"] != "video":
                fields.append(pa.field(name, v3.feature_type(tuple(f["shape"]), f["dtype"])))
        meta = {b"huggingface": v3.hf_features_json(features)}
        self.schema = pa.schema(fields, metadata=meta)
        self.index = 0
        self.bytes = 0
        self.writer: Any = None
        self.defaults: dict[str, list[np.ndarray]] = {k: [] for k in v3.DEFAULT_FEATURES}

    def append(self, cols: dict[str, np.ndarray]) -> dict[str, int]:
        import pyarrow.parquet as pq

        if self.writer is not None and self.bytes > v3.DATA_FILE_MB * 2**20:
            self.writer.close()
            self.writer, self.bytes, self.index = None, 0, self.index + 1
        chunk, file = divmod(self.index, v3.CHUNKS_SIZE)
        if self.writer is None:
            path = self.root / v3.DATA_PATH.format(chunk_index=chunk, file_index=file)
            path.parent.mkdir(parents=True, exist_ok=True)
            self.writer = pq.ParquetWriter(path, self.schema, compression="snappy")
        arrays = []
        for field in self.schema:
            values = np.ascontiguousarray(cols[field.name])
            if pa.types.is_fixed_size_list(field.type):
                flat = pa.array(values.reshape(-1), type=field.type.value_type)
                arrays.append(pa.FixedSizeListArray.from_arrays(flat, field.type.list_size))
            else:
                arrays.append(pa.array(values.reshape(-1), type=field.type))
            self.bytes += values.nbytes
        self.writer.write_table(pa.Table.from_arrays(arrays, schema=self.schema))
        for k, parts in self.defaults.items():
            parts.append(cols[k])
        return {"data/chunk_index": chunk, "data/file_index": file}

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class _RollingVideo:
    """videos/<feature>/chunk-*/file-*.mp4, episodes back to back, a new file past VIDEO_FILE_MB."""

    def __init__(
        self, root: Path, feature: str, fps: int, codec: str, crf: int | None, gop: int
    ) -> None:
        self.root, self.feature, self.fps = root, feature, fps
        self.codec, self.crf, self.gop = codec, crf, gop
        self.index = 0
        self.writer: Mp4Writer | None = None
        self.first: Path | None = None

    def append(self, frames: np.ndarray) -> dict[str, Any]:
        if self.writer is not None and self.writer.bytes > v3.VIDEO_FILE_MB * 2**20:
            self.writer.close()
            self.writer, self.index = None, self.index + 1
        chunk, file = divmod(self.index, v3.CHUNKS_SIZE)
        if self.writer is None:
            path = self.root / v3.VIDEO_PATH.format(
                video_key=self.feature, chunk_index=chunk, file_index=file
            )
            self.writer = Mp4Writer(path, self.fps, self.codec, crf=self.crf, gop=self.gop)
            self.first = self.first or path
        start = self.writer.frames
        for frame in frames:
            self.writer.write(frame)
        c_chunk, c_file, c_from, c_to = v3.video_columns(self.feature)
        return {
            c_chunk: chunk,
            c_file: file,
            c_from: start / self.fps,
            c_to: self.writer.frames / self.fps,
        }

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

    def info(self) -> dict[str, Any]:
        """info.json's ``info`` of the video feature, read back from the first file written."""
        import av

        assert self.first is not None
        with av.open(str(self.first)) as container:
            stream = container.streams.video[0]
            return {
                "video.height": stream.height,
                "video.width": stream.width,
                "video.codec": stream.codec.canonical_name,
                "video.pix_fmt": stream.codec_context.pix_fmt,
                "video.is_depth_map": False,
                "video.fps": self.fps,
                "video.channels": 3,
                "has_audio": False,
            }


class _ImageStats:
    """Per-channel stats of camera frames in [0, 1], shaped (3, 1, 1) as lerobot keeps them."""

    def __init__(self) -> None:
        self.samples: list[np.ndarray] = []
        self.frames = 0

    def add(self, frames: np.ndarray) -> None:
        self.frames += len(frames)
        # every frame's pixels, subsampled to <= 64 per side: stats, not a copy of the data
        step = max(1, max(frames.shape[1:3]) // 64)
        self.samples.append(frames[:, ::step, ::step].reshape(-1, frames.shape[-1]))

    def stats(self) -> dict[str, Any]:
        pixels = np.concatenate(self.samples).astype(np.float64) / 255.0  # (P, 3)
        out = v3.stats_of(pixels)
        out = {k: np.asarray(v).reshape(-1, 1, 1).tolist() for k, v in out.items()}
        return out | {"count": [self.frames]}
