"""Object textures: solid colours and procedurally generated patterns (nothing downloaded).

VIMA-Bench mixes plain colours with patterns (stripes, polka dots, granite, ...). Patterns are
drawn here with numpy into small RGB images that become MuJoCo 2D textures; solid colours are plain
materials. Colours are far apart in hue/brightness so objects stay distinguishable at 64 px.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TEX_PX = 32  # pattern image size; one image tile covers TEX_TILE_M on the object
TEX_TILE_M = 0.04

RGB = tuple[float, float, float]


@dataclass(frozen=True)
class Texture:
    """A named look: ``kind`` "solid" or a pattern of ``colors``."""

    name: str
    word: str  # how prompts say it ("red and yellow stripe")
    kind: str  # "solid" | "stripes" | "checker" | "dots" | "noise"
    colors: tuple[RGB, ...]


_RED = (0.85, 0.12, 0.12)
_GREEN = (0.15, 0.65, 0.2)
_BLUE = (0.12, 0.3, 0.9)
_YELLOW = (0.95, 0.85, 0.1)
_PURPLE = (0.5, 0.2, 0.75)
_ORANGE = (1.0, 0.5, 0.05)
_CYAN = (0.1, 0.8, 0.85)
_WHITE = (0.95, 0.95, 0.95)
_BLACK = (0.08, 0.08, 0.08)
_PINK = (1.0, 0.55, 0.75)
_OLIVE = (0.45, 0.45, 0.05)
_BROWN = (0.45, 0.25, 0.1)
_GRAY = (0.5, 0.5, 0.5)

_TEXTURES: tuple[Texture, ...] = (
    # training textures
    Texture("red", "red", "solid", (_RED,)),
    Texture("green", "green", "solid", (_GREEN,)),
    Texture("blue", "blue", "solid", (_BLUE,)),
    Texture("yellow", "yellow", "solid", (_YELLOW,)),
    Texture("purple", "purple", "solid", (_PURPLE,)),
    Texture("orange", "orange", "solid", (_ORANGE,)),
    Texture("cyan", "cyan", "solid", (_CYAN,)),
    Texture("red_yellow_stripe", "red and yellow stripe", "stripes", (_RED, _YELLOW)),
    Texture("blue_white_checker", "blue and white checkerboard", "checker", (_BLUE, _WHITE)),
    # held-out textures (L3)
    Texture("pink", "pink", "solid", (_PINK,)),
    Texture("olive", "olive", "solid", (_OLIVE,)),
    Texture("brown", "brown", "solid", (_BROWN,)),
    Texture("tiger", "tiger", "stripes", (_ORANGE, _BLACK)),
    Texture("granite", "granite", "noise", (_GRAY, _WHITE, _BLACK)),
    Texture("green_polka_dot", "green polka dot", "dots", (_WHITE, _GREEN)),
)

TEXTURES: dict[str, Texture] = {t.name: t for t in _TEXTURES}
TRAIN_TEXTURES = tuple(t.name for t in _TEXTURES[:9])
HELDOUT_TEXTURES = tuple(t.name for t in _TEXTURES[9:])


def texture(name: str) -> Texture:
    """Look up a texture by name, with a clear error for typos."""
    try:
        return TEXTURES[name]
    except KeyError:
        raise ValueError(f"unknown texture {name!r}; expected one of {sorted(TEXTURES)}") from None


def pattern_image(tex: Texture, size: int = TEX_PX) -> np.ndarray:
    """The RGB image (size, size, 3) uint8 of a patterned texture; deterministic per name."""
    if tex.kind == "solid":
        raise ValueError(f"texture {tex.name!r} is a solid colour; it has no pattern image")
    cols = (np.asarray(tex.colors) * 255).astype(np.uint8)  # (K, 3)
    yy, xx = np.mgrid[0:size, 0:size]
    if tex.kind == "stripes":
        idx = ((xx + yy) // (size // 4)) % 2  # diagonal stripes, 4 per tile
    elif tex.kind == "checker":
        idx = ((xx // (size // 4)) + (yy // (size // 4))) % 2
    elif tex.kind == "dots":
        cell = size // 4
        cx, cy = xx % cell - cell / 2 + 0.5, yy % cell - cell / 2 + 0.5
        idx = (cx * cx + cy * cy < (cell * 0.3) ** 2).astype(np.int64)
    elif tex.kind == "noise":
        # A fixed seed derived from the name: the same texture looks the same on every machine.
        rng = np.random.default_rng(sum(map(ord, tex.name)))
        idx = rng.choice(len(cols), size=(size, size), p=[0.6, 0.25, 0.15][: len(cols)])
    else:
        raise ValueError(f"unknown texture kind {tex.kind!r} for {tex.name!r}")
    return cols[idx]
