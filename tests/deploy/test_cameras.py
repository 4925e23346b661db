"""OpenCV camera sources on a real video file; resizing to the policy's image size."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from uio2_robot.deploy.cameras import CameraError, OpenCVCamera, resize_to

COLORS_RGB = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-frame MJPG video: red, green, blue (written as BGR, as OpenCV expects)."""
    path = tmp_path_factory.mktemp("cam") / "rgb.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (32, 24))
    assert writer.isOpened()
    for rgb in COLORS_RGB:
        frame = np.zeros((24, 32, 3), np.uint8)
        frame[:] = rgb[::-1]
        writer.write(frame)
    writer.release()
    return path


def test_file_source_reads_frames_in_order_as_rgb(video: Path) -> None:
    cam = OpenCVCamera("front", str(video), threaded=False)
    cam.open()
    try:
        times = []
        for rgb in COLORS_RGB:
            frame = cam.read()
            assert frame.image.shape == (24, 32, 3) and frame.image.dtype == np.uint8
            np.testing.assert_allclose(frame.image.reshape(-1, 3).mean(0), rgb, atol=12)
            times.append(frame.t)
        assert times == sorted(times)
        with pytest.raises(CameraError, match="no frame"):
            cam.read()
    finally:
        cam.close()


def test_threaded_source_reports_the_end_of_the_stream(video: Path) -> None:
    cam = OpenCVCamera("front", str(video), threaded=True, timeout_s=2.0)
    cam.open()
    try:
        assert cam._thread is not None
        cam._thread.join(2.0)  # a file ends quickly; a live device would keep going
        with pytest.raises(CameraError, match="stopped delivering frames"):
            cam.read()
    finally:
        cam.close()


def test_bad_sources_are_named(tmp_path: Path) -> None:
    with pytest.raises(CameraError, match="cannot open source"):
        OpenCVCamera("front", str(tmp_path / "missing.avi")).open()
    with pytest.raises(CameraError, match="not open"):
        OpenCVCamera("front", 0).read()


def test_resize_to_policy_size() -> None:
    img = np.zeros((48, 64, 3), np.uint8)
    img[:, 32:] = 200
    out = resize_to(img, (24, 32))
    assert out.shape == (24, 32, 3) and out[:, 20:].min() == 200 and out[:, :12].max() == 0
    assert resize_to(img, (48, 64)) is img
