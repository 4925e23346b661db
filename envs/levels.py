"""VIMA's generalisation levels as sets of (shape, texture) pairs the sampler may draw from.

- L1 (placement): training shapes and textures, in the combinations seen in training; only the
  placements are new.
- L2 (combinatorial): the same shapes and textures, but only in the combinations L1 never uses.
  The split is a fixed rule on catalogue indices, ``(i_shape + i_texture) % 3 == 0`` -> L2, so
  every training shape and texture appears in both levels, just never paired the same way.
- L3 (novel objects): held-out shapes (letter R, diamond, hexagon, round, star) and bases
  (pallet, pan), with any texture including the held-out ones.
- L4 (novel tasks): training shapes and textures in any combination; the novelty is the task
  (same_texture), which is never trained on.
"""

from __future__ import annotations

import sys

from .shapes import HELDOUT_BASES, HELDOUT_DRAGGED, TRAIN_BASES, TRAIN_DRAGGED
from .spaces import LEVELS
from .textures import HELDOUT_TEXTURES, TRAIN_TEXTURES

Pair = tuple[str, str]  # (shape name, texture name)


def check_level(level: str) -> None:
    """Raise a clear error for an unknown level name."""
    if level not in LEVELS:
        raise ValueError(f"unknown level {level!r}; expected one of {LEVELS}")


def _split(shapes: tuple[str, ...], textures: tuple[str, ...], level: str) -> tuple[Pair, ...]:
    out = []
    for i, s in enumerate(shapes):
        for j, t in enumerate(textures):
            held_out = (i + j) % 3 == 0
            if level == "L4" or (level == "L2") == held_out:
                out.append((s, t))
    return tuple(out)


def object_pairs(level: str, kind: str) -> tuple[Pair, ...]:
    """The (shape, texture) pairs of ``kind`` allowed at ``level``.

    ``kind`` is "dragged", "base" or "swept" (the small blocks of the sweeping task, which has no
    L3 and keeps one shape: its L1/L2 split is on textures alone).
    """
    check_level(level)
    if kind not in ("dragged", "base", "swept"):
        raise ValueError(f"unknown object kind {kind!r}; expected 'dragged', 'base' or 'swept'")
    if kind == "swept":
        if level == "L3":
            raise ValueError("the swept small blocks have no held-out (L3) variant")
        return _split(("small_block",), TRAIN_TEXTURES, level)
    if level == "L3":
        shapes = HELDOUT_DRAGGED if kind == "dragged" else HELDOUT_BASES
        return tuple((s, t) for s in shapes for t in TRAIN_TEXTURES + HELDOUT_TEXTURES)
    shapes = TRAIN_DRAGGED if kind == "dragged" else TRAIN_BASES
    return _split(shapes, TRAIN_TEXTURES, level)


def level_shapes(level: str, kind: str) -> tuple[str, ...]:
    """The distinct shapes of ``kind`` that can appear at ``level`` (sizes the object pool)."""
    return tuple(dict.fromkeys(s for s, _ in object_pairs(level, kind)))


def level_textures(level: str) -> tuple[str, ...]:
    """Textures that can appear at ``level``."""
    check_level(level)
    return TRAIN_TEXTURES + HELDOUT_TEXTURES if level == "L3" else TRAIN_TEXTURES


def resolve_levels(tasks: list[str], levels: list[str]) -> dict[str, list[str]]:
    """Each task's requested levels that it has; unknown names are errors, empty pairs warnings."""
    from .tasks import TASK_CLASSES

    unknown = [t for t in tasks if t not in TASK_CLASSES]
    if unknown:
        raise ValueError(f"unknown task(s) {unknown}; expected some of {sorted(TASK_CLASSES)}")
    bad = [lvl for lvl in levels if lvl not in LEVELS]
    if bad:
        raise ValueError(f"unknown level(s) {bad}; expected some of {list(LEVELS)}")
    out: dict[str, list[str]] = {}
    for task in tasks:
        have = [lvl for lvl in levels if lvl in TASK_CLASSES[task].levels]
        if not have:
            print(
                f"note: {task} has none of levels {levels} (it has {list(TASK_CLASSES[task].levels)}); skipped",
                file=sys.stderr,
            )
            continue
        out[task] = have
    if not out:
        raise ValueError(f"no task among {tasks} has any of the levels {levels}")
    return out
