"""uio2-robot: Unified-IO 2 as a robot policy."""

from __future__ import annotations

import warnings
from importlib.util import find_spec
from pathlib import Path

__version__ = "0.1.0"

# The pip distributions that each install the same `cv2` package. uio2-robot depends on the
# headless build (as lerobot does); a peer that adds another (robosuite and mani-skill add
# `opencv-python`) leaves two builds writing into one `cv2/` folder: it imports the one installed
# last, and uninstalling either removes files the other needs (issue #23).
OPENCV_DISTRIBUTIONS = (
    "opencv-python-headless",
    "opencv-python",
    "opencv-contrib-python-headless",
    "opencv-contrib-python",
)


def installed_opencv() -> dict[str, str]:
    """The OpenCV distributions installed beside `cv2`, name -> version (one folder listing;
    importlib.metadata would scan all of sys.path once per name)."""
    spec = find_spec("cv2")
    if spec is None or not spec.submodule_search_locations:
        return {}
    site = Path(next(iter(spec.submodule_search_locations))).parent
    found = {}
    for info in sorted(site.glob("opencv_*.dist-info")):
        name, _, version = info.name.removesuffix(".dist-info").rpartition("-")
        name = name.lower().replace("_", "-")
        if name in OPENCV_DISTRIBUTIONS:
            found[name] = version
    return found


def warn_if_several_opencv(found: dict[str, str] | None = None) -> str | None:
    """Warn (and return the message) when more than one OpenCV build is installed."""
    found = installed_opencv() if found is None else found
    if len(found) < 2:
        return None
    names = ", ".join(f"{n} {v}" for n, v in found.items())
    msg = (
        f"several OpenCV builds share one cv2 package here ({names}); cv2 is whichever was "
        "installed last. Keep one: pip uninstall -y "
        + " ".join(found)
        + " && pip install opencv-python-headless (or the one build your other packages need: "
        "uio2-robot uses no GUI function of cv2, so any one build serves it)."
    )
    warnings.warn(msg, RuntimeWarning, stacklevel=2)
    return msg


warn_if_several_opencv()
