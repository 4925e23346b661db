"""One tiny random checkpoint exported once per test session through the real command.

Exporting is the slow part (torch.export of two graphs), so every export test shares this
bundle; tests that tamper with a bundle copy it first.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from uio2_robot.export.command import run_export_command
from uio2_robot.export.config import ExportConfig
from uio2_robot.export.random_checkpoint import make_random_checkpoint


def export_checked(root: Path, seed: int = 0, episodes: int = 2, steps: int = 3, **model) -> dict:
    """``uio2-robot export checkpoint=CKPT out=BUNDLE check=true`` on a tiny random model
    (``model``: ModelConfig overrides), on synthetic observations so it never needs the sim."""
    checkpoint = make_random_checkpoint(root / "ckpt", "tiny", seed=seed, **model)
    cfg = ExportConfig(
        checkpoint=str(checkpoint),
        out=str(root / "bundle"),
        check=True,
        use_suite=False,
        parity_episodes=episodes,
        parity_steps=steps,
        threads=1,
        report=str(root / "report.json"),
    )
    status = run_export_command(cfg)
    return {
        "status": status,
        "checkpoint": checkpoint,
        "bundle": root / "bundle",
        "report": json.loads((root / "report.json").read_text()),
        "root": root,
    }


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The shared plain bundle (see ``export_checked``)."""
    return export_checked(tmp_path_factory.mktemp("export"))


@pytest.fixture(scope="session")
def checkpoint(exported: dict) -> Path:
    return exported["checkpoint"]


@pytest.fixture(scope="session")
def bundle(exported: dict) -> Path:
    return exported["bundle"]


@pytest.fixture(scope="session")
def runner(bundle: Path):
    from uio2_robot.runtime.runner import BundleRunner

    return BundleRunner(bundle, threads=1)


@pytest.fixture(scope="session")
def export_and_check():
    """``export_checked`` for tests that need a bundle of another model shape."""
    return export_checked
