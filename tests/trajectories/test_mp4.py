"""The one mp4 writer/reader: H.264 (or AV1) that browsers play, frames addressable by time."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from uio2_robot.eval.video import write_mp4 as rollout_write_mp4
from uio2_robot.trajectories.errors import StoreError
from uio2_robot.trajectories.mp4 import Mp4Reader, Mp4Writer, write_mp4


def _frames(n: int, h: int = 32, w: int = 48) -> list[np.ndarray]:
    """Flat frames whose grey level encodes their index (survives lossy coding)."""
    return [np.full((h, w, 3), 20 * i, dtype=np.uint8) for i in range(n)]


def test_h264_browser_playable(tmp_path: Path) -> None:
    path = tmp_path / "v.mp4"
    assert write_mp4(_frames(7, h=31, w=45), path, fps=10) == (46, 32)  # even sides
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"
        assert (stream.width, stream.height) == (46, 32)
        times = [frame.time for frame in container.decode(stream)]
    assert times == pytest.approx([k / 10 for k in range(7)])
    raw = path.read_bytes()
    assert 0 <= raw.find(b"moov") < raw.find(b"mdat")  # +faststart: the index comes first


def test_rollout_videos_use_the_same_writer(tmp_path: Path) -> None:
    path = rollout_write_mp4(_frames(3), tmp_path / "sub" / "r.mp4", fps=4)
    with Mp4Reader(path) as reader:
        assert reader.codec == "h264" and reader.size == (48, 32)
        assert len(list(reader)) == 3


def test_av1_and_frames_by_time(tmp_path: Path) -> None:
    path = tmp_path / "v.mp4"
    with Mp4Writer(path, fps=5, codec="av1", gop=2) as writer:
        for frame in _frames(10):
            writer.write(frame)
    with Mp4Reader(path) as reader:
        assert reader.codec == "av1"
        later = reader.frames_from(1.0, 3, fps=5, tolerance_s=1e-4)  # frames 5, 6, 7
        earlier = reader.frames_from(0.2, 2, fps=5, tolerance_s=1e-4)  # seeks back: 1, 2
    assert later.shape == (3, 32, 48, 3)
    np.testing.assert_allclose(later[:, 0, 0, 0], [100, 120, 140], atol=4)
    np.testing.assert_allclose(earlier[:, 0, 0, 0], [20, 40], atol=4)


def test_bad_input_is_named(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="expected one of"):
        Mp4Writer(tmp_path / "x.mp4", fps=5, codec="mp4v")
    with pytest.raises(StoreError, match="fps"):
        Mp4Writer(tmp_path / "x.mp4", fps=float("nan"))
    with Mp4Writer(tmp_path / "x.mp4", fps=5) as writer:
        with pytest.raises(StoreError, match=r"expected \(H, W, 3\) uint8"):
            writer.write(np.zeros((8, 8, 3), dtype=np.float32))
        writer.write(np.zeros((8, 8, 3), dtype=np.uint8))
    with pytest.raises(StoreError, match="no frames"):
        write_mp4([], tmp_path / "empty.mp4", fps=5)
    path = tmp_path / "v.mp4"
    write_mp4(_frames(6), path, fps=5)
    with Mp4Reader(path) as reader, pytest.raises(StoreError, match=r"ends after 2 of the 4"):
        reader.frames_from(0.8, 4, fps=5, tolerance_s=1e-4)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(StoreError, match="cut.mp4"), Mp4Reader(cut) as reader:
        reader.frames_from(0.0, 6, fps=5, tolerance_s=1e-4)
    with pytest.raises(StoreError, match="does not exist"):
        Mp4Reader(tmp_path / "missing.mp4")
