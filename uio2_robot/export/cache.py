"""A checkpoint's deploy bundle, exported once and reused: what `uio2-robot serve` runs by default.

Serving through onnxruntime gives the robot loop a ~7 ms control step instead of torch's ~30 ms,
so `serve` with no arguments serves the shipped checkpoint as an ONNX bundle. Exporting takes a
while, so the bundle is kept in a cache folder keyed by the checkpoint's content: the sha256 of
its weights, config and processor files. Every start re-hashes the checkpoint and re-verifies the
cached bundle (its graph hashes, ``load_bundle``); a changed checkpoint or a damaged bundle is
exported again, never served. The export is staged in a temp folder and renamed into place, so an
interrupted export leaves no half bundle behind.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from pathlib import Path

from uio2_robot.runtime.manifest import BundleError, load_bundle, sha256_file

log = logging.getLogger("uio2_robot.export.cache")

CHECKPOINT_FILES = ("model.safetensors", "config.json", "processor.json")
CACHE_ENV = "UIO2_ROBOT_CACHE"


def default_cache_dir() -> Path:
    """``$UIO2_ROBOT_CACHE``, else ``$XDG_CACHE_HOME/uio2-robot``, else ``~/.cache/uio2-robot``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "uio2-robot"


def checkpoint_digest(checkpoint: str | Path) -> str:
    """sha256 over the checkpoint's weights, config and processor (their own sha256s, in order)."""
    folder = Path(checkpoint)
    h = hashlib.sha256()
    for name in CHECKPOINT_FILES:
        path = folder / name
        if not path.is_file():
            raise FileNotFoundError(f"{folder} is not a checkpoint folder: {name} is missing")
        h.update(f"{name}:{sha256_file(path)}\n".encode())
    return h.hexdigest()


def cached_bundle(
    checkpoint: str | Path, cache_dir: str | Path | None = None, variant: str = "fp32"
) -> Path:
    """The folder of ``checkpoint``'s bundle in the cache, exporting it first if needed."""
    digest = checkpoint_digest(checkpoint)
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    out = root / "bundles" / f"{digest[:20]}-{variant}"
    if out.is_dir():
        try:
            bundle = load_bundle(out)  # re-verifies every graph's sha256
            recorded = bundle.manifest.get("source_checkpoint", {}).get("digest")
            if recorded == digest and bundle.manifest.get("variant") == variant:
                log.info("serving the cached bundle %s (checkpoint digest %s)", out, digest[:12])
                return out
            log.warning("cached bundle %s belongs to another checkpoint: exporting again", out)
        except (BundleError, OSError, ValueError) as exc:
            log.warning("cached bundle %s failed verification (%s): exporting again", out, exc)
        shutil.rmtree(out, ignore_errors=True)
    from uio2_robot.export.bundle import export_bundle

    logging.getLogger("onnxscript").setLevel(
        logging.WARNING
    )  # per-node notes, not for a server log
    log.info(
        "exporting %s to %s once (variant %s); later starts reuse it", checkpoint, out, variant
    )
    export_bundle(checkpoint, out, variant=variant, source_digest=digest)
    return out
