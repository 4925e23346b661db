"""Which install profile (pip extra) provides a missing module, for the CLI's error message.

The package installs in profiles (``pyproject.toml``: base, ``runtime``, ``sim``, ``train``,
``lerobot``, ``gpu``, ``ur``; docs/install.md): a robot PC has ``runtime`` only, so running
``rollout`` there fails on ``import mujoco``. A bare ``ModuleNotFoundError`` does not tell the user
what to do; :func:`missing_extra_message` turns it into the ``pip install "uio2-robot[sim]"`` to
run. The extras are read from the installed package's metadata (what pyproject.toml declared), so
this file holds no copy of the dependency lists, only the few import names that differ from their
distribution's name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from importlib import metadata

DISTRIBUTION = "uio2-robot"

# import name -> distribution name, where they differ (every other module is its own distribution)
DISTRIBUTION_OF = {
    "cv2": "opencv-python-headless",
    "rtde_control": "ur_rtde",
    "rtde_receive": "ur_rtde",
    "rtde_io": "ur_rtde",
    "yaml": "pyyaml",
}

# what each command needs beyond the base install; shown by `uio2-robot --help`, and preferred
# when a missing module is in several extras (tqdm is in both sim and train)
COMMAND_EXTRAS = {
    "rollout": ("sim", "train"),
    "collect": ("sim",),
    "train": ("train",),
    "export": ("train", "runtime"),
    "serve": ("runtime",),
    "robot": (),
    "data": ("runtime",),
    "info": ("train",),
    "official": ("train",),
}


def normalise_name(name: str) -> str:
    """PEP 503 name normalisation: ``ur_rtde`` and ``UR-RTDE`` are the same distribution."""
    return re.sub(r"[-_.]+", "-", name).lower()


@lru_cache(maxsize=1)
def extras_by_distribution() -> dict[str, tuple[str, ...]]:
    """Normalised distribution name -> the extras of uio2-robot that list it directly
    (``""`` for the base dependencies). Empty when the package's metadata is not installed."""
    try:
        requires = metadata.requires(DISTRIBUTION) or []
    except metadata.PackageNotFoundError:
        return {}
    out: dict[str, list[str]] = {}
    for line in requires:
        spec, _, marker = line.partition(";")
        name = normalise_name(re.split(r"[\s<>=!~\[(]", spec.strip(), maxsplit=1)[0])
        found = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", marker)
        extra = found.group(1) if found else ""
        if name == normalise_name(DISTRIBUTION):  # cpu = uio2-robot[runtime,sim,train]: no module
            continue
        out.setdefault(name, [])
        if extra not in out[name]:
            out[name].append(extra)
    return {name: tuple(extras) for name, extras in out.items()}


def extra_for_module(module: str, command: str | None = None) -> str | None:
    """The extra to install for a missing ``module`` (its top-level name is what counts): one the
    command needs if several provide it, else the first listed; None when no extra lists it (a
    base dependency, or not one of ours)."""
    top = module.split(".")[0]
    extras = extras_by_distribution().get(normalise_name(DISTRIBUTION_OF.get(top, top)), ())
    extras = tuple(e for e in extras if e)
    if not extras:
        return None
    wanted = COMMAND_EXTRAS.get(command or "", ())
    return next((e for e in extras if e in wanted), extras[0])


def missing_extra_message(exc: ModuleNotFoundError, command: str) -> str:
    """What to tell a user whose ``command`` stopped on ``exc``: the module, the extra that
    provides it and the pip command, or (a module no extra lists) the extras the command needs."""
    module = exc.name or str(exc)
    extra = extra_for_module(module, command)
    if extra is not None:
        return (
            f"'uio2-robot {command}' needs the module {module!r}, which this install lacks: "
            f'it comes with the {extra!r} extra: pip install "uio2-robot[{extra}]" '
            "(docs/install.md lists the profiles)"
        )
    needs = COMMAND_EXTRAS.get(command, ())
    hint = f'pip install "uio2-robot[{",".join(needs)}]"' if needs else "reinstall uio2-robot"
    return (
        f"'uio2-robot {command}' needs the module {module!r}, which this install lacks ({exc}); "
        f"this command's extras: {hint} (docs/install.md lists the profiles)"
    )


def dependency_closure(requirements: Iterable[str], extras: tuple[str, ...] = ()) -> set[str]:
    """Normalised names of what a fresh install of ``requirements`` would hold (uio2-robot itself
    left out): each PEP 508 line whose marker holds with no extra or one of ``extras`` (pyproject's
    lists, or the installed package's ``metadata.requires``), closed over each installed
    dependency's own unconditional requirements. Sizes the install profiles
    (benchmarks/install_profiles.py) and plays a robot PC's ``runtime`` profile in the tests
    (tests/runtime_profile.py)."""
    from packaging.requirements import Requirement  # hydra-core's dependency; only tools call this

    def wanted(req: Requirement, extras: tuple[str, ...]) -> bool:
        return req.marker is None or any(req.marker.evaluate({"extra": e}) for e in ("", *extras))

    todo = [
        normalise_name(req.name) for req in map(Requirement, requirements) if wanted(req, extras)
    ]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen or name == normalise_name(DISTRIBUTION):
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        todo += [normalise_name(r.name) for r in map(Requirement, requires) if wanted(r, ())]
    return seen
