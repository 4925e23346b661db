"""Shapes, textures and the level splits: the data the suite is built from."""

from __future__ import annotations

import math

import numpy as np
import pytest

from uio2_robot.envs.levels import level_shapes, level_textures, object_pairs
from uio2_robot.envs.shapes import (
    HELDOUT_BASES,
    HELDOUT_DRAGGED,
    SHAPES,
    TRAIN_BASES,
    TRAIN_DRAGGED,
    Box,
    Cyl,
    Prism,
    shape,
)
from uio2_robot.envs.textures import (
    ALL_TEXTURES,
    DARK_TEXTURES,
    FIRST_HALF,
    HAS_DARK,
    SECOND_HALF,
    SET_A,
    SET_B,
    TEXTURES,
    UNSEEN,
    pattern_image,
    texture,
)


def _covers(part, x: float, y: float) -> bool:
    """Whether point (x, y) lies in a part's footprint."""
    if isinstance(part, Cyl):
        return math.hypot(x - part.cx, y - part.cy) <= part.r
    if isinstance(part, Box):
        c, s = math.cos(part.yaw), math.sin(part.yaw)
        dx, dy = x - part.cx, y - part.cy
        return abs(c * dx + s * dy) <= part.hx and abs(-s * dx + c * dy) <= part.hy
    v = part.verts
    signs = [
        (v[(k + 1) % len(v)][0] - v[k][0]) * (y - v[k][1])
        - (v[(k + 1) % len(v)][1] - v[k][1]) * (x - v[k][0])
        for k in range(len(v))
    ]
    return all(s >= 0 for s in signs) or all(s <= 0 for s in signs)


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_shape_is_well_formed(name: str) -> None:
    s = shape(name)
    assert s.parts and s.radius > 0 and s.height > 0
    assert s.kind in ("dragged", "base", "marker") and s.profile in ("square", "circle", None)
    for p in s.parts:
        assert p.z1 > p.z0 >= 0
        if isinstance(p, Prism):  # MuJoCo collides the convex hull: a prism must be convex
            v = np.asarray(p.verts)
            e1 = np.roll(v, -1, axis=0) - v
            e2 = np.roll(v, -2, axis=0) - np.roll(v, -1, axis=0)
            cross = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
            assert np.all(cross > 0) or np.all(cross < 0), f"{name}: non-convex prism"
    if s.kind == "dragged":
        # the suction point must be on the object, or the cup would miss (a ring's centre is a hole)
        assert any(_covers(p, *s.grasp) for p in s.parts), f"{name}: grasp point not on a part"
    if s.kind == "base":
        assert s.inner is not None and s.inner.contains(0.0, 0.0)
        for off in s.inner.place_offsets:
            assert s.inner.contains(*off), (
                f"{name}: oracle place offset {off} outside the container"
            )
    if s.table_parts is not None:
        assert all(0 <= i < len(s.parts) for i in s.table_parts)


def test_object_sizes_suit_a_64px_view() -> None:
    # 64 px span ~1.06 m of table: dragged objects must be several pixels, bases hold two objects
    for name in TRAIN_DRAGGED + HELDOUT_DRAGGED:
        assert 0.03 <= shape(name).radius <= 0.06, name
    for name in TRAIN_BASES + HELDOUT_BASES:
        assert shape(name).radius >= 0.1, name


def test_unknown_names_raise() -> None:
    with pytest.raises(ValueError, match="unknown shape 'blok'"):
        shape("blok")
    with pytest.raises(ValueError, match="unknown texture 'rde'"):
        texture("rde")


def test_pattern_images_are_deterministic_and_two_toned() -> None:
    for t in TEXTURES.values():
        if t.kind == "solid":
            with pytest.raises(ValueError, match="solid colour"):
                pattern_image(t)
            continue
        a, b = pattern_image(t), pattern_image(t)
        assert a.shape == (32, 32, 3) and a.dtype == np.uint8
        assert np.array_equal(a, b)
        assert len(np.unique(a.reshape(-1, 3), axis=0)) >= 2, t.name


def test_vima_catalogue() -> None:
    """VIMA-Bench's catalogue: 14 + 5 dragged shapes, 4 + 2 bases, 49 textures (19 / 20 / 10 by
    role), 33 dark variants, VIMA's profile rule."""
    assert len(TRAIN_DRAGGED) == 14 and len(HELDOUT_DRAGGED) == 5
    assert len(TRAIN_BASES) == 4 and len(HELDOUT_BASES) == 2
    assert len(ALL_TEXTURES) == 49 and len(DARK_TEXTURES) == len(HAS_DARK) == 33
    assert (len(SET_A), len(SET_B), len(UNSEEN)) == (19, 20, 10)
    assert set(SET_A) | set(SET_B) | set(UNSEEN) == set(ALL_TEXTURES)
    assert len(FIRST_HALF) == 24 and len(SECOND_HALF) == 25
    assert "olive" not in HAS_DARK and "red_paisley" not in HAS_DARK
    assert [shape(n).profile for n in ("shorter_block", "pallet", "ring", "pan", "heart")] == [
        "square",
        "square",
        "circle",
        "circle",
        None,
    ]


def test_level_pools_follow_vima() -> None:
    """L1 dragged <- Set A, base <- Set B; L2 swapped; L3 held-out shapes only; L4 all."""
    for kind, l1, l2 in (("dragged", SET_A, SET_B), ("base", SET_B, SET_A)):
        assert {t for _, t in object_pairs("L1", kind)} == set(l1)
        assert {t for _, t in object_pairs("L2", kind)} == set(l2)
        assert {s for s, _ in object_pairs("L1", kind)} == {s for s, _ in object_pairs("L2", kind)}
    assert set(level_shapes("L3", "dragged")) == set(HELDOUT_DRAGGED)
    assert set(level_shapes("L3", "base")) == set(HELDOUT_BASES)
    assert set(level_shapes("L4", "dragged")) == set(TRAIN_DRAGGED + HELDOUT_DRAGGED)
    assert set(level_textures("L3")) == set(ALL_TEXTURES)
    with pytest.raises(ValueError, match="unknown level 'L5'"):
        object_pairs("L5", "dragged")
    with pytest.raises(ValueError, match="unknown object kind 'lid'"):
        object_pairs("L1", "lid")


def test_dark_variants_are_darker() -> None:
    for name in HAS_DARK:
        light, dark = texture(name), texture(f"dark_{name}")
        assert sum(map(sum, dark.colors)) < sum(map(sum, light.colors)), name
