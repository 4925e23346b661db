"""Load triton, where it is installed, before the process's first EGL context.

Why: headless MuJoCo renders through EGL, which on machines without a GPU is Mesa's software
renderer (llvmpipe), and llvmpipe loads the system's libLLVM. triton, which PyPI's CUDA build of
torch brings along and which ``torch.optim`` loads through ``torch._dynamo`` at the first
optimizer step, carries its own LLVM in its C extension; loaded *after* Mesa's, it segfaults the
process (found on Python 3.12 with PyPI's torch, docs/python_versions.md). Loaded first, the two
coexist. So every place that creates a GL context calls :func:`load_triton_before_gl` first; it is
a no-op where triton is absent (the CPU torch build, a robot PC without torch) or already loaded.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys

_done = False


def load_triton_before_gl() -> None:
    """Import triton now if it is installed and an EGL context may follow (MUJOCO_GL=egl)."""
    global _done
    if _done:
        return
    _done = True
    if os.environ.get("MUJOCO_GL", "egl") != "egl" or "triton" in sys.modules:
        return
    if importlib.util.find_spec("triton") is not None:
        importlib.import_module("triton")
