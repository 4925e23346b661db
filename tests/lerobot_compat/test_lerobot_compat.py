"""The LeRobot v3 import/export checked against lerobot itself (its own venv, docs/lerobot.md).

Skipped unless a Python with lerobot is found ($LEROBOT_PYTHON, then /tmp/lrv/bin/python): the
project does not depend on lerobot, whose torch/numpy pins would decide this environment's.
``tests/trajectories/test_lerobot.py`` covers the import of real lerobot output without it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_checks import check_export, check_import, default_lerobot_python, suite_store  # noqa: E402

PYTHON = default_lerobot_python()
pytestmark = pytest.mark.skipif(
    PYTHON is None,
    reason="lerobot is not installed: set LEROBOT_PYTHON to a venv's python with lerobot==0.4.4",
)


def test_export_loads_in_lerobot(tmp_path: Path) -> None:
    assert PYTHON is not None
    store = suite_store(tmp_path / "suite.zarr", episodes=2)
    result = check_export(store, tmp_path, PYTHON, "h264")
    assert result["ok"], result
    assert min(result["psnr_db"].values()) > 30


def test_lerobot_written_dataset_imports_bit_exact(tmp_path: Path) -> None:
    assert PYTHON is not None
    result = check_import(tmp_path, PYTHON, episodes=2, size=64)
    assert result["ok"], result
    assert result["source_codec"] == {"observation.images.front": "av1"}
