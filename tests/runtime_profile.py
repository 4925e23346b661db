"""Python as on a robot PC that installed only ``uio2-robot[runtime]`` (docs/install.md).

The runtime profile is pyproject.toml's base dependencies + the ``runtime`` extra, and whatever
those need in turn. Every other installed third-party module (torch, mujoco, gymnasium, tqdm,
matplotlib, PyAV, pyarrow, onnx, ... and their own dependencies) is refused here with the
ImportError a machine without it raises, so a test in the full dev environment sees exactly what
a robot PC would. Use ``install()`` in a child process, or run
``python runtime_profile.py -m MODULE ARGS`` / ``python runtime_profile.py -c CODE``.
"""

from __future__ import annotations

import re
import runpy
import sys
import tomllib
from importlib import metadata
from importlib.machinery import PathFinder
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
KEEP = {"uio2-robot", "pip", "setuptools", "wheel"}  # the package itself and any venv's tools


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _needed(requirement: str) -> str | None:
    """The normalised name of a requirement an install without extras pulls in here, else None."""
    req = Requirement(requirement)
    if req.marker is not None and not req.marker.evaluate({"extra": ""}):
        return None
    return _norm(req.name)


def profile_distributions(extras: tuple[str, ...] = ("runtime",)) -> set[str]:
    """Normalised names of the distributions a fresh ``uio2-robot[extras]`` install would hold:
    pyproject's base and ``extras`` lists, closed over each installed dependency's own
    (unconditional) requirements."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    todo = [_norm(Requirement(r).name) for r in project["dependencies"]]
    for extra in extras:
        todo += [_norm(Requirement(r).name) for r in project["optional-dependencies"][extra]]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        todo += [dep for dep in map(_needed, requires) if dep is not None]
    return seen


def refused_modules(extras: tuple[str, ...] = ("runtime",)) -> set[str]:
    """Top-level modules installed here that ``uio2-robot[extras]`` would not have."""
    allowed = profile_distributions(extras) | KEEP
    return {
        module
        for module, dists in metadata.packages_distributions().items()
        if not any(_norm(d) in allowed for d in dists)
    }


class NotInstalled:
    """Wraps the path finder so that ``modules`` (and their submodules) are not found: imports
    raise ModuleNotFoundError and ``importlib.util.find_spec`` returns None, as for a module that
    is not installed (zarr, for one, probes optional packages with find_spec)."""

    def __init__(self, finder: Any, modules: set[str]) -> None:
        self.finder, self.modules = finder, modules

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name.split(".")[0] in self.modules:
            return None
        return self.finder.find_spec(name, path, target)

    def __getattr__(self, attr: str) -> Any:  # invalidate_caches, find_distributions, ...
        return getattr(self.finder, attr)


def install(extras: tuple[str, ...] = ("runtime",)) -> set[str]:
    """Hide, in this process, every module outside ``uio2-robot[extras]``; returns them."""
    modules = refused_modules(extras)  # (site startup may have loaded one, e.g. certifi: harmless)
    sys.meta_path[:] = [NotInstalled(f, modules) if f is PathFinder else f for f in sys.meta_path]
    return modules


if __name__ == "__main__":
    sys.path.remove(str(Path(__file__).resolve().parent))  # tests/ holds folders named model, ...
    install()
    flag, target, *rest = sys.argv[1:]
    sys.argv = [target, *rest]
    if flag == "-m":
        runpy.run_module(target, run_name="__main__", alter_sys=True)
    elif flag == "-c":
        exec(compile(target, "<runtime-profile>", "exec"), {"__name__": "__main__"})
    else:
        raise SystemExit(f"usage: {Path(__file__).name} -m MODULE [ARGS] | -c CODE")
