"""Shared fixtures: the official parity fixture copied into tests/data/uio2_official."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

DATA = Path(__file__).resolve().parents[1] / "data" / "uio2_official"


@pytest.fixture(scope="session")
def fixture_tensors() -> dict[str, torch.Tensor]:
    return load_file(str(DATA / "fixture.safetensors"))


@pytest.fixture(scope="session")
def official_weights() -> dict[str, torch.Tensor]:
    return load_file(str(DATA / "model.safetensors"))


@pytest.fixture(scope="session")
def release_config() -> dict:
    return json.loads((DATA / "config.json").read_text())


@pytest.fixture()
def release_dir(tmp_path: Path) -> Path:
    """A folder in the released layout: config.json + model.safetensors."""
    folder = tmp_path / "uio2-tiny"
    folder.mkdir()
    shutil.copy(DATA / "config.json", folder / "config.json")
    shutil.copy(DATA / "model.safetensors", folder / "model.safetensors")
    return folder
