"""Object textures: VIMA-Bench's 49 base textures and 33 dark variants, drawn with numpy.

VIMA-Bench (``encyclopedia/textures.py``) has 10 image textures (brick, tiles, wooden, granite,
plastic, polka dot, checkerboard, tiger, magma, rainbow), 10 two-colour stripes and 10 two-colour
polka dots over the pairs of {red, yellow, green, blue, purple}, 5 swirls, 5 paisleys and 9 solid
colours. Its images are photographs; here every pattern is generated procedurally (nothing is
downloaded) so the same names look alike, not identical. Solids get a "dark" variant (HSV value
-0.3) and so do stripes, polka dots and swirls (their colours darkened the same way); olive,
paisleys and image textures have none, as in VIMA. ``gray`` is the neutral material of
novel-concept prompt images and never appears on the table.

The role pools of the levels (``levels.py``) are built from ``SET_A`` (VIMA's 19 L1 dragged
textures), ``SET_B`` (its 20 L1 base textures) and ``UNSEEN`` (the 10 never trained on).
"""

from __future__ import annotations

import colorsys
import itertools
from dataclasses import dataclass

import numpy as np

TEX_PX = 32  # pattern image size; one image tile covers TEX_TILE_M on the object
TEX_TILE_M = 0.08  # coarse enough that a 20 cm base shows its pattern in a 64 px view
DARKEN = 0.3  # HSV value drop of a dark variant (VIMA)

RGB = tuple[float, float, float]


@dataclass(frozen=True)
class Texture:
    """A named look: ``kind`` "solid" or a pattern of ``colors``."""

    name: str
    word: str  # how prompts say it ("red and yellow stripe")
    kind: str  # "solid" | "stripes" | "checker" | "dots" | "noise" | "swirl" | "paisley" | ...
    colors: tuple[RGB, ...]


COLOURS: dict[str, RGB] = {
    "red": (0.85, 0.12, 0.12),
    "yellow": (0.95, 0.85, 0.1),
    "green": (0.15, 0.65, 0.2),
    "blue": (0.12, 0.3, 0.9),
    "purple": (0.5, 0.2, 0.75),
    "orange": (1.0, 0.5, 0.05),
    "pink": (1.0, 0.55, 0.75),
    "cyan": (0.1, 0.8, 0.85),
    "olive": (0.45, 0.45, 0.05),
}
_WHITE = (0.95, 0.95, 0.95)
_BLACK = (0.08, 0.08, 0.08)
_GRAY = (0.5, 0.5, 0.5)
PAIR_COLOURS = ("red", "yellow", "green", "blue", "purple")


def darker(rgb: RGB) -> RGB:
    """``rgb`` with its HSV value lowered by ``DARKEN`` (VIMA's dark variant)."""
    h, s, v = colorsys.rgb_to_hsv(*rgb)
    return colorsys.hsv_to_rgb(h, s, max(0.0, v - DARKEN))


def _base_textures() -> list[Texture]:
    c = COLOURS
    out = [
        Texture("brick", "brick", "brick", ((0.62, 0.22, 0.14), (0.85, 0.8, 0.72))),
        Texture("tiles", "tiles", "checker", ((0.85, 0.85, 0.8), (0.55, 0.6, 0.65))),
        Texture("wooden", "wooden", "wood", ((0.6, 0.4, 0.2), (0.42, 0.26, 0.12))),
        Texture("granite", "granite", "noise", (_GRAY, _WHITE, _BLACK)),
        Texture("plastic", "plastic", "noise", ((0.3, 0.55, 0.75), (0.4, 0.65, 0.85))),
        Texture("polka_dot", "polka dot", "dots", (_WHITE, _BLACK)),
        Texture("checkerboard", "checkerboard", "checker", (_BLACK, _WHITE)),
        Texture("tiger", "tiger", "stripes", (c["orange"], _BLACK)),
        Texture("magma", "magma", "noise", ((0.9, 0.3, 0.05), (0.3, 0.05, 0.02), (1.0, 0.8, 0.1))),
        Texture("rainbow", "rainbow", "rainbow", tuple(c[k] for k in PAIR_COLOURS)),
    ]
    for a, b in itertools.combinations(PAIR_COLOURS, 2):
        out.append(Texture(f"{a}_{b}_stripe", f"{a} and {b} stripe", "stripes", (c[a], c[b])))
    for a, b in itertools.combinations(PAIR_COLOURS, 2):
        out.append(Texture(f"{a}_{b}_polka_dot", f"{a} and {b} polka dot", "dots", (c[a], c[b])))
    for a in PAIR_COLOURS:
        out.append(Texture(f"{a}_swirl", f"{a} swirl", "swirl", (_WHITE, c[a])))
    for a in PAIR_COLOURS:
        out.append(Texture(f"{a}_paisley", f"{a} paisley", "paisley", (_WHITE, c[a])))
    for name in ("blue", "red", "green", "orange", "yellow", "purple", "pink", "cyan", "olive"):
        out.append(Texture(name, name, "solid", (c[name],)))
    return out


BASE_TEXTURES: tuple[Texture, ...] = tuple(_base_textures())
# Textures with a dark variant (33): solids but olive, stripes, polka dots and swirls.
HAS_DARK = tuple(
    t.name
    for t in BASE_TEXTURES
    if (t.kind == "solid" and t.name != "olive")
    or t.name.endswith(("_stripe", "_polka_dot", "_swirl"))
)


def dark_name(name: str) -> str:
    """The name of ``name``'s dark variant (``dark_red``)."""
    return f"dark_{name}"


_by_name = {t.name: t for t in BASE_TEXTURES}
DARK_TEXTURES: tuple[Texture, ...] = tuple(
    Texture(
        dark_name(n),
        f"dark {_by_name[n].word}",
        _by_name[n].kind,
        tuple(darker(col) if col != _WHITE else col for col in _by_name[n].colors),
    )
    for n in HAS_DARK
)
GRAY = Texture("gray", "gray", "solid", (_GRAY,))

TEXTURES: dict[str, Texture] = {t.name: t for t in (*BASE_TEXTURES, *DARK_TEXTURES, GRAY)}

# VIMA's level pools (VIMA-SUITE.md §3.2).
SET_A: tuple[str, ...] = (
    "red", "green", "yellow", "granite", "polka_dot", "tiger", "rainbow",
    "red_yellow_stripe", "yellow_green_stripe",
    "red_yellow_polka_dot", "red_green_polka_dot", "red_blue_polka_dot",
    "yellow_blue_polka_dot", "green_blue_polka_dot",
    "red_swirl", "green_swirl", "red_paisley", "yellow_paisley", "green_paisley",
)  # fmt: skip
SET_B: tuple[str, ...] = (
    "blue", "purple", "cyan", "olive", "tiles", "wooden", "plastic", "checkerboard",
    "red_blue_stripe", "yellow_blue_stripe", "red_purple_stripe", "yellow_purple_stripe",
    "green_purple_stripe", "blue_purple_stripe",
    "yellow_purple_polka_dot", "green_purple_polka_dot", "blue_purple_polka_dot",
    "purple_swirl", "blue_swirl", "blue_paisley",
)  # fmt: skip
UNSEEN: tuple[str, ...] = (
    "brick", "magma", "red_green_stripe", "green_blue_stripe", "red_purple_polka_dot",
    "yellow_green_polka_dot", "yellow_swirl", "purple_paisley", "orange", "pink",
)  # fmt: skip
ALL_TEXTURES: tuple[str, ...] = tuple(t.name for t in BASE_TEXTURES)  # the 49
# VIMA's "first half" (24, dragged default) and "second half" (25, base default) of its 49. Its
# enum order could not be read here: the halves are taken as Set A / Set B plus half of the
# never-trained textures each (inferred; same sizes and the same seen/unseen mix).
FIRST_HALF: tuple[str, ...] = SET_A + UNSEEN[:5]
SECOND_HALF: tuple[str, ...] = SET_B + UNSEEN[5:]


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
    q = size // 4
    if tex.kind == "stripes":
        idx = ((xx + yy) // q) % 2  # diagonal stripes, 4 per tile
    elif tex.kind == "checker":
        idx = ((xx // q) + (yy // q)) % 2
    elif tex.kind == "dots":
        cx, cy = xx % q - q / 2 + 0.5, yy % q - q / 2 + 0.5
        idx = (cx * cx + cy * cy < (q * 0.3) ** 2).astype(np.int64)
    elif tex.kind == "noise":
        # A fixed seed derived from the name: the same texture looks the same on every machine.
        rng = np.random.default_rng(sum(map(ord, tex.name)))
        p = [0.6, 0.25, 0.15][: len(cols)]
        idx = rng.choice(len(cols), size=(size, size), p=np.asarray(p) / sum(p))
    elif tex.kind == "swirl":
        cx, cy = xx - size / 2 + 0.5, yy - size / 2 + 0.5
        ang = np.arctan2(cy, cx) + np.hypot(cx, cy) / (size / 10)
        idx = (np.sin(3 * ang) > 0).astype(np.int64)
    elif tex.kind == "paisley":
        cx, cy = (xx % (size // 2)) - size / 4, (yy % (size // 2)) - size / 4
        r = np.hypot(cx, cy * 1.6 + 0.4 * cx)
        idx = ((r < size / 7) | ((r > size / 5.5) & (r < size / 4.6))).astype(np.int64)
    elif tex.kind == "brick":
        row = yy // q
        shift = (row % 2) * (q // 1)
        mortar = (yy % q == 0) | (((xx + shift) % (2 * q)) == 0)
        idx = mortar.astype(np.int64)
    elif tex.kind == "wood":
        idx = (np.sin(xx / 2.0 + 2 * np.sin(yy / 5.0)) > 0.3).astype(np.int64)
    elif tex.kind == "rainbow":
        idx = ((xx + yy) * len(cols) // (2 * size)) % len(cols)
    else:
        raise ValueError(f"unknown texture kind {tex.kind!r} for {tex.name!r}")
    return cols[idx]
