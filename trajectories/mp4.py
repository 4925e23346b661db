"""The package's one mp4 writer and reader, through PyAV (FFmpeg's libx264, libsvtav1, libdav1d).

Why PyAV and not OpenCV: OpenCV's pip wheels write only MPEG-4 Part 2 (``mp4v``), which Chrome
and Firefox do not play, and cannot decode the AV1 videos LeRobot datasets ship. Videos are
written as H.264 (or AV1 on request) in yuv420p with even dimensions and the ``moov`` atom at the
front (``+faststart``), which is what browsers need to start playing before the whole file has
arrived. Frame ``k`` is stamped ``k / fps`` exactly, so readers can address frames by time (LeRobot
datasets keep many episodes in one file and find an episode's frames by their timestamps).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import numpy as np

from uio2_robot.trajectories.errors import StoreError

CODECS = {"h264": "libx264", "av1": "libsvtav1"}
"""Codec names accepted by :class:`Mp4Writer` -> the FFmpeg encoder that writes them."""
DEFAULT_CRF = {"h264": 23, "av1": 30}  # libx264's own default; LeRobot's AV1 setting


class Mp4Writer:
    """Stream RGB uint8 frames into an mp4 file (H.264 or AV1, yuv420p, +faststart).

    The frame size is fixed by the first frame: both sides are rounded up to even (yuv420p
    stores colour at half resolution), and later frames of another size are padded or cropped
    to it. ``gop`` is the key-frame interval (None: the encoder's default); a short one makes
    seeking to any frame cheap, which is why LeRobot datasets use 2. ``crf`` is the quality
    (lower is better; None: :data:`DEFAULT_CRF`).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        fps: float,
        codec: str = "h264",
        *,
        crf: int | None = None,
        gop: int | None = None,
    ) -> None:
        if codec not in CODECS:
            raise StoreError(f"codec is {codec!r}, expected one of {sorted(CODECS)}")
        if not (isinstance(fps, int | float) and np.isfinite(fps) and fps > 0):
            raise StoreError(f"fps is {fps!r}, expected a finite number > 0")
        if gop is not None and gop < 1:
            raise StoreError(f"gop is {gop}, expected >= 1 (or None for the encoder's default)")
        self.path = Path(path)
        self.fps = Fraction(fps).limit_denominator(1001)
        self.codec = codec
        self.frames = 0
        self.bytes = 0  # encoded bytes muxed so far (the encoder may still hold some frames)
        self.width = self.height = 0
        self._options = {"crf": str(DEFAULT_CRF[codec] if crf is None else int(crf))}
        if gop is not None:
            self._options["g"] = str(int(gop))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._container = av.open(str(self.path), mode="w", options={"movflags": "+faststart"})
        except (OSError, av.FFmpegError) as e:
            raise StoreError(f"cannot open {self.path} for writing an mp4: {e}") from e
        self._stream: av.VideoStream | None = None

    def write(self, frame: np.ndarray) -> None:
        """Encode one (H, W, 3) uint8 RGB frame."""
        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise StoreError(
                f"video frame {self.frames} has shape {frame.shape} and dtype {frame.dtype}; "
                "expected (H, W, 3) uint8 RGB"
            )
        if self._stream is None:
            self._open_stream(frame.shape[0], frame.shape[1])
        assert self._stream is not None
        h, w = self.height, self.width
        frame = frame[:h, :w]
        if frame.shape[:2] != (h, w):
            frame = np.pad(frame, ((0, h - frame.shape[0]), (0, w - frame.shape[1]), (0, 0)))
        video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        video_frame.pts = self.frames
        self._mux(self._stream.encode(video_frame))
        self.frames += 1

    def close(self) -> None:
        """Flush the encoder and finish the file (writes the index at the front)."""
        if self._container is None:
            return
        try:
            if self._stream is not None:
                self._mux(self._stream.encode(None))
            self._container.close()
        finally:
            self._container = None

    def __enter__(self) -> Mp4Writer:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _open_stream(self, height: int, width: int) -> None:
        assert self._container is not None
        self.height, self.width = height + height % 2, width + width % 2
        stream = self._container.add_stream(CODECS[self.codec], rate=self.fps)
        stream.width, stream.height, stream.pix_fmt = self.width, self.height, "yuv420p"
        stream.time_base = 1 / self.fps
        stream.options = dict(self._options)
        self._stream = stream

    def _mux(self, packets: Iterable[av.Packet]) -> None:
        assert self._container is not None
        for packet in packets:
            self.bytes += packet.size
            self._container.mux(packet)


def write_mp4(
    frames: Iterable[np.ndarray],
    path: str | os.PathLike[str],
    fps: float,
    codec: str = "h264",
    crf: int | None = None,
) -> tuple[int, int]:
    """Write RGB uint8 frames to an mp4 (see :class:`Mp4Writer`); returns (width, height)."""
    with Mp4Writer(path, fps, codec, crf=crf) as writer:
        for frame in frames:
            writer.write(frame)
        if writer.frames == 0:
            raise StoreError("no frames to write; expected at least one (H, W, 3) uint8 frame")
    return writer.width, writer.height


class Mp4Reader:
    """Decode an mp4 (H.264, AV1, ...) as (time in seconds, (H, W, 3) uint8 RGB) in order.

    ``frames_from(t0, n)`` returns the ``n`` frames stamped ``t0, t0 + 1/fps, ...``: it decodes
    on from where it stopped when ``t0`` lies ahead (episodes of one file are read in order) and
    seeks otherwise. A file that is truncated, garbled or holds fewer frames than asked is a
    StoreError naming the file and the time it could not reach.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise StoreError(f"video {self.path} does not exist")
        try:
            self._container = av.open(str(self.path))
            self._stream = self._container.streams.video[0]
        except (av.FFmpegError, IndexError) as e:
            raise StoreError(
                f"{self.path} is not a readable video ({type(e).__name__}: {e}); expected an mp4 "
                "with a video stream"
            ) from None
        self._stream.thread_type = "AUTO"
        self._frames: Iterator[av.VideoFrame] | None = None
        self._last = -np.inf  # time of the last frame handed out

    @property
    def codec(self) -> str:
        """The stream's codec (``h264``, ``av1``, ...)."""
        return str(self._stream.codec.canonical_name)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the stream."""
        return int(self._stream.width), int(self._stream.height)

    def __iter__(self) -> Iterator[tuple[float, np.ndarray]]:
        while (frame := self._next()) is not None:
            yield float(frame.time), frame.to_ndarray(format="rgb24")

    def frames_from(self, t0: float, n: int, fps: float, tolerance_s: float) -> np.ndarray:
        """The ``n`` frames at ``t0 + k / fps`` (k = 0..n-1): (n, H, W, 3) uint8."""
        return self.frames_at([t0 + k / fps for k in range(n)], tolerance_s)

    def frames_at(self, times: list[float], tolerance_s: float) -> np.ndarray:
        """The frames stamped ``times`` (increasing), each within ``tolerance_s``: (n, H, W, 3)."""
        if not times:
            raise StoreError(f"{self.path}: no frame times asked for; expected at least one")
        if times[0] <= self._last + tolerance_s:
            self._seek(times[0])
        out: list[np.ndarray] = []
        while (frame := self._next()) is not None:
            t, want = float(frame.time), times[len(out)]
            if t < want - tolerance_s:
                continue
            if t > want + tolerance_s:
                raise StoreError(
                    f"{self.path}: expected a frame at t={want:.6f}s, the next one is at "
                    f"t={t:.6f}s; the video's timestamps do not match the dataset's "
                    "(from_timestamp + timestamp)"
                )
            self._last = t
            out.append(frame.to_ndarray(format="rgb24"))
            if len(out) == len(times):
                return np.stack(out)
        raise StoreError(
            f"{self.path} ends after {len(out)} of the {len(times)} frames from "
            f"t={times[0]:.6f}s (no frame at t={times[len(out)]:.6f}s); expected the whole "
            "episode: the video is truncated or shorter than meta/episodes says"
        )

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> Mp4Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _seek(self, t0: float) -> None:
        offset = int(max(0.0, t0) / self._stream.time_base)
        try:
            self._container.seek(offset, stream=self._stream, backward=True, any_frame=False)
        except av.FFmpegError as e:
            raise StoreError(f"{self.path}: cannot seek to t={t0:.6f}s ({e})") from None
        self._frames = None
        self._last = -np.inf

    def _next(self) -> av.VideoFrame | None:
        """The next decoded frame, or None at the end of the stream."""
        if self._frames is None:
            self._frames = self._container.decode(self._stream)
        try:
            return next(self._frames)
        except StopIteration:
            return None
        except av.FFmpegError as e:
            raise StoreError(
                f"{self.path} is unreadable after t={self._last:.6f}s ({type(e).__name__}: {e}); "
                "the video is truncated or corrupt"
            ) from None
