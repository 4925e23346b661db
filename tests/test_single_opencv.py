"""One OpenCV build: the package warns when a peer adds a second distribution of cv2 (#23)."""

from __future__ import annotations

import warnings

import pytest

import uio2_robot


def test_this_environment_has_one_opencv_build() -> None:
    assert len(uio2_robot.installed_opencv()) == 1, uio2_robot.installed_opencv()


def test_one_build_is_quiet() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert uio2_robot.warn_if_several_opencv({"opencv-python-headless": "5.0.0.93"}) is None


def test_two_builds_warn_with_the_fix() -> None:
    found = {"opencv-python-headless": "5.0.0.93", "opencv-python": "4.12.0.88"}
    with pytest.warns(RuntimeWarning, match="several OpenCV builds") as rec:
        uio2_robot.warn_if_several_opencv(found)
    assert "pip uninstall -y opencv-python-headless opencv-python" in str(rec[0].message)
