"""The export cache behind `uio2-robot serve`: a checkpoint is exported once, reused while its
files hash the same, and exported again when the checkpoint or the cached bundle changed.

The cache is seeded with the session's shared bundle (exported by the real command, which
records the checkpoint digest), so only the repair below pays for a second export."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from safetensors.numpy import load_file, save_file

from uio2_robot.export.cache import cached_bundle, checkpoint_digest
from uio2_robot.runtime.manifest import load_bundle


def test_a_cached_bundle_is_reused_while_it_verifies_and_reexported_when_damaged(
    checkpoint: Path, bundle: Path, tmp_path: Path
) -> None:
    ckpt = tmp_path / "ckpt"
    shutil.copytree(checkpoint, ckpt)
    digest = checkpoint_digest(ckpt)
    assert load_bundle(bundle).manifest["source_checkpoint"]["digest"] == digest
    cache = tmp_path / "cache"
    slot = cache / "bundles" / f"{digest[:20]}-fp32"
    shutil.copytree(bundle, slot)
    stamp = (slot / "manifest.json").stat().st_mtime_ns

    assert cached_bundle(ckpt, cache) == slot  # verified and reused: nothing exported
    assert (slot / "manifest.json").stat().st_mtime_ns == stamp

    manifest = load_bundle(slot).manifest
    graph = slot / manifest["files"]["encoder"]["path"]
    graph.write_bytes(graph.read_bytes()[:-16] + b"\0" * 16)  # a damaged cached graph
    repaired = cached_bundle(ckpt, cache)
    assert repaired == slot and (slot / "manifest.json").stat().st_mtime_ns != stamp
    assert load_bundle(repaired).model_hash == manifest["model_hash"]  # same graphs again

    weights = load_file(ckpt / "model.safetensors")  # new weights: another cache slot
    name = sorted(weights)[0]
    weights[name] = weights[name] + 1.0
    save_file(weights, ckpt / "model.safetensors")
    assert checkpoint_digest(ckpt) != digest


def test_a_folder_that_is_no_checkpoint_is_named(checkpoint: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(checkpoint, broken)
    (broken / "processor.json").unlink()
    with pytest.raises(FileNotFoundError, match="processor.json is missing"):
        cached_bundle(broken, tmp_path / "cache")
