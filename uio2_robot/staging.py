"""Folders written as one transaction: checkpoints and deploy bundles.

A leaf module (standard library only): :func:`staged_folder` yields a temp folder beside the
target and renames it into place only if the body succeeds, so a crash while writing leaves the
previous folder intact and readers never see new weights beside an old config.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def staged_folder(out: str | os.PathLike[str], overwrite: bool = True) -> Iterator[Path]:
    """A temp folder next to ``out`` that replaces ``out`` only if the body succeeds."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists; pass overwrite=True to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; checkpoints and bundles are meant to be shared
    try:
        yield tmp
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
