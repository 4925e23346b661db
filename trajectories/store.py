"""The zarr episode store: time-major arrays, append-only, crash-safe, readable while written.

Layout (documented in docs/trajectory_format.md)::

    <root>/                    root attrs: {"uio2_robot_trajectories": {schema_version, keys, action_space}}
      data/<key>               (N, *shape) one array per key: camera views, proprio, action, ...
      meta/episode_ends        (E,) int64, exclusive end frame of each episode: THE commit record
      meta/episodes            (E,) string, one JSON record per episode (task, level, seed, prompt...)
      meta/prompt_images       (B,) uint8, raw bytes of all prompt images back to back
                               meta attrs: {"stats": cached normalisation statistics}

Why it is crash-safe: zarr 3's LocalStore replaces every file atomically (write to a temporary
file, then rename), so each chunk and each metadata file is always either the old or the new
version. An append writes prompt bytes, then data, then the JSON record, and only then grows
``episode_ends``: a reader (or a reopen after kill -9) trusts only the leading strictly
increasing, positive entries of ``episode_ends`` and never reads beyond its last value, so a
half-written episode is invisible. Reopening for writing truncates the leftovers.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import uuid
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import zarr
import zarr.codecs
from zarr.storage import LocalStore

from uio2_robot.trajectories.episode import ACTION_KEY, Episode, PromptSegment
from uio2_robot.trajectories.errors import StoreError
from uio2_robot.trajectories.integrity import (
    CHECKSUM_FIELD,
    INTEGRITY_ATTR,
    INTEGRITY_VERSION,
    check_coverage,
    episode_digests,
    verify_store,
)
from uio2_robot.trajectories.schema import ROOT_ATTR, SCHEMA_VERSION, KeySpec, StoreSchema
from uio2_robot.trajectories.stats import NormStats, compute_norm_stats

ENDS = "meta/episode_ends"
RECORDS = "meta/episodes"
PROMPT_BYTES = "meta/prompt_images"
DEFAULT_CHUNK_FRAMES = (
    16  # REFERENCE.md section 4: 16-frame chunks ~1.7 ms/frame vs 15 ms per-episode
)
LOW_DIM_CHUNK_BYTES = 1 << 20
PROMPT_CHUNK_BYTES = 1 << 18
RECORD_FIELDS = ("task", "level", "seed", "success", "action_mode", "control_hz", "extra")


COMPRESSORS = ("zstd", "lz4hc", "lz4", "zlib")


def _compressor(dtype: str, level: int, cname: str = "zstd") -> zarr.codecs.BloscCodec:
    # Byte shuffle helps multi-byte numbers (floats); it is a no-op for uint8 images.
    shuffle = "noshuffle" if np.dtype(dtype).itemsize == 1 else "shuffle"
    return zarr.codecs.BloscCodec(cname=cname, clevel=level, shuffle=shuffle)


def frames_per_chunk(spec: KeySpec, chunk_frames: int) -> int:
    """Images get ``chunk_frames`` (a random window touches one or two chunks); small keys get
    bigger chunks (up to ~1 MB) because they are read whole or in long runs."""
    if spec.is_image:
        return chunk_frames
    return max(chunk_frames, min(4096, LOW_DIM_CHUNK_BYTES // max(spec.frame_bytes, 1)))


class EpisodeStore:
    """An append-only zarr store of complete episodes. Build with ``create`` or ``open``."""

    def __init__(self, path: Path, group: zarr.Group, schema: StoreSchema, mode: str) -> None:
        self.path = path
        self.schema = schema
        self.mode = mode
        self._group = group
        self._lock_fd: int | None = None
        self._ends = np.zeros(0, dtype=np.int64)  # committed episode ends
        self._records: list[dict[str, Any]] = []  # parsed JSON records of committed episodes
        self._arrays: dict[str, zarr.Array] = {}
        self.recovered: dict[str, int] = {}  # what opening for writing truncated, if anything
        self._salvage = False  # read what fits instead of refusing a corrupt commit record
        self.salvaged = 0  # committed episodes salvage left out (their end is beyond the data)

    # ------------------------------------------------------------------ construction
    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str],
        schema: StoreSchema,
        *,
        chunk_frames: int = DEFAULT_CHUNK_FRAMES,
        compression_level: int = 3,
        compressor: str = "zstd",
        overwrite: bool = False,
    ) -> EpisodeStore:
        """Create an empty store (opened for appending). Refuses to replace anything that is not
        an empty folder or, with ``overwrite=True``, one of our stores.

        Data is blosc-compressed with ``compressor``: zstd by default (~4.7x smaller on render-like
        frames); lz4hc reads windows ~20% faster for ~25% more disk (benchmarks/bench_store.py)."""
        root = Path(path)
        if chunk_frames < 1:
            raise StoreError(f"chunk_frames is {chunk_frames}, expected >= 1")
        if compressor not in COMPRESSORS or not 0 <= compression_level <= 9:
            raise StoreError(
                f"compressor={compressor!r} level={compression_level}; expected one of "
                f"{COMPRESSORS} and a level in 0..9"
            )
        if root.exists():
            if not root.is_dir():
                raise StoreError(f"cannot create a store at {root}: it is a file")
            if any(root.iterdir()):
                if not overwrite:
                    raise StoreError(
                        f"cannot create a store at {root}: the folder is not empty; open it with "
                        f"EpisodeStore.open(path, mode='a') to append, or pass overwrite=True"
                    )
                if not _has_root_attr(root):
                    raise StoreError(
                        f"refusing to overwrite {root}: it is not a trajectory store "
                        f"(no {ROOT_ATTR!r} root attribute), so it may hold someone else's data"
                    )
                shutil.rmtree(root)
        # Build the empty store beside its destination and rename it into place, so a crash
        # during creation never leaves a half-made store that readers would reject.
        tmp = root.with_name(f".{root.name}.creating-{uuid.uuid4().hex[:8]}")
        try:
            _build_empty(tmp, schema, chunk_frames, compression_level, compressor)
            root.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, root)  # replaces an empty folder, if any, atomically
        except OSError as e:
            if e.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            raise StoreError(
                f"cannot create a store at {root}: no space left on its disk ({e.strerror}); "
                f"{_size(shutil.disk_usage(root.parent).free)} are free"
            ) from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return cls.open(root, mode="a")

    @classmethod
    def open(
        cls, path: str | os.PathLike[str], mode: str = "r", *, salvage: bool = False
    ) -> EpisodeStore:
        """Open an existing store. ``mode="r"`` reads (and may be polled with ``refresh`` while
        another process appends); ``mode="a"`` takes the single-writer lock, removes what a
        crashed writer left beyond the last committed episode, and appends.

        ``salvage=True`` (read-only, for ``data repair``) keeps the committed episodes that fit
        in the data instead of refusing a store whose ``episode_ends`` points beyond it."""
        if mode not in ("r", "a"):
            raise StoreError(f"mode is {mode!r}, expected 'r' (read) or 'a' (append)")
        if salvage and mode != "r":
            raise StoreError("salvage opens a store read-only; use mode='r'")
        root = Path(path)
        if not root.is_dir():
            raise StoreError(f"no trajectory store at {root}: the folder does not exist")
        if not (root / "zarr.json").is_file():
            raise StoreError(
                f"{root} is not a zarr store (no zarr.json); expected a folder made by "
                f"EpisodeStore.create or collect()"
            )
        try:
            group = zarr.open_group(
                store=LocalStore(root, read_only=(mode == "r")), mode="r+" if mode == "a" else "r"
            )
        except Exception as e:  # zarr raises several types for a root that is not a group
            raise StoreError(
                f"{root} is not a readable zarr group ({e}); expected a trajectory store"
            ) from e
        info = group.attrs.get(ROOT_ATTR)
        if not isinstance(info, dict):
            raise StoreError(
                f"{root} is a zarr group but not a trajectory store: root attribute "
                f"{ROOT_ATTR!r} is missing"
            )
        version = info.get("schema_version")
        if not isinstance(version, int) or version < 1:
            raise StoreError(f"{root} has schema_version {version!r}, expected an int >= 1")
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{root} has schema version {version}, newer than this library reads "
                f"({SCHEMA_VERSION}); upgrade uio2-robot"
            )
        store = cls(root, group, StoreSchema.from_json(info), mode)
        store._salvage = salvage
        if mode == "a":
            store._lock()
            try:
                store._read_commit()
                store._truncate_uncommitted()
            except BaseException:
                store.close()
                raise
        else:
            store._read_commit()
        return store

    @classmethod
    def open_or_create(
        cls, path: str | os.PathLike[str], schema: StoreSchema, **create_kwargs: Any
    ) -> EpisodeStore:
        """Open for appending if a store exists (its schema must equal ``schema``), else create."""
        root = Path(path)
        if root.exists() and (root / "zarr.json").exists():
            store = cls.open(root, mode="a")
            diff = store.schema.describe_difference(schema)
            if diff:
                store.close()
                raise StoreError(f"existing store {root} has a different schema: {diff}")
            return store
        return cls.create(root, schema, **create_kwargs)

    def close(self) -> None:
        """Release the writer lock (readers hold nothing)."""
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> EpisodeStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if hasattr(self, "_lock_fd"):  # not when __init__ itself failed
            self.close()

    def __repr__(self) -> str:
        return f"EpisodeStore({str(self.path)!r}, mode={self.mode!r}, episodes={self.n_episodes})"

    # ------------------------------------------------------------------ state
    @property
    def writable(self) -> bool:
        return self.mode == "a"

    @property
    def n_episodes(self) -> int:
        return len(self._ends)

    @property
    def n_frames(self) -> int:
        return int(self._ends[-1]) if len(self._ends) else 0

    @property
    def episode_ends(self) -> np.ndarray:
        """(E,) int64 exclusive end frame of each committed episode (a copy)."""
        return self._ends.copy()

    @property
    def data_keys(self) -> list[str]:
        return list(self.schema.keys)

    def refresh(self) -> int:
        """Re-read the commit record (for readers polling a store another process appends to);
        returns the number of committed episodes."""
        self._read_commit()
        return self.n_episodes

    def episode_bounds(self, i: int) -> tuple[int, int]:
        """(start, end) frame indices of episode ``i`` in the data arrays."""
        i = self._check_index(i)
        start = int(self._ends[i - 1]) if i > 0 else 0
        return start, int(self._ends[i])

    def episode_length(self, i: int) -> int:
        start, end = self.episode_bounds(i)
        return end - start

    def episode_meta(self, i: int) -> dict[str, Any]:
        """Metadata of episode ``i``: task, level, seed, success, action_mode, control_hz, extra,
        length (the prompt is returned by ``episode`` or ``prompt``)."""
        rec = self._records[self._check_index(i)]
        out = {k: rec[k] for k in RECORD_FIELDS}
        out["extra"] = dict(out["extra"])
        out["length"] = self.episode_length(i)
        return out

    def all_meta(self) -> list[dict[str, Any]]:
        return [self.episode_meta(i) for i in range(self.n_episodes)]

    def prompt(self, i: int) -> list[PromptSegment]:
        """The prompt segments of episode ``i``, images bit-exact as appended."""
        segments: list[PromptSegment] = []
        for seg in self._records[self._check_index(i)]["prompt"]:
            if "text" in seg:
                segments.append(seg["text"])
                continue
            img = seg["image"]
            raw = self._read(PROMPT_BYTES, img["offset"], img["offset"] + img["nbytes"])
            arr = np.frombuffer(raw.tobytes(), dtype=np.dtype(img["dtype"]))
            segments.append(arr.reshape(img["shape"]).copy())
        return segments

    # ------------------------------------------------------------------ reading
    def episode(self, i: int, keys: list[str] | None = None) -> Episode:
        """Episode ``i`` with all (or the given) data keys, its prompt and metadata."""
        start, end = self.episode_bounds(i)
        steps = {k: self._read(k, start, end) for k in self._check_keys(keys)}
        meta = self.episode_meta(i)
        return Episode(
            steps=steps,
            prompt=self.prompt(i),
            **{k: meta[k] for k in RECORD_FIELDS},
        )

    def get_window(
        self, episode: int, start: int, length: int, keys: list[str] | None = None
    ) -> dict[str, np.ndarray]:
        """Frames ``[start, start + length)`` of one episode (frame indices relative to the
        episode); each value is (length, *shape). Windows must lie inside the episode; padding at
        edges is the dataset's job."""
        ep_start, ep_end = self.episode_bounds(episode)
        if length < 1 or start < 0 or ep_start + start + length > ep_end:
            raise StoreError(
                f"window start={start} length={length} is outside episode {episode} "
                f"(length {ep_end - ep_start}); expected 0 <= start and start + length <= length"
            )
        a = ep_start + start
        return {k: self._read(k, a, a + length) for k in self._check_keys(keys)}

    def read_key(self, key: str) -> np.ndarray:
        """All committed frames of one key, (N, *shape). Meant for small keys (action, proprio)."""
        self._check_keys([key])
        return self._read(key, 0, self.n_frames)

    # ------------------------------------------------------------------ writing
    def append_episode(self, episode: Episode) -> int:
        """Append a complete episode; returns its index. Nothing becomes visible to readers until
        the final write of ``episode_ends``; a failure before it leaves the store as it was."""
        return self.append_episodes([episode])[0]

    def append_episodes(self, episodes: Sequence[Episode]) -> list[int]:
        """Append complete episodes in one transaction; returns their indices.

        Each array is resized and written once for the whole batch, so a partly filled chunk
        is compressed once rather than once per episode: a collector writing short episodes
        one at a time spends most of its time re-compressing the store's last chunk (see
        ``benchmarks/bench_store.py``). All episodes are checked before anything is written,
        and as in ``append_episode`` nothing is visible until the final ``episode_ends`` write.
        """
        if not self.writable:
            raise StoreError(f"{self.path} is open read-only; open it with mode='a' to append")
        if not episodes:
            return []
        for episode in episodes:
            self.schema.check_episode(episode)
        n, start = self.n_episodes, self.n_frames
        ends = start + np.cumsum([ep.length for ep in episodes], dtype=np.int64)

        # 1. prompt image bytes, 2. per-key data, 3. the JSON records, 4. commit.
        pbytes_start = pbytes_end = self._prompt_bytes_end()
        blobs, records = [], []
        for episode in episodes:
            prompt_json, blob = _encode_prompt(episode.prompt, pbytes_end)
            pbytes_end += len(blob)
            blobs.append(blob)
            record = _encode_record(episode, prompt_json, pbytes_end)
            steps = {
                k: np.asarray(episode.steps[k], dtype=s.dtype) for k, s in self.schema.keys.items()
            }
            record[CHECKSUM_FIELD] = episode_digests(steps, blob)  # checked by deep validation
            records.append(record)
        try:
            if pbytes_end > pbytes_start:
                arr = self._arrays[PROMPT_BYTES]
                arr.resize((pbytes_end,))
                arr[pbytes_start:] = np.frombuffer(b"".join(blobs), dtype=np.uint8)
            for key, spec in self.schema.keys.items():
                arr = self._arrays[key]
                arr.resize((int(ends[-1]), *spec.shape))
                arr[start:] = np.concatenate([ep.steps[key] for ep in episodes])
            k = len(episodes)
            texts = self._arrays[RECORDS]
            texts.resize((n + k,))
            texts[n:] = np.array(
                [json.dumps(r, allow_nan=False) for r in records], dtype=texts.dtype
            )
            ends_arr = self._arrays[ENDS]
            ends_arr.resize((n + k,))
            ends_arr[n:] = ends  # the commit: from here on readers see the episodes
        except OSError as e:
            if e.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            raise StoreError(_disk_full_message(self, episodes, e)) from None

        self._ends = np.concatenate([self._ends, ends])
        self._records.extend(records)
        return list(range(n, n + k))

    # ------------------------------------------------------------------ statistics
    def stats(self, keys: list[str] | None = None, recompute: bool = False) -> dict[str, NormStats]:
        """Normalisation statistics (min, max, mean, std, 1st/99th percentile) per low-dim key
        (action, proprio, ...). Cached in the store and reused while no episode was appended
        since; otherwise recomputed (and saved when the store is writable)."""
        low_dim = [k for k, s in self.schema.keys.items() if s.is_low_dim]
        wanted = low_dim if keys is None else keys
        for k in wanted:
            if k not in low_dim:
                raise StoreError(f"no statistics for key {k!r}; expected one of {low_dim}")
        cached = self.raw_group("meta").attrs.get("stats")
        fresh = (
            isinstance(cached, dict)
            and cached.get("n_frames") == self.n_frames
            and cached.get("n_episodes") == self.n_episodes
            and not recompute
        )
        if fresh:
            table = {k: NormStats.from_json(v) for k, v in cached["keys"].items()}
        else:
            table = {k: compute_norm_stats(self.read_key(k)) for k in low_dim}
            if self.writable:
                try:
                    self.raw_group("meta").attrs["stats"] = {
                        "n_frames": self.n_frames,
                        "n_episodes": self.n_episodes,
                        "keys": {k: v.to_json() for k, v in table.items()},
                    }
                except OSError as e:  # a cache: the numbers are returned all the same
                    if e.errno not in (errno.ENOSPC, errno.EDQUOT):
                        raise
                    warnings.warn(
                        f"{self.path}: statistics not cached, the disk is full ({e.strerror})",
                        RuntimeWarning,
                        stacklevel=2,
                    )
        return {k: table[k] for k in wanted}

    # ------------------------------------------------------------------ validation
    def validate(self, deep: bool = False, notes: list[str] | None = None) -> list[str]:
        """Integrity problems, one sentence each; an empty list means the store is sound.

        Always checks that every chunk the committed episodes cover exists; ``deep=True`` also
        decompresses every committed frame and compares each episode's checksums (linear in
        the store's size). ``notes`` (if given) receives what could not be verified, e.g. the
        contents of episodes written before checksums existed."""
        problems: list[str] = []
        n_frames = self.n_frames
        for key, spec in self.schema.keys.items():
            arr = self._arrays[key]
            if arr.dtype != np.dtype(spec.dtype):
                problems.append(f"data/{key} has dtype {arr.dtype}, schema says {spec.dtype}")
            if tuple(arr.shape[1:]) != spec.shape:
                problems.append(
                    f"data/{key} has frame shape {arr.shape[1:]}, schema says {spec.shape}"
                )
            if arr.shape[0] < n_frames:
                problems.append(
                    f"data/{key} has {arr.shape[0]} frames, episode_ends needs {n_frames}"
                )
        raw_ends = self._arrays[ENDS][:]
        tail = raw_ends[self.n_episodes :]
        # One trailing fill entry is an append in flight (or the remnant of a crash); more is not.
        if len(tail) > 1 or np.any(tail != 0):
            problems.append(
                f"meta/episode_ends has {len(raw_ends)} entries but only the first "
                f"{self.n_episodes} are strictly increasing: {raw_ends[: self.n_episodes + 3].tolist()}..."
            )
        if self._arrays[RECORDS].shape[0] < self.n_episodes:
            problems.append(
                f"meta/episodes has {self._arrays[RECORDS].shape[0]} records for "
                f"{self.n_episodes} committed episodes"
            )
        pbytes = self._arrays[PROMPT_BYTES].shape[0]
        for i, rec in enumerate(self._records):
            length = self.episode_length(i)
            if rec.get("length") != length:
                problems.append(
                    f"episode {i}: record says length {rec.get('length')}, episode_ends gives {length}"
                )
            for j, seg in enumerate(rec.get("prompt", [])):
                img = seg.get("image")
                if img is None:
                    continue
                want = int(np.prod(img["shape"], dtype=np.int64)) * np.dtype(img["dtype"]).itemsize
                if img["nbytes"] != want or img["offset"] + img["nbytes"] > pbytes:
                    problems.append(
                        f"episode {i}: prompt image {j} points outside meta/prompt_images"
                    )
        if n_frames and ACTION_KEY in self._arrays:
            try:
                action = self.read_key(ACTION_KEY)
            except StoreError as e:
                problems.append(str(e))
            else:
                if np.issubdtype(action.dtype, np.floating) and not np.all(np.isfinite(action)):
                    problems.append("data/action contains NaN or Inf")
        report = verify_store(self, deep=True) if deep else check_coverage(self)
        if notes is not None:
            notes.extend(report.notes)
        return problems + report.problems()

    def verify(self, deep: bool = True) -> Any:
        """The :class:`~uio2_robot.trajectories.integrity.VerifyReport` of this store: chunk
        coverage, and with ``deep`` every chunk decompressed and every checksum compared."""
        return verify_store(self, deep=deep)

    # ------------------------------------------------------------------ internals
    def _check_index(self, i: int) -> int:
        if not isinstance(i, int | np.integer):
            raise StoreError(f"episode index is {i!r}, expected an int")
        if not -self.n_episodes <= i < self.n_episodes:
            raise StoreError(
                f"episode {i} does not exist; the store has {self.n_episodes} episodes"
            )
        return int(i) % self.n_episodes

    def _check_keys(self, keys: list[str] | None) -> list[str]:
        if keys is None:
            return self.data_keys
        unknown = [k for k in keys if k not in self.schema.keys]
        if unknown:
            raise StoreError(f"unknown data keys {unknown}; the store has {self.data_keys}")
        return list(keys)

    def _read_commit(self) -> None:
        """Read the commit record, then (re)open every array, then parse the new JSON records.

        The order matters for a reader racing a writer: array handles cache their shape, and the
        writer grows data and records before episode_ends, so handles opened *after* reading
        episode_ends always cover every committed frame and record.
        """
        raw = np.asarray(self._read_whole(ENDS), dtype=np.int64)
        n = _committed_prefix(raw)
        arrays = {k: self._get_array(f"data/{k}") for k in self.schema.keys}
        for name in (ENDS, RECORDS, PROMPT_BYTES):
            arrays[name] = self._get_array(name)
        self._arrays = arrays
        # A writer grows data and records before episode_ends, so a committed end beyond the
        # data is a corrupt commit record (e.g. a garbage 10**12): refuse it here, before any
        # loop runs to it. Salvage keeps the episodes that fit.
        held = min([arrays[k].shape[0] for k in self.schema.keys] or [0])
        fits = int(np.searchsorted(raw[:n], held, side="right"))
        if n > min(fits, arrays[RECORDS].shape[0]):
            if not self._salvage:
                bad = min(fits, arrays[RECORDS].shape[0])
                raise StoreError(
                    f"{self.path}: meta/episode_ends[{bad}] = {int(raw[bad])} but the data "
                    f"arrays hold {held} frames and meta/episodes {arrays[RECORDS].shape[0]} "
                    "records: the commit record is corrupt; `uio2-robot data repair "
                    f"{self.path}` keeps the {bad} episodes before it"
                )
            self.salvaged = n - min(fits, arrays[RECORDS].shape[0])
            n -= self.salvaged
        old = len(self._records)
        if n < old:
            raise StoreError(
                f"{self.path}: committed episodes went from {old} to {n}; the store was rewritten"
            )
        new = self._read_whole(RECORDS, old, n) if n > old else []
        for i, text in enumerate(new, start=old):
            try:
                rec = json.loads(str(text))
            except json.JSONDecodeError as e:
                raise StoreError(
                    f"{self.path}: record of episode {i} is not valid JSON ({e})"
                ) from e
            if not isinstance(rec, dict) or any(
                k not in rec for k in (*RECORD_FIELDS, "prompt", "length", "prompt_bytes_end")
            ):
                raise StoreError(
                    f"{self.path}: record of episode {i} lacks required fields: {rec!r}"
                )
            self._records.append(rec)
        self._ends = raw[:n].copy()

    def _node(self, name: str) -> zarr.Array | zarr.Group:
        """The node ``name``, read afresh (current shape); a missing node or a truncated or
        garbled ``zarr.json`` is a StoreError naming the file, not a JSON traceback."""
        try:
            return self._group[name]
        except KeyError as e:
            raise StoreError(
                f"{self.path} is missing {name!r}; the store is incomplete or corrupt"
            ) from e
        except Exception as e:  # zarr raises JSON / type errors for damaged metadata
            raise StoreError(
                f"{self.path / name / 'zarr.json'} is unreadable ({type(e).__name__}: "
                f"{str(e)[:200]}); the store's metadata is damaged"
            ) from None

    def _get_array(self, name: str) -> zarr.Array:
        node = self._node(name)
        if not isinstance(node, zarr.Array):
            raise StoreError(f"{self.path}: {name!r} is a group, expected an array")
        if self.writable:  # every chunk on disk, all-zero ones too: a missing one is damage
            node = node.with_config({"write_empty_chunks": True})
        return node

    def _read_whole(self, name: str, a: int = 0, b: int | None = None) -> np.ndarray:
        """``name[a:b]`` read at open time, with a damaged chunk as a StoreError naming it."""
        arr = self._get_array(name)
        try:
            return arr[a:b]
        except Exception as e:  # the codec raises for a truncated or garbled chunk
            raise StoreError(
                f"{self.path}: {name} is unreadable ({type(e).__name__}: {str(e)[:200]}); the "
                "commit record is damaged"
            ) from None

    def _read(self, name: str, a: int, b: int) -> np.ndarray:
        """Frames ``[a, b)`` of array ``name``; a damaged chunk is a StoreError naming the
        episodes, the key and the chunk instead of a codec traceback (or silent zeros)."""
        arr = self._arrays[name]
        try:
            return arr[a:b]
        except Exception as e:
            cf = arr.chunks[0]
            first = int(np.searchsorted(self._ends, a, side="right"))
            raise StoreError(
                f"{self.path}: {'data/' + name if name in self.schema.keys else name} frames "
                f"{a}..{b} (chunks {a // cf}..{max(a, b - 1) // cf}, from episode {first}) are "
                f"unreadable ({type(e).__name__}: {str(e)[:160]}); run `uio2-robot data "
                f"repair {self.path}` to drop the damaged episodes"
            ) from None

    # ------------------------------------------------------------------ raw access (integrity)
    def raw_array(self, name: str) -> zarr.Array:
        """The zarr array ``name`` ("data/<key>", "meta/episode_ends", ...) as opened at the last
        commit read; for integrity checks, not for reading episodes."""
        key = name[len("data/") :] if name.startswith("data/") else name
        return self._arrays[key]

    def raw_group(self, name: str) -> zarr.Group:
        """The zarr group ``name`` (e.g. "meta", whose attributes hold stats and integrity)."""
        node = self._node(name)
        if not isinstance(node, zarr.Group):
            raise StoreError(f"{self.path}: {name!r} is an array, expected a group")
        return node

    def record(self, i: int) -> dict[str, Any]:
        """The JSON record of committed episode ``i`` (checksums included)."""
        return self._records[self._check_index(i)]

    def prompt_bytes_ends(self) -> list[int]:
        """Exclusive end offset of each committed episode's bytes in meta/prompt_images."""
        return [int(r["prompt_bytes_end"]) for r in self._records]

    def _prompt_bytes_end(self) -> int:
        return int(self._records[-1]["prompt_bytes_end"]) if self._records else 0

    def lock(self) -> None:
        """Take the single-writer lock without appending (``data repair`` rebuilding the
        store); ``close`` releases it."""
        self._lock()

    def _lock(self) -> None:
        # flock on the store folder itself: released by the kernel if the writer dies (kill -9),
        # and no extra file that zarr would have to ignore.
        fd = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreError(
                f"{self.path} is already open for appending by another process; a store has one writer"
            ) from None
        self._lock_fd = fd

    def _truncate_uncommitted(self) -> None:
        """Drop what a killed writer left beyond the last committed episode."""
        removed = 0
        for tmp in self.path.rglob("*.partial"):  # zarr's half-written temporary files
            tmp.unlink(missing_ok=True)
            removed += 1
        n, n_frames = self.n_episodes, self.n_frames
        dropped_frames = 0
        for key, spec in self.schema.keys.items():
            arr = self._arrays[key]
            if arr.shape[0] != n_frames:
                dropped_frames = max(dropped_frames, arr.shape[0] - n_frames)
                arr.resize((n_frames, *spec.shape))
        dropped_records = 0
        for name in (ENDS, RECORDS):
            if self._arrays[name].shape[0] != n:
                dropped_records = max(dropped_records, self._arrays[name].shape[0] - n)
                self._arrays[name].resize((n,))
        pend = self._prompt_bytes_end()
        dropped_bytes = self._arrays[PROMPT_BYTES].shape[0] - pend
        if dropped_bytes:
            self._arrays[PROMPT_BYTES].resize((pend,))
        if removed or dropped_frames or dropped_records or dropped_bytes:
            self.recovered = {
                "temp_files": removed,
                "frames": dropped_frames,
                "records": dropped_records,
                "prompt_bytes": dropped_bytes,
            }


def _build_empty(
    root: Path, schema: StoreSchema, chunk_frames: int, level: int, compressor: str
) -> None:
    attrs = {ROOT_ATTR: {"schema_version": SCHEMA_VERSION, **schema.to_json()}}
    group = zarr.open_group(root, mode="w", attributes=attrs)
    for key, spec in schema.keys.items():
        group.create_array(
            f"data/{key}",
            shape=(0, *spec.shape),
            chunks=(frames_per_chunk(spec, chunk_frames), *spec.shape),
            dtype=spec.dtype,
            compressors=_compressor(spec.dtype, level, compressor),
            fill_value=0,
        )
    group.create_array(ENDS, shape=(0,), chunks=(1024,), dtype="int64", fill_value=0)
    # Written with write_empty_chunks (EpisodeStore._get_array): an absent chunk is damage.
    group["meta"].attrs[INTEGRITY_ATTR] = {
        "version": INTEGRITY_VERSION,
        "every_chunk_written": True,
    }
    group.create_array(RECORDS, shape=(0,), chunks=(128,), dtype=str)
    group.create_array(
        PROMPT_BYTES,
        shape=(0,),
        chunks=(PROMPT_CHUNK_BYTES,),
        dtype="uint8",
        compressors=_compressor("uint8", level, compressor),
        fill_value=0,
    )


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 1024:.0f} KiB"


def _disk_full_message(store: EpisodeStore, episodes: Sequence[Episode], err: OSError) -> str:
    """What a full disk cost: how much the batch needed, what was free, and that nothing
    committed is at risk (the commit record was not touched; a rerun resumes)."""
    raw = sum(
        sum(np.asarray(v).nbytes for v in ep.steps.values())
        + sum(np.asarray(s).nbytes for s in ep.prompt if not isinstance(s, str))
        for ep in episodes
    )
    free = shutil.disk_usage(store.path).free
    return (
        f"no space left on the disk of {store.path} ({err.strerror}): appending "
        f"{len(episodes)} episode(s) needed up to {_size(raw)} (uncompressed) and "
        f"{_size(free)} were free. The {store.n_episodes} committed episodes are safe "
        "(nothing half-written is ever read); free some space and rerun the same command to "
        "resume"
    )


def _committed_prefix(ends: np.ndarray) -> int:
    """Length of the leading strictly increasing run of positive ends (the committed episodes)."""
    if len(ends) == 0 or ends[0] <= 0:
        return 0
    bad = np.flatnonzero(np.diff(ends) <= 0)
    return int(bad[0]) + 1 if len(bad) else len(ends)


def _encode_prompt(prompt: list[PromptSegment], offset: int) -> tuple[list[dict[str, Any]], bytes]:
    """JSON descriptors of the segments and the concatenated raw bytes of the image segments."""
    out: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for seg in prompt:
        if isinstance(seg, str):
            out.append({"text": seg})
            continue
        arr = np.ascontiguousarray(seg)
        raw = arr.tobytes()
        out.append(
            {
                "image": {
                    "offset": offset,
                    "nbytes": len(raw),
                    "shape": list(arr.shape),
                    "dtype": arr.dtype.str,  # with byte order, so any numeric dtype round-trips
                }
            }
        )
        blobs.append(raw)
        offset += len(raw)
    return out, b"".join(blobs)


def _encode_record(
    episode: Episode, prompt_json: list[dict[str, Any]], pbytes_end: int
) -> dict[str, Any]:
    record = {
        "task": str(episode.task),
        "level": str(episode.level),
        "seed": None if episode.seed is None else int(episode.seed),
        "success": bool(episode.success),
        "action_mode": str(episode.action_mode),
        "control_hz": None if episode.control_hz is None else float(episode.control_hz),
        "extra": episode.extra,
        "length": episode.length,
        "prompt": prompt_json,
        "prompt_bytes_end": pbytes_end,
    }
    try:
        json.dumps(record["extra"], allow_nan=False)
    except (TypeError, ValueError) as e:
        raise StoreError(
            f"episode extra metadata is not JSON-serialisable ({e}); expected plain JSON values"
        ) from e
    return record


def _has_root_attr(root: Path) -> bool:
    try:
        meta = json.loads((root / "zarr.json").read_text())
    except (OSError, ValueError):
        return False
    return ROOT_ATTR in meta.get("attributes", {})
