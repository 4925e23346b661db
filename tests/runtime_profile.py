"""Python as on a robot PC that installed only ``uio2-robot[runtime]`` (docs/install.md).

The runtime profile is pyproject.toml's base dependencies + the ``runtime`` extra, and whatever
those need in turn. Every other installed third-party module (torch, mujoco, gymnasium, tqdm,
matplotlib, PyAV, pyarrow, onnx, ... and their own dependencies) is refused here with the
ImportError a machine without it raises, so a test in the full dev environment sees exactly what
a robot PC would. Use ``install()`` in a child process, or run
``python runtime_profile.py -m MODULE ARGS`` / ``python runtime_profile.py -c CODE``.
"""

from __future__ import annotations

import runpy
import sys
import tomllib
from importlib import metadata
from importlib.machinery import PathFinder
from pathlib import Path
from typing import Any

from uio2_robot.extras import dependency_closure, normalise_name

ROOT = Path(__file__).resolve().parents[1]
KEEP = {"uio2-robot", "pip", "setuptools", "wheel"}  # the package itself and any venv's tools


def profile_distributions(extras: tuple[str, ...] = ("runtime",)) -> set[str]:
    """Normalised names of the distributions a fresh ``uio2-robot[extras]`` install would hold:
    pyproject's base and ``extras`` lists (read from the source, so an edit counts before any
    reinstall), closed over each installed dependency's own requirements."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = list(project["dependencies"])
    for extra in extras:
        lines += project["optional-dependencies"][extra]
    return dependency_closure(lines)


def refused_modules(extras: tuple[str, ...] = ("runtime",)) -> set[str]:
    """Top-level modules installed here that ``uio2-robot[extras]`` would not have."""
    allowed = profile_distributions(extras) | KEEP
    return {
        module
        for module, dists in metadata.packages_distributions().items()
        if not any(normalise_name(d) in allowed for d in dists)
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
