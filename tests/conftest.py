"""Test-wide setup. MUJOCO_GL must be set before the first `import mujoco` anywhere."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
# Two cores on CI: keep torch from oversubscribing them.
os.environ.setdefault("OMP_NUM_THREADS", "1")
