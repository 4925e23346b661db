"""The package's layering, checked from the source: which first-party layer imports which.

Every ``import`` counts, also those inside functions (a lazy import is still a dependency).
A layer is a top-level part of the installed package: ``uio2_robot.<layer>`` (``envs``,
``policies`` and ``trajectories`` install under ``uio2_robot`` from the repo's top level).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = {  # repo folder -> installed package
    "uio2_robot": "uio2_robot",
    "envs": "uio2_robot.envs",
    "policies": "uio2_robot.policies",
    "trajectories": "uio2_robot.trajectories",
}


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT)
    parts = [SOURCES[rel.parts[0]], *rel.with_suffix("").parts[1:]]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Absolute names of every module imported anywhere in ``path``."""
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            out.add(stem)
            out.update(f"{stem}.{a.name}" for a in node.names)  # `from pkg import module`
    return out


def layer_of(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if parts[0] == "uio2_robot" and len(parts) > 1 else None


def graph() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(layer -> first-party layers it imports, layer -> third-party top-level modules)."""
    first: dict[str, set[str]] = defaultdict(set)
    third: dict[str, set[str]] = defaultdict(set)
    known = {p.stem for p in (ROOT / "uio2_robot").iterdir()} | {"envs", "policies", "trajectories"}
    for folder in SOURCES:
        for path in (ROOT / folder).rglob("*.py"):
            me = layer_of(module_name(path))
            if me is None:
                continue
            for name in imports_of(path):
                other = layer_of(name)
                if other is not None and other in known and other != me:
                    first[me].add(other)
                elif not name.startswith("uio2_robot") and name:
                    third[me].add(name.split(".")[0])
    return first, third


def reachable(start: str, first: dict[str, set[str]]) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in first.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_model_and_tokenize_know_nothing_of_envs_data_training_or_deployment() -> None:
    first, _ = graph()
    banned = {"envs", "deploy", "train", "export", "policies", "eval", "trajectories"}
    for layer in ("model", "tokenize"):
        assert not (reachable(layer, first) & banned), (layer, reachable(layer, first) & banned)


def test_the_robot_side_layers_import_neither_torch_nor_mujoco() -> None:
    """contracts, motion and the ONNX runtime: what a robot PC runs (with deploy's loop)."""
    first, third = graph()
    for layer in ("contracts", "motion", "runtime"):
        layers = {layer} | reachable(layer, first)
        heavy = {m for lay in layers for m in third.get(lay, ()) if m in ("torch", "mujoco")}
        assert not heavy, (layer, layers, heavy)


def test_no_import_cycle_between_layers() -> None:
    first, _ = graph()
    cycles = sorted(a for a in list(first) if a in reachable(a, first))
    assert not cycles, f"layers on an import cycle: {cycles} ({dict(first)})"


def test_no_module_imports_a_repo_folder_by_its_bare_name() -> None:
    """``envs``, ``policies``, ``trajectories`` exist as top-level names only in a checkout's
    root; installed, they are ``uio2_robot.<name>``. A bare import works from the repo root (and
    so in tests) and fails everywhere else, as ``python -m uio2_robot.train.probe`` once did."""
    bare = {"envs", "policies", "trajectories", "configs"}
    found = [
        f"{path.relative_to(ROOT)}: {name}"
        for folder in SOURCES
        for path in (ROOT / folder).rglob("*.py")
        for name in imports_of(path)
        if name.split(".")[0] in bare
    ]
    assert not found, found
