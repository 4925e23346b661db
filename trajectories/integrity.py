"""What a store holds, checked against what it claims: chunk coverage and per-episode checksums.

Why this exists: zarr reads a chunk file that is absent as the array's fill value, so a deleted
chunk of camera frames silently becomes black frames, and nothing else would notice. Two checks:

- **coverage** (fast, one 16-byte header read per chunk): every chunk that committed frames fall
  into must exist, at the size its blosc header records (c-blosc decodes a truncated chunk of
  incompressible frames without an error, so the size is checked, not left to the codec). Stores made since integrity checks existed write every chunk, even all-zero ones
  (``every_chunk_written`` in the ``meta`` attributes); there an absent chunk is damage. In an
  older store zarr skipped all-zero chunks, so an absent chunk is damage only for episodes with
  checksums (appended by this code) and otherwise a note.
- **content** (deep, linear in the store's size): each episode's record carries the sha256 of its
  frames per key and of its prompt image bytes, written at append time. Deep verification
  decompresses every key once, in chunk-aligned blocks, and streams each block into the hashes of
  the episodes it covers. Episodes without checksums (older stores) are still read in full, so
  an unreadable chunk is found, but their contents cannot be compared with anything.

A damage names the episode, the key and the chunk, so ``uio2-robot data repair`` can drop exactly
the damaged episodes.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from uio2_robot.trajectories.errors import StoreError

if TYPE_CHECKING:
    from uio2_robot.trajectories.store import EpisodeStore

CHECKSUM_FIELD = "sha256"
"""Record field: {data key: hex sha256 of its frames, PROMPT_DIGEST_KEY: of its prompt bytes}."""
PROMPT_DIGEST_KEY = "prompt_images"
INTEGRITY_ATTR = "integrity"
"""``meta`` attribute of stores that write every chunk: {"version": 1, "every_chunk_written": true}."""
INTEGRITY_VERSION = 1
BLOCK_CHUNKS = 16  # chunks decompressed per read in deep verification (bounded memory)


def frames_digest(frames: np.ndarray) -> str:
    """sha256 of frames as stored (C order, the store's dtype): what deep verification recomputes."""
    return hashlib.sha256(np.ascontiguousarray(frames).tobytes()).hexdigest()


def episode_digests(steps: Mapping[str, np.ndarray], prompt_bytes: bytes) -> dict[str, str]:
    """The checksums written into an episode's record at append time."""
    out = {key: frames_digest(frames) for key, frames in steps.items()}
    out[PROMPT_DIGEST_KEY] = hashlib.sha256(prompt_bytes).hexdigest()
    return out


@dataclass(frozen=True)
class Damage:
    """One damaged episode: which key, which chunk (None: the episode's whole span), and why."""

    episode: int
    key: str
    chunk: str | None
    why: str

    def __str__(self) -> str:
        where = f" chunk {self.chunk}" if self.chunk else ""
        return f"episode {self.episode}: {self.key}{where} {self.why}"


@dataclass
class VerifyReport:
    """What verification found: damages (each names episode, key, chunk) and notes."""

    episodes: int
    checksummed: int  # episodes whose record carries checksums
    deep: bool
    damages: list[Damage] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def damaged_episodes(self) -> list[int]:
        return sorted({d.episode for d in self.damages})

    @property
    def ok(self) -> bool:
        return not self.damages

    def problems(self, limit: int = 20) -> list[str]:
        """One line per damage (at most ``limit``, then a count of the rest)."""
        lines = [str(d) for d in self.damages[:limit]]
        if len(self.damages) > limit:
            lines.append(f"... and {len(self.damages) - limit} more damaged chunks or keys")
        return lines


def every_chunk_written(store: EpisodeStore) -> bool:
    """True for stores created since integrity checks (zarr's empty-chunk skipping is off)."""
    info = store.raw_group("meta").attrs.get(INTEGRITY_ATTR)
    return isinstance(info, dict) and bool(info.get("every_chunk_written"))


def chunk_file(store: EpisodeStore, name: str, index: int) -> Path:
    """The file of chunk ``index`` (along frames) of array ``name`` (e.g. "data/top")."""
    arr = store.raw_array(name)
    coords = (index, *([0] * (arr.ndim - 1)))
    return store.path / arr.path / arr.metadata.encode_chunk_key(coords)


def blosc_truncation(path: Path) -> str | None:
    """Why a blosc chunk file is cut short, or None when its size is the one its header records.

    c-blosc decodes a truncated buffer without complaint when the chunk was stored uncompressed
    (noise-like camera frames are), returning whatever follows in memory, so the size written in
    the 16-byte header (``cbytes``, bytes 12..16) is the only cheap way to see the cut."""
    with open(path, "rb") as f:
        head = f.read(16)
        f.seek(0, 2)
        size = f.tell()
    if len(head) < 16:
        return f"is unreadable: truncated or garbled ({size} bytes, shorter than a blosc header)"
    cbytes = int.from_bytes(head[12:16], "little")
    if cbytes != size:
        return f"is unreadable: truncated or garbled ({size} bytes, its blosc header says {cbytes})"
    return None


def _uses_blosc(arr: Any) -> bool:
    return any(type(c).__name__ == "BloscCodec" for c in arr.compressors)


def _episode_spans(ends: np.ndarray, a: int, b: int) -> Iterator[int]:
    """Indices of the episodes whose frames (ends = exclusive end per episode) meet [a, b)."""
    first = int(np.searchsorted(ends, a, side="right"))
    last = int(np.searchsorted(ends, b - 1, side="right")) if b > a else first
    return iter(range(first, min(last, len(ends) - 1) + 1))


def _key_ends(store: EpisodeStore, key: str) -> np.ndarray:
    """Exclusive end (in elements of the array) of each episode's span of ``key``."""
    if key == PROMPT_DIGEST_KEY:
        return np.array(store.prompt_bytes_ends(), dtype=np.int64)
    return store.episode_ends


def _key_span(store: EpisodeStore, key: str) -> tuple[np.ndarray, int, str, Any] | None:
    """(episode ends, total elements, array name, zarr array) of ``key``; None if empty."""
    ends = _key_ends(store, key)
    total = int(ends[-1]) if len(ends) else 0
    if total == 0:
        return None
    name = _array_name(key)
    return ends, total, name, store.raw_array(name)


def _array_name(key: str) -> str:
    from uio2_robot.trajectories.store import PROMPT_BYTES

    return PROMPT_BYTES if key == PROMPT_DIGEST_KEY else f"data/{key}"


def check_coverage(store: EpisodeStore) -> VerifyReport:
    """Fast check: every chunk the committed episodes cover exists (one stat per chunk)."""
    report = VerifyReport(store.n_episodes, _checksummed(store), deep=False)
    _coverage(store, report)
    return report


def _checksummed(store: EpisodeStore) -> int:
    return sum(CHECKSUM_FIELD in store.record(i) for i in range(store.n_episodes))


def _coverage(store: EpisodeStore, report: VerifyReport) -> set[tuple[int, str]]:
    """Adds missing-chunk damages to ``report``; returns the (episode, key) pairs they hit."""
    strict = every_chunk_written(store)
    hit: set[tuple[int, str]] = set()
    absent_unknown = 0
    for key in [*store.data_keys, PROMPT_DIGEST_KEY]:
        span = _key_span(store, key)
        if span is None:
            continue
        ends, total, name, arr = span
        blosc = _uses_blosc(arr)
        cf = arr.chunks[0]
        for c in range(math.ceil(total / cf)):
            path = chunk_file(store, name, c)
            if path.is_file():
                why = blosc_truncation(path) if blosc else None
                if why is None:
                    continue
            else:
                why = "is missing"
            a, b = c * cf, min((c + 1) * cf, total)
            for e in _episode_spans(ends, a, b):
                if int(ends[e]) == (int(ends[e - 1]) if e else 0):
                    continue  # an episode with no bytes of this key (no prompt images)
                if why != "is missing" or strict or CHECKSUM_FIELD in store.record(e):
                    report.damages.append(
                        Damage(e, name, f"{c} ({path.relative_to(store.path)})", why)
                    )
                    hit.add((e, key))
                else:
                    absent_unknown += 1
    if absent_unknown:
        report.notes.append(
            f"{absent_unknown} chunk(s) of episodes written before integrity checks are absent; "
            "zarr skipped all-zero chunks then, so they read as zeros and cannot be told from "
            "deleted ones"
        )
    return hit


def verify_store(store: EpisodeStore, deep: bool = True) -> VerifyReport:
    """Coverage, and with ``deep`` every chunk decompressed and every checksum compared."""
    report = VerifyReport(store.n_episodes, _checksummed(store), deep=deep)
    hit = _coverage(store, report)
    if deep:
        for key in [*store.data_keys, PROMPT_DIGEST_KEY]:
            _verify_key(store, key, report, hit)
    if report.checksummed < report.episodes:
        report.notes.append(
            f"{report.episodes - report.checksummed} of {report.episodes} episodes were written "
            "before checksums existed: their chunks are checked for presence and readability, "
            "their contents cannot be verified"
        )
    return report


def _verify_key(
    store: EpisodeStore, key: str, report: VerifyReport, hit: set[tuple[int, str]]
) -> None:
    """Stream ``key`` in chunk-aligned blocks into per-episode sha256s (linear, bounded memory)."""
    span = _key_span(store, key)
    if span is None:
        return
    ends, total, name, arr = span
    cf = arr.chunks[0]
    step = cf * BLOCK_CHUNKS
    bad: set[int] = {e for e, k in hit if k == key}
    e, h = 0, hashlib.sha256()
    starts = np.concatenate([[0], ends[:-1]])

    def feed(a: int, b: int, data: np.ndarray | None) -> None:
        nonlocal e, h
        while a < b:
            while e < len(ends) and int(ends[e]) <= a:
                _finish(store, key, e, h, bad, report)
                e, h = e + 1, hashlib.sha256()
            take = min(b, int(ends[e])) - a
            if data is None:
                bad.add(e)
            else:
                off = a - (b - len(data))
                h.update(np.ascontiguousarray(data[off : off + take]).tobytes())
            a += take

    for a in range(0, total, step):
        b = min(a + step, total)
        try:
            feed(a, b, arr[a:b])
            continue
        except Exception:  # a corrupt chunk raises from the codec: find which one
            pass
        for c0 in range(a, b, cf):
            c1 = min(c0 + cf, b)
            try:
                data = arr[c0:c1]
            except Exception as exc:
                path = chunk_file(store, name, c0 // cf)
                for ep in _episode_spans(ends, c0, c1):
                    if int(ends[ep]) > int(starts[ep]) and (ep, key) not in hit:
                        report.damages.append(
                            Damage(
                                ep,
                                name,
                                f"{c0 // cf} ({path.relative_to(store.path)})",
                                f"is unreadable ({type(exc).__name__}: {str(exc)[:120]})",
                            )
                        )
                        hit.add((ep, key))
                feed(c0, c1, None)
            else:
                feed(c0, c1, data)
    while e < len(ends):
        _finish(store, key, e, h, bad, report)
        e, h = e + 1, hashlib.sha256()


def _finish(
    store: EpisodeStore,
    key: str,
    e: int,
    h: hashlib._Hash,
    bad: set[int],
    report: VerifyReport,
) -> None:
    """Compare episode ``e``'s recomputed digest of ``key`` with its record (if it has one)."""
    if e in bad:
        return
    want = store.record(e).get(CHECKSUM_FIELD, {}).get(key)
    if want is None:
        return
    got = h.hexdigest()
    if got != want:
        report.damages.append(
            Damage(
                e,
                _array_name(key),
                None,
                f"content differs from its checksum (recorded {want[:12]}, read {got[:12]})",
            )
        )


def require_sound(store: EpisodeStore, deep: bool = False) -> VerifyReport:
    """Raise a StoreError naming the damaged episodes, keys and chunks; else the report.

    ``deep=False`` checks coverage only (what the dataset runs on open); ``deep=True`` also every
    checksum (what ``train`` runs before its first step)."""
    report = verify_store(store, deep=deep)
    if not report.ok:
        lines = "; ".join(report.problems(limit=5))
        raise StoreError(
            f"{store.path}: {len(report.damaged_episodes)} damaged episode(s) "
            f"{report.damaged_episodes[:20]}: {lines}. Nothing was read from them; run "
            f"`uio2-robot data repair {store.path}` to drop them (good episodes are kept bit "
            "for bit), or re-collect"
        )
    return report
