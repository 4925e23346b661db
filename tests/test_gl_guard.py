"""triton (PyPI's CUDA torch) loaded after Mesa's EGL segfaults; the guard loads it first."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap

import pytest

RENDER_THEN_TRITON = textwrap.dedent(
    """
    import os; os.environ["MUJOCO_GL"] = "egl"
    from uio2_robot.envs import make_env
    env = make_env("visual_manipulation", level="L1")
    env.reset(seed=0)
    import triton  # segfaulted here (rc 139) when the render came first
    import torch._dynamo  # what torch.optim loads at the first step
    print("ok")
    """
)


@pytest.mark.skipif(
    importlib.util.find_spec("triton") is None, reason="triton not installed (CPU torch build)"
)
def test_rendering_then_loading_triton_does_not_crash():
    env = {**os.environ, "MUJOCO_GL": "egl"}
    out = subprocess.run(
        [sys.executable, "-c", RENDER_THEN_TRITON], env=env, capture_output=True, text=True
    )
    assert out.returncode == 0 and "ok" in out.stdout, (out.returncode, out.stderr[-2000:])
