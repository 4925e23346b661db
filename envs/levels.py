"""VIMA's four generalisation levels: which tasks each holds and which objects it may draw.

VIMA-Bench (``partition_files/*.yaml``; VIMA-SUITE.md §3):
- L1 placement generalisation: the 13 training tasks; dragged shapes and textures from the
  training sets, dragged objects in Set A textures and bases in Set B ones; only placements are new.
- L2 combinatorial generalisation: the same 13 tasks and shapes, the texture roles **swapped**
  (dragged <- Set B, base <- Set A): every texture was seen in training, but in the other role.
- L3 novel objects: the same tasks minus sweep_without_exceeding (12); only the held-out shapes
  (letter R, diamond, hexagon, round, star; bases pallet and pan) with the tasks' default texture
  pools (first / second half of the 49, which mix seen and never-seen textures).
- L4 novel tasks: the four held-out tasks, with their default (all) shapes and textures.

Pools are role-specific ("dragged", "base", "swept"); tasks narrow them further (asymmetric shapes,
dark-capable textures) through ``SetupContext.pairs``.
"""

from __future__ import annotations

import sys

from .shapes import (
    ASYMMETRIC_HELDOUT,
    ASYMMETRIC_TRAIN,
    HELDOUT_BASES,
    HELDOUT_DRAGGED,
    TRAIN_BASES,
    TRAIN_DRAGGED,
)
from .spaces import LEVELS
from .textures import ALL_TEXTURES, FIRST_HALF, HAS_DARK, SECOND_HALF, SET_A, SET_B, dark_name

Pair = tuple[str, str]  # (shape name, texture name)
KINDS = ("dragged", "base", "swept")

# VIMA-Bench's partitions: tasks per level, in the paper's task order.
LEVEL_TASKS: dict[str, tuple[str, ...]] = {
    "L1": (
        "visual_manipulation",
        "scene_understanding",
        "rotate",
        "rearrange",
        "rearrange_then_restore",
        "novel_adj",
        "novel_noun",
        "twist",
        "follow_order",
        "sweep_without_exceeding",
        "same_shape",
        "manipulate_old_neighbor",
        "pick_in_order_then_restore",
    ),
    "L4": ("novel_adj_and_noun", "follow_motion", "sweep_without_touching", "same_texture"),
}
LEVEL_TASKS["L2"] = LEVEL_TASKS["L1"]
LEVEL_TASKS["L3"] = tuple(t for t in LEVEL_TASKS["L1"] if t != "sweep_without_exceeding")
HELDOUT_TASKS: tuple[str, ...] = LEVEL_TASKS["L4"]

# VIMA-200M's published success (%) per task and level (VIMA paper appendix, as transcribed by
# CoGeLoT; VIMA-SUITE.md §5.1). L3 sweep_without_exceeding is not in the released partition.
VIMA_200M: dict[str, dict[str, float]] = {
    "visual_manipulation": {"L1": 100.0, "L2": 100.0, "L3": 99.0},
    "scene_understanding": {"L1": 100.0, "L2": 100.0, "L3": 100.0},
    "rotate": {"L1": 99.5, "L2": 99.5, "L3": 100.0},
    "rearrange": {"L1": 100.0, "L2": 100.0, "L3": 97.0},
    "rearrange_then_restore": {"L1": 56.5, "L2": 54.5, "L3": 54.5},
    "novel_adj": {"L1": 100.0, "L2": 100.0, "L3": 100.0},
    "novel_noun": {"L1": 100.0, "L2": 100.0, "L3": 99.0},
    "novel_adj_and_noun": {"L4": 100.0},
    "twist": {"L1": 18.0, "L2": 17.5, "L3": 17.5},
    "follow_motion": {"L4": 0.0},
    "follow_order": {"L1": 77.0, "L2": 77.0, "L3": 77.0},
    "sweep_without_exceeding": {"L1": 93.0, "L2": 93.0},
    "sweep_without_touching": {"L4": 0.0},
    "same_texture": {"L4": 94.5},
    "same_shape": {"L1": 97.0, "L2": 98.5, "L3": 97.5},
    "manipulate_old_neighbor": {"L1": 76.5, "L2": 75.0, "L3": 46.0},
    "pick_in_order_then_restore": {"L1": 43.0, "L2": 45.0, "L3": 43.5},
}
VIMA_200M_LEVEL_MEANS = {"L1": 81.5, "L2": 81.5, "L3": 78.7, "L4": 48.6}


def check_level(level: str) -> None:
    """Raise a clear error for an unknown level name."""
    if level not in LEVELS:
        raise ValueError(f"unknown level {level!r}; expected one of {LEVELS}")


def task_levels(task: str) -> tuple[str, ...]:
    """The levels VIMA evaluates ``task`` at."""
    return tuple(lvl for lvl in LEVELS if task in LEVEL_TASKS[lvl])


def level_shape_pool(level: str, kind: str) -> tuple[str, ...]:
    """Shapes of role ``kind`` ("dragged" or "base") at ``level``."""
    check_level(level)
    if kind == "swept":
        return ("small_block",)
    if kind not in ("dragged", "base"):
        raise ValueError(f"unknown object kind {kind!r}; expected one of {KINDS}")
    train, held = (
        (TRAIN_DRAGGED, HELDOUT_DRAGGED) if kind == "dragged" else (TRAIN_BASES, HELDOUT_BASES)
    )
    return {"L1": train, "L2": train, "L3": held, "L4": train + held}[level]


def asymmetric_shapes(level: str) -> tuple[str, ...]:
    """Rotationally asymmetric dragged shapes at ``level`` (rotate, twist)."""
    check_level(level)
    return {"L1": ASYMMETRIC_TRAIN, "L2": ASYMMETRIC_TRAIN, "L3": ASYMMETRIC_HELDOUT}.get(
        level, ASYMMETRIC_TRAIN + ASYMMETRIC_HELDOUT
    )


def level_texture_pool(level: str, kind: str) -> tuple[str, ...]:
    """Textures of role ``kind`` at ``level``: Set A / Set B at L1, swapped at L2, the default
    halves of the 49 at L3 and L4. Swept blocks take the dragged pool."""
    check_level(level)
    if kind not in KINDS:
        raise ValueError(f"unknown object kind {kind!r}; expected one of {KINDS}")
    dragged = kind in ("dragged", "swept")
    if level == "L1":
        return SET_A if dragged else SET_B
    if level == "L2":
        return SET_B if dragged else SET_A
    return FIRST_HALF if dragged else SECOND_HALF


def dark_capable_pool(level: str) -> tuple[str, ...]:
    """novel_adj's colour pool: the level's dark-capable dragged textures and their dark variants
    (24 entries at L1, 28 at L2, all 66 at L3 and L4)."""
    check_level(level)
    base = {"L1": SET_A, "L2": SET_B}.get(level, ALL_TEXTURES)
    light = tuple(t for t in base if t in HAS_DARK)
    return light + tuple(dark_name(t) for t in light)


def object_pairs(level: str, kind: str) -> tuple[Pair, ...]:
    """The (shape, texture) pairs of ``kind`` ("dragged", "base" or "swept") allowed at ``level``."""
    shapes = level_shape_pool(level, kind)
    textures = level_texture_pool(level, kind)
    return tuple((s, t) for s in shapes for t in textures)


def level_shapes(level: str, kind: str) -> tuple[str, ...]:
    """The distinct shapes of ``kind`` that can appear at ``level`` (sizes the object pool)."""
    return level_shape_pool(level, kind)


def level_textures(level: str) -> tuple[str, ...]:
    """Every texture either role can draw at ``level``."""
    return tuple(
        dict.fromkeys(level_texture_pool(level, "dragged") + level_texture_pool(level, "base"))
    )


def resolve_levels(tasks: list[str], levels: list[str]) -> dict[str, list[str]]:
    """Each task's requested levels that it has; an empty task list means every task of the
    requested levels (VIMA's partitions). Unknown names are errors naming the known ones. A named
    task that lacks some of the levels is narrowed with a note on stderr (rollout and collect
    both read this), so a user who asked for it learns what was not run."""
    from .tasks import TASK_CLASSES

    named = bool(tasks)

    bad = [lvl for lvl in levels if lvl not in LEVELS]
    if bad:
        raise ValueError(f"unknown level(s) {bad}; expected some of {list(LEVELS)}")
    if not tasks:
        tasks = [t for t in TASK_CLASSES if any(t in LEVEL_TASKS[lvl] for lvl in levels)]
    unknown = [t for t in tasks if t not in TASK_CLASSES]
    if unknown:
        raise ValueError(f"unknown task(s) {unknown}; expected some of {sorted(TASK_CLASSES)}")
    out: dict[str, list[str]] = {}
    for task in tasks:
        have = [lvl for lvl in levels if lvl in TASK_CLASSES[task].levels]
        if not have:
            print(
                f"note: {task} has none of levels {levels} (it has {list(TASK_CLASSES[task].levels)}); skipped",
                file=sys.stderr,
            )
            continue
        if named and len(have) < len(levels):
            lacking = [lvl for lvl in levels if lvl not in have]
            print(f"note: {task} has no level {lacking}; running {have}", file=sys.stderr)
        out[task] = have
    if not out:
        raise ValueError(f"no task among {tasks} has any of the levels {levels}")
    return out
