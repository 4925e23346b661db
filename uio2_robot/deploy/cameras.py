"""Camera sources for the robot loop: OpenCV devices / stream URLs, and the simulator's renderer.

Every frame carries the monotonic time it was captured, so the loop can report how old the
image was when the action computed from it reached the arm. OpenCV sources can run a reader
thread that keeps only the newest frame: capture devices and network streams buffer frames,
and reading a buffered frame at 10 Hz from a 30 fps stream hands the policy a stale picture.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np


class CameraError(RuntimeError):
    """A camera could not be opened or stopped delivering frames."""


@dataclass
class Frame:
    """One RGB image (H, W, 3) uint8 and its monotonic capture time."""

    image: np.ndarray
    t: float


class Camera(Protocol):
    name: str

    def open(self) -> None: ...

    def read(self) -> Frame: ...

    def close(self) -> None: ...


class OpenCVCamera:
    """``cv2.VideoCapture`` on a device index (``0``) or a URL / file (``rtsp://...``, ``a.mp4``).

    ``threaded=True`` (devices, live streams) reads continuously on a thread and ``read`` returns
    the newest frame; ``threaded=False`` (files) reads the next frame on each call.
    """

    def __init__(
        self,
        name: str,
        source: int | str,
        *,
        width: int | None = None,
        height: int | None = None,
        threaded: bool = True,
        timeout_s: float = 2.0,
    ) -> None:
        self.name = name
        self.source = source
        self.width, self.height = width, height
        self.threaded = threaded
        self.timeout_s = timeout_s
        self._cap: Any = None
        self._latest: Frame | None = None
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: str | None = None

    def open(self) -> None:
        import cv2

        cap = cv2.VideoCapture(self.source)
        if not cap.isOpened():
            raise CameraError(
                f"camera {self.name!r}: cannot open source {self.source!r} (a device index such as "
                "0, a stream URL or a video file)"
            )
        if self.width:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
        if self.height:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # honoured by V4L2; others ignore it
        self._cap = cap
        if self.threaded:
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._reader, name=f"camera-{self.name}", daemon=True
            )
            self._thread.start()

    def _grab(self) -> Frame | None:
        import cv2

        ok, bgr = self._cap.read()
        if not ok or bgr is None:
            return None
        t = time.monotonic()
        return Frame(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), t)

    def _reader(self) -> None:
        while not self._stop.is_set():
            frame = self._grab()
            with self._cond:
                if frame is None:
                    self._error = "the source stopped delivering frames"
                    self._cond.notify_all()
                    return
                self._latest = frame
                self._cond.notify_all()

    def read(self) -> Frame:
        if self._cap is None:
            raise CameraError(f"camera {self.name!r} is not open; call open() first")
        if not self.threaded:
            frame = self._grab()
            if frame is None:
                raise CameraError(f"camera {self.name!r}: no frame from {self.source!r}")
            return frame
        with self._cond:
            if self._latest is None and self._error is None:
                self._cond.wait(self.timeout_s)
            if self._error is not None:
                raise CameraError(f"camera {self.name!r}: {self._error}")
            if self._latest is None:
                raise CameraError(f"camera {self.name!r}: no frame within {self.timeout_s} s")
            return self._latest

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
            self._thread = None
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class SimCamera:
    """One view of the sim driver's renderer (the frame of the latest simulated step)."""

    def __init__(self, name: str, driver: Any, view: str | None = None) -> None:
        self.name = name
        self.driver = driver
        self.view = view or name

    def open(self) -> None:
        pass

    def read(self) -> Frame:
        return self.driver.frame(self.view)

    def close(self) -> None:
        pass


def resize_to(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` (H, W, 3) uint8 at ``size`` (H, W); area filter when shrinking."""
    h, w = size
    if image.shape[:2] == (h, w):
        return image
    import cv2

    shrink = image.shape[0] > h or image.shape[1] > w
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
