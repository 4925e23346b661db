"""The object shapes of the suite, modelled by the project from convex parts (nothing downloaded).

VIMA-Bench uses meshes of blocks, bowls, letters, stars, ... Here every shape is a union of convex
parts (boxes, cylinders and extruded convex polygons) so that MuJoCo's convex collision is exact
and objects slide, topple and stack physically. All lengths are metres in the object frame, whose
origin is the centre of the footprint at the object's *bottom* (so an object rests at z = 0).

Each shape also carries what the tasks need to reason about it without looking at meshes:
``profile`` (VIMA's same-profile grouping), ``symmetry`` (rotation that maps it onto itself),
``grasp`` (a point on the top surface where a suction cup seals; the centre of a ring is a hole),
``radius`` (bounding circle for collision-free placement) and, for containers, ``inner`` (the
region that counts as "in" it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

# Parts below are drawn at a reference size and scaled by SIZE_SCALE at the end of the module.
OBJ_H = 0.025  # height of dragged objects
FLOOR_H = 0.006  # container floor thickness


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in the (x, y) plane, rotated by ``yaw`` about its centre."""

    cx: float
    cy: float
    hx: float
    hy: float
    z0: float
    z1: float
    yaw: float = 0.0


@dataclass(frozen=True)
class Cyl:
    """A vertical cylinder (a disk when thin)."""

    cx: float
    cy: float
    r: float
    z0: float
    z1: float


@dataclass(frozen=True)
class Prism:
    """A convex polygon (counter-clockwise (x, y) vertices) extruded from z0 to z1."""

    verts: tuple[tuple[float, float], ...]
    z0: float
    z1: float


Part = Box | Cyl | Prism


@dataclass(frozen=True)
class Inner:
    """The region of a container that counts as "in" it: a circle or a rectangle (object frame)."""

    kind: str  # "circle" | "rect"
    r: float = 0.0
    hx: float = 0.0
    hy: float = 0.0

    def contains(self, x: float, y: float) -> bool:
        """Whether a point in the container's frame lies inside the region."""
        if self.kind == "circle":
            return x * x + y * y <= self.r * self.r
        return abs(x) <= self.hx and abs(y) <= self.hy

    @property
    def place_offsets(self) -> tuple[tuple[float, float], ...]:
        """Where the oracle puts the 1st, 2nd, ... object so that two fit side by side."""
        d = 0.45 * (self.r if self.kind == "circle" else min(self.hx, self.hy))
        return ((0.0, 0.0), (-d, 0.0), (d, 0.0), (0.0, d))


@dataclass(frozen=True)
class Shape:
    """One object model: its parts plus the facts tasks need about it."""

    name: str
    word: str  # how the prompt names it ("letter R", "three-sided rectangle")
    parts: tuple[Part, ...]
    kind: str  # "dragged" | "base" | "marker"
    profile: (
        str | None
    )  # "square" | "circle" | None: VIMA's profiles (same_shape); None never matches
    symmetry: float  # smallest rotation mapping the shape onto itself; 0 = any rotation
    grasp: tuple[float, float] = (0.0, 0.0)
    inner: Inner | None = None
    density: float = 600.0
    # Parts that rest on the table (None: all). Walls standing on a container's floor, or most
    # segments of a ring, need no table contact of their own; leaving them out keeps the contact
    # count (and solver cost) down without changing how the object rests.
    table_parts: tuple[int, ...] | None = None

    @property
    def height(self) -> float:
        """Top of the tallest part."""
        return max(p.z1 for p in self.parts)

    @property
    def radius(self) -> float:
        """Bounding-circle radius about the origin in the (x, y) plane (for non-overlapping layouts)."""
        return max(_part_radius(p) for p in self.parts)


def _part_radius(p: Part) -> float:
    if isinstance(p, Cyl):
        return math.hypot(p.cx, p.cy) + p.r
    if isinstance(p, Prism):
        return max(math.hypot(x, y) for x, y in p.verts)
    c, s = math.cos(p.yaw), math.sin(p.yaw)
    return max(
        math.hypot(p.cx + c * sx * p.hx - s * sy * p.hy, p.cy + s * sx * p.hx + c * sy * p.hy)
        for sx in (-1, 1)
        for sy in (-1, 1)
    )


def _regular(n: int, r: float, phase: float = 0.0, cx: float = 0.0, cy: float = 0.0):
    """Vertices of a regular n-gon (counter-clockwise)."""
    return tuple(
        (
            cx + r * math.cos(phase + 2 * math.pi * k / n),
            cy + r * math.sin(phase + 2 * math.pi * k / n),
        )
        for k in range(n)
    )


def _ring(r_in: float, r_out: float, z0: float, z1: float, n: int = 16) -> tuple[Box, ...]:
    """A ring as n boxes around a circle (a wall for bowls and pans)."""
    mid, half_w = 0.5 * (r_in + r_out), 0.5 * (r_out - r_in)
    half_len = mid * math.tan(math.pi / n) + half_w * 0.5
    out = []
    for k in range(n):
        a = 2 * math.pi * k / n
        out.append(Box(mid * math.cos(a), mid * math.sin(a), half_w, half_len, z0, z1, yaw=a))
    return tuple(out)


def _square_frame(
    half: float, bar: float, z0: float, z1: float, sides: str = "nesw"
) -> tuple[Box, ...]:
    """Bars along the edges of a square of half-size ``half``; ``sides`` picks which (n=+x)."""
    hb = bar / 2
    out = []
    if "n" in sides:
        out.append(Box(half - hb, 0.0, hb, half, z0, z1))
    if "s" in sides:
        out.append(Box(-half + hb, 0.0, hb, half, z0, z1))
    if "e" in sides:
        out.append(Box(0.0, -half + hb, half - bar, hb, z0, z1))
    if "w" in sides:
        out.append(Box(0.0, half - hb, half - bar, hb, z0, z1))
    return tuple(out)


def _star_parts(r_out: float, r_in: float, h: float) -> tuple[Prism, ...]:
    """A five-pointed star: a central pentagon plus five triangular tips (all convex)."""
    inner = _regular(5, r_in, phase=math.pi / 2 + math.pi / 5)
    parts = [Prism(inner, 0.0, h)]
    for k in range(5):
        a = math.pi / 2 + 2 * math.pi * k / 5
        tip = (r_out * math.cos(a), r_out * math.sin(a))
        left = inner[(k - 1) % 5]
        right = inner[k]
        parts.append(Prism((right, tip, left), 0.0, h))
    return tuple(parts)


def _heart_parts(h: float) -> tuple[Part, ...]:
    r = 0.015
    return (
        Cyl(-0.012, 0.008, r, 0.0, h),
        Cyl(0.012, 0.008, r, 0.0, h),
        Prism(((-0.0265, 0.002), (0.0, -0.028), (0.0265, 0.002)), 0.0, h),
    )


def _flower_parts(h: float) -> tuple[Part, ...]:
    petals = tuple(
        Cyl(
            0.017 * math.cos(2 * math.pi * k / 5),
            0.017 * math.sin(2 * math.pi * k / 5),
            0.011,
            0.0,
            h,
        )
        for k in range(5)
    )
    return (Cyl(0.0, 0.0, 0.014, 0.0, h), *petals)


def _bar(x0: float, y0: float, x1: float, y1: float, half_w: float, h: float) -> Box:
    """A straight bar of half width ``half_w`` from (x0, y0) to (x1, y1) (letters' strokes)."""
    return Box(
        0.5 * (x0 + x1),
        0.5 * (y0 + y1),
        0.5 * math.hypot(x1 - x0, y1 - y0),
        half_w,
        0.0,
        h,
        yaw=math.atan2(y1 - y0, x1 - x0),
    )


def _letter_parts(letter: str, h: float) -> tuple[Part, ...]:
    """Letters A, E, G, M, V as unions of bars; image up (+x) is the letter's top."""
    if letter == "A":
        return (
            _bar(-0.028, 0.022, 0.028, 0.0, 0.008, h),
            _bar(-0.028, -0.022, 0.028, 0.0, 0.008, h),
            Box(-0.008, 0.0, 0.005, 0.014, 0.0, h),
        )
    if letter == "E":
        return (
            Box(0.0, -0.019, 0.028, 0.008, 0.0, h),
            Box(0.021, 0.005, 0.007, 0.018, 0.0, h),
            Box(0.0, 0.003, 0.007, 0.016, 0.0, h),
            Box(-0.021, 0.005, 0.007, 0.018, 0.0, h),
        )
    if letter == "G":
        return (
            Box(0.0, -0.02, 0.028, 0.008, 0.0, h),
            Box(0.021, 0.004, 0.007, 0.018, 0.0, h),
            Box(-0.021, 0.004, 0.007, 0.018, 0.0, h),
            Box(-0.009, 0.016, 0.012, 0.006, 0.0, h),
            Box(0.0, 0.008, 0.006, 0.008, 0.0, h),
        )
    if letter == "M":
        return (
            Box(0.0, 0.022, 0.028, 0.008, 0.0, h),
            Box(0.0, -0.022, 0.028, 0.008, 0.0, h),
            _bar(0.028, 0.018, -0.004, 0.0, 0.006, h),
            _bar(0.028, -0.018, -0.004, 0.0, 0.006, h),
        )
    if letter == "V":
        return (
            _bar(-0.028, 0.0, 0.028, 0.022, 0.009, h),
            _bar(-0.028, 0.0, 0.028, -0.022, 0.009, h),
        )
    raise ValueError(f"no parts for letter {letter!r}")


def _three_sided(hx: float, hy: float, bar: float = 0.012) -> tuple[Box, ...]:
    """VIMA's sweeping zone mark: a rectangle of half sizes (hx, hy), closed on its -x side (towards
    the robot), open on +x; flat (2 mm), so blocks slide over it."""
    hb = bar / 2
    return (
        Box(-hx + hb, 0.0, hb, hy, 0.0, 0.002),
        Box(0.0, hy - hb, hx, hb, 0.0, 0.002),
        Box(0.0, -hy + hb, hx, hb, 0.0, 0.002),
    )


H = OBJ_H
_SHAPES: tuple[Shape, ...] = (
    # ---- dragged objects, training set -------------------------------------------------------
    Shape("block", "block", (Box(0, 0, 0.025, 0.025, 0, H),), "dragged", "square", math.pi / 2),
    Shape(
        "cross",
        "cross",
        (Box(0, 0, 0.028, 0.009, 0, H), Box(0, 0, 0.009, 0.028, 0, H)),
        "dragged",
        "square",
        math.pi / 2,
    ),
    Shape(
        "letter_T",
        "letter T",
        (Box(0.019, 0, 0.009, 0.028, 0, H), Box(-0.009, 0, 0.019, 0.008, 0, H)),
        "dragged",
        "square",
        2 * math.pi,
    ),
    Shape(
        "L_shaped_block",
        "L-shaped block",
        (Box(0, -0.02, 0.028, 0.008, 0, H), Box(-0.019, 0.008, 0.009, 0.02, 0, H)),
        "dragged",
        "square",
        2 * math.pi,
        grasp=(-0.015, -0.014),
    ),
    Shape(
        "triangle",
        "triangle",
        (Prism(_regular(3, 0.033, phase=math.pi / 2), 0, H),),
        "dragged",
        "square",
        2 * math.pi / 3,
    ),
    Shape(
        "ring",
        "ring",
        _ring(0.016, 0.029, 0, H, n=12),
        "dragged",
        "circle",
        0.0,
        grasp=(0.0225, 0.0),
        table_parts=(0, 4, 8),
    ),
    Shape("heart", "heart", _heart_parts(H), "dragged", "circle", 2 * math.pi),
    Shape(
        "pentagon",
        "pentagon",
        (Prism(_regular(5, 0.03, phase=math.pi / 2), 0, H),),
        "dragged",
        "circle",
        2 * math.pi / 5,
    ),
    Shape("flower", "flower", _flower_parts(H), "dragged", "circle", 2 * math.pi / 5),
    *(
        Shape(
            f"letter_{c}", f"letter {c}", _letter_parts(c, H), "dragged", None, 2 * math.pi, grasp=g
        )
        for c, g in (
            ("A", (0.0, 0.01)),
            ("E", (0.0, -0.019)),
            ("G", (0.0, -0.02)),
            ("M", (0.0, 0.022)),
            ("V", (0.0, 0.011)),
        )
    ),
    Shape(
        "shorter_block",
        "shorter block",
        (Box(0, 0, 0.025, 0.025, 0, 0.6 * H),),
        "dragged",
        "square",
        math.pi / 2,
    ),
    # ---- dragged objects, held out (L3) ------------------------------------------------------
    Shape(
        "letter_R",
        "letter R",
        (
            Box(-0.006, -0.016, 0.028, 0.007, 0, H),  # stem (along x)
            Box(0.014, 0.002, 0.008, 0.014, 0, H),  # bowl
            Prism(((0.004, 0.004), (-0.028, 0.012), (-0.028, 0.024), (0.008, 0.012)), 0, H),  # leg
        ),
        "dragged",
        "square",
        2 * math.pi,
        grasp=(0.012, -0.006),
    ),
    Shape(
        "diamond",
        "diamond",
        (Prism(((0.035, 0.0), (0.0, 0.022), (-0.035, 0.0), (0.0, -0.022)), 0, H),),
        "dragged",
        "square",
        math.pi,
    ),
    Shape(
        "hexagon", "hexagon", (Prism(_regular(6, 0.029), 0, H),), "dragged", "circle", math.pi / 3
    ),
    Shape("round", "round", (Cyl(0, 0, 0.028, 0, H),), "dragged", "circle", 0.0),
    Shape("star", "star", _star_parts(0.033, 0.015, H), "dragged", "circle", 2 * math.pi / 5),
    # ---- sweep objects and markers -----------------------------------------------------------
    Shape(
        "small_block",
        "small block",
        (Box(0, 0, 0.018, 0.018, 0, 0.022),),
        "dragged",
        "square",
        math.pi / 2,
    ),
    *(
        Shape(name, "three-sided rectangle", _three_sided(hx, hy), "marker", None, 2 * math.pi)
        for name, hx, hy in (
            ("three_sided_rectangle", 0.135, 0.135),  # sweep_without_exceeding: 0.27 x 0.27 m
            ("three_sided_rectangle_small", 0.086, 0.15),  # sweep_without_touching: 0.172 x 0.30
        )
    ),
    Shape("line", "line", (Box(0, 0, 0.02, 0.17, 0, 0.002),), "marker", None, math.pi),
    Shape("line_short", "line", (Box(0, 0, 0.02, 0.09375, 0, 0.002),), "marker", None, math.pi),
    # ---- bases (containers), training set ----------------------------------------------------
    Shape(
        "bowl",
        "bowl",
        (Cyl(0, 0, 0.08, 0, FLOOR_H), *_ring(0.074, 0.086, 0, 0.032)),
        "base",
        "circle",
        0.0,
        inner=Inner("circle", r=0.074),
        density=400.0,
        table_parts=(0,),
    ),
    Shape(
        "frame",
        "frame",
        _square_frame(0.085, 0.014, 0, 0.016),
        "base",
        "square",
        math.pi / 2,
        inner=Inner("rect", hx=0.071, hy=0.071),
        density=400.0,
    ),
    Shape(
        "container",
        "container",
        (Box(0, 0, 0.085, 0.085, 0, FLOOR_H), *_square_frame(0.085, 0.01, 0, 0.035)),
        "base",
        "square",
        math.pi / 2,
        inner=Inner("rect", hx=0.075, hy=0.075),
        density=400.0,
        table_parts=(0,),
    ),
    Shape(
        "square",
        "square",
        (Box(0, 0, 0.08, 0.08, 0, 0.008),),
        "base",
        "square",
        math.pi / 2,
        inner=Inner("rect", hx=0.08, hy=0.08),
        density=400.0,
    ),
    # ---- bases, held out (L3) ----------------------------------------------------------------
    Shape(
        "pallet",
        "pallet",
        (
            *(Box(0.062 * k, 0, 0.018, 0.082, 0.012, 0.02) for k in (-1, 0, 1)),
            Box(0, 0.056, 0.08, 0.012, 0, 0.012),
            Box(0, -0.056, 0.08, 0.012, 0, 0.012),
        ),
        "base",
        "square",
        math.pi,
        inner=Inner("rect", hx=0.08, hy=0.08),
        density=400.0,
        table_parts=(3, 4),
    ),
    Shape(
        "pan",
        "pan",
        (
            Cyl(0, 0, 0.078, 0, FLOOR_H),
            *_ring(0.074, 0.084, 0, 0.016),
            Box(0.114, 0, 0.032, 0.009, 0.006, 0.016),  # handle
        ),
        "base",
        "circle",
        2 * math.pi,
        inner=Inner("circle", r=0.074),
        density=400.0,
        table_parts=(0,),
    ),
)


def _scale_part(p: Part, k: float) -> Part:
    if isinstance(p, Box):
        return Box(p.cx * k, p.cy * k, p.hx * k, p.hy * k, p.z0, p.z1, p.yaw)
    if isinstance(p, Cyl):
        return Cyl(p.cx * k, p.cy * k, p.r * k, p.z0, p.z1)
    return Prism(tuple((x * k, y * k) for x, y in p.verts), p.z0, p.z1)


def _scaled(s: Shape, k: float) -> Shape:
    """``s`` scaled by ``k`` in the table plane (heights kept: objects stay flat, walls as tall)."""
    inner = s.inner
    if inner is not None:
        inner = Inner(inner.kind, inner.r * k, inner.hx * k, inner.hy * k)
    return replace(
        s,
        parts=tuple(_scale_part(p, k) for p in s.parts),
        grasp=(s.grasp[0] * k, s.grasp[1] * k),
        inner=inner,
    )


# The parts above are drawn at a reference size; objects are enlarged so each spans several pixels
# of a 64 px top view (dragged objects ~7 cm, containers ~20 cm; markers keep their size).
SIZE_SCALE = {"dragged": 1.3, "base": 1.2, "marker": 1.0}
# VIMA's sweeping cubes are 3 cm; ours 3.2 cm (a little larger so a 128 px view shows them).
SMALL_BLOCK_SCALE = 0.9
# VIMA's profiles (same_shape): every shape outside these two sets is "undetermined" (None).
PROFILES = {
    "square": ("block", "shorter_block", "frame", "container", "square", "pallet"),
    "circle": ("ring", "round", "bowl", "pan"),
}


def _profile(name: str) -> str | None:
    return next((k for k, names in PROFILES.items() if name in names), None)


_SHAPES = tuple(
    replace(
        _scaled(s, SMALL_BLOCK_SCALE if s.name == "small_block" else SIZE_SCALE[s.kind]),
        profile=_profile(s.name),
    )
    for s in _SHAPES
)

# The train / held-out split of shapes (VIMA-Bench's encyclopedia: 14 training dragged shapes,
# L3 holds out letter R, diamond, hexagon, round, star and the bases pallet and pan).
TRAIN_DRAGGED = (
    "letter_A",
    "letter_E",
    "letter_G",
    "letter_M",
    "letter_T",
    "letter_V",
    "block",
    "cross",
    "triangle",
    "flower",
    "heart",
    "ring",
    "pentagon",
    "L_shaped_block",
)
HELDOUT_DRAGGED = ("letter_R", "diamond", "hexagon", "round", "star")
TRAIN_BASES = ("bowl", "frame", "container", "square")
HELDOUT_BASES = ("pallet", "pan")
# Rotationally asymmetric shapes (rotate, twist): VIMA's list.
ASYMMETRIC_TRAIN = tuple(
    s.name for s in _SHAPES if s.name in TRAIN_DRAGGED and s.symmetry == 2 * math.pi
)
ASYMMETRIC_HELDOUT = ("letter_R",)

# novel_adj's height adjectives: every dragged shape but the block, squashed or stretched in z.
# VIMA draws "short" at 0.30-0.40 x and "tall" at short + 2.0; the pool is compiled once, so the
# ratios are discrete here.
HEIGHT_VARIANTS = {"short": 0.35, "tall": 2.35}


def height_variant(name: str, which: str) -> str:
    """The shape name of ``name``'s height variant ``which`` ("short" or "tall")."""
    if which not in HEIGHT_VARIANTS:
        raise ValueError(
            f"unknown height variant {which!r}; expected one of {list(HEIGHT_VARIANTS)}"
        )
    return f"{name}_{which}"


def _stretched(s: Shape, k: float, which: str) -> Shape:
    parts = tuple(replace(p, z0=p.z0 * k, z1=p.z1 * k) for p in s.parts)
    return replace(s, name=height_variant(s.name, which), parts=parts)


_VARIANTS = tuple(
    _stretched(s, k, which)
    for s in _SHAPES
    if s.name in TRAIN_DRAGGED + HELDOUT_DRAGGED and s.name != "block"
    for which, k in HEIGHT_VARIANTS.items()
)
SHAPES: dict[str, Shape] = {s.name: s for s in (*_SHAPES, *_VARIANTS)}


def shape(name: str) -> Shape:
    """Look up a shape by name, with a clear error for typos."""
    try:
        return SHAPES[name]
    except KeyError:
        raise ValueError(f"unknown shape {name!r}; expected one of {sorted(SHAPES)}") from None
