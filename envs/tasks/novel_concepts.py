"""VIMA's novel concept grounding tasks: made-up nouns and adjectives defined in the prompt.

- novel_noun (L1-L3): "This is a {w1} {dragged_obj}. This is a {w2} {base_obj}. Put a {w1} into
  a {w2}." (definitions in random order, images in neutral gray so they show shape only); the
  scene is visual_manipulation's with a distractor whose shape is neither named shape.
- novel_adj (L1-L3): three comparisons "{A_i} is {adj} than {B_i}." define a made-up adjective
  meaning shorter, taller, lighter (colour) or darker; then "Put the {adv}{adj} {dragged_obj}
  into the {base_obj}." with gray images. The scene holds the base, the dragged object and a
  confusion object of the same shape with the opposite property. Height demos are photographed
  from 45 degrees (VIMA shows front and top views; a top view alone cannot show a height).
- novel_adj_and_noun (L4): both, the objects named only by their made-up nouns, plus two extra
  distractors whose shapes are neither named shape.

Success (all three): the dragged object within 10 cm of the base (latched) and VIMA's distractor
rule over every distractor, the confusion object included.
"""

from __future__ import annotations

from uio2_robot.motion.primitive import Primitive

from ..levels import dark_capable_pool, level_shape_pool
from ..shapes import height_variant
from ..sim import Sim
from ..textures import dark_name
from .base import Episode, Goal, Segment, SetupContext, Task, goal_oracle

NOUNS = ("dax", "blicket", "wug", "zup")
ADJECTIVES = ("daxer", "blicker", "modier", "kobar")
MEANINGS = ("shorter", "taller", "lighter", "darker")
GRAY = "gray"


def _nouns(ctx: SetupContext) -> None:
    w1, w2 = (str(w) for w in ctx.rng.choice(NOUNS, size=2, replace=False))
    ctx.episode.params.update(w1=w1, w2=w2, nouns_first=bool(ctx.rng.random() < 0.5))


def _noun_defs(ctx: SetupContext) -> list[Segment]:
    ep = ctx.episode
    w1, w2 = ep.params["w1"], ep.params["w2"]
    d = ep.one("dragged")
    b = ep.one("base")
    defs = [
        [f"This is a {w1} ", ctx.shot(_nominal(d.shape), GRAY), ". "],
        [f"This is a {w2} ", ctx.shot(b.shape, GRAY), ". "],
    ]
    if not ep.params["nouns_first"]:
        defs.reverse()
    return defs[0] + defs[1]


def _nominal(shape_name: str) -> str:
    """The nominal shape of a height variant."""
    for suffix in ("_short", "_tall"):
        if shape_name.endswith(suffix):
            return shape_name[: -len(suffix)]
    return shape_name


def _adjective(ctx: SetupContext, base_pairs: list, union_distractors: int) -> None:
    """Sample novel_adj's scene: base, dragged and confusion objects, demos and words."""
    rng, level = ctx.rng, ctx.level
    meaning = str(ctx.choose(MEANINGS))
    less = bool(rng.random() < 0.5)
    adj = str(ctx.choose(ADJECTIVES))
    shapes = [s for s in level_shape_pool(level, "dragged") if s != "block"]
    colours = dark_capable_pool(level)
    light = [t for t in colours if not t.startswith("dark_")]

    def pair_for(prop: bool, shp: str, tex: str) -> tuple[str, str]:
        """The (shape, texture) with (prop=True) or without the adjective's property."""
        if meaning in ("shorter", "taller"):
            short = (meaning == "shorter") == prop
            return height_variant(shp, "short" if short else "tall"), tex
        dark = (meaning == "darker") == prop
        return shp, dark_name(tex) if dark else tex

    demos = [
        (pair_for(True, s, t), pair_for(False, s, t))
        for s, t in ((ctx.choose(shapes), ctx.choose(light)) for _ in range(3))
    ]
    base = ctx.add(*ctx.choose(base_pairs), "base")
    shp, tex = ctx.choose(shapes), ctx.choose(light)
    target_has_prop = not less
    obj = ctx.add(*pair_for(target_has_prop, shp, tex), "dragged")
    ctx.add_distractor(*pair_for(not target_has_prop, shp, tex))
    ctx.goals([Goal(obj.pool_index, base.pool_index)])
    ctx.episode.params.update(
        meaning=meaning, adj=adj, adv="less " if less else "", demos=demos, nominal=shp
    )
    for _ in range(union_distractors):
        union = ctx.pairs("dragged") + ctx.pairs("base")
        ctx.add_distractor(*ctx.choose([p for p in union if p[0] not in (shp, base.shape)]))


def _adjective_demos(ctx: SetupContext) -> list[Segment]:
    ep = ctx.episode
    side = ep.params["meaning"] in ("shorter", "taller")
    out: list[Segment] = []
    for a, b in ep.params["demos"]:
        out += [
            ctx.shot(*a, side=side),
            f" is {ep.params['adj']} than ",
            ctx.shot(*b, side=side),
            ". ",
        ]
    return out


class _NovelTask(Task):
    """The pool of the novel-concept tasks: every dragged shape also in its short and tall
    variants (height adjectives), bases twice (a base-shaped distractor)."""

    base_copies = 2

    def pool_copies(self, level: str) -> dict[str, int]:
        out = super().pool_copies(level)
        for s in level_shape_pool(level, "dragged"):
            if s != "block":
                out[height_variant(s, "short")] = 1
                out[height_variant(s, "tall")] = 1
        return out

    def oracle(self, sim: Sim, ep: Episode) -> Primitive | None:
        return goal_oracle(sim, ep)


class NovelNoun(_NovelTask):
    name = "novel_noun"
    template = "This is a {word} {obj}. This is a {word} {obj}. Put a {word} into a {word}."
    vima_max_steps = 3

    def pool_copies(self, level: str) -> dict[str, int]:
        return Task.pool_copies(self, level)  # no height variants

    def setup(self, ctx: SetupContext) -> None:
        _nouns(ctx)
        base_pair = ctx.choose(ctx.pairs("base"))
        base = ctx.add(*base_pair, "base")
        drag_pair = ctx.choose(ctx.pairs("dragged"))
        obj = ctx.add(*drag_pair, "dragged")
        union = ctx.pairs("dragged") + ctx.pairs("base")
        ctx.add_distractor(
            *ctx.choose([p for p in union if p[0] not in (base_pair[0], drag_pair[0])])
        )
        ctx.goals([Goal(obj.pool_index, base.pool_index)])

    def prompt(self, ctx: SetupContext) -> list[Segment]:
        p = ctx.episode.params
        return [*_noun_defs(ctx), f"Put a {p['w1']} into a {p['w2']}."]


class NovelAdj(_NovelTask):
    name = "novel_adj"
    template = (
        "{a} is {adj} than {b}. {a} is {adj} than {b}. {a} is {adj} than {b}. "
        "Put the {adj} {dragged_obj} into the {base_obj}."
    )
    vima_max_steps = 3

    def setup(self, ctx: SetupContext) -> None:
        _adjective(ctx, ctx.pairs("base"), 0)

    def prompt(self, ctx: SetupContext) -> list[Segment]:
        ep = ctx.episode
        p = ep.params
        return [
            *_adjective_demos(ctx),
            f"Put the {p['adv']}{p['adj']} ",
            ctx.shot(p["nominal"], GRAY),
            " into the ",
            ctx.shot(ep.one("base").shape, GRAY),
            ".",
        ]


class NovelAdjAndNoun(_NovelTask):
    name = "novel_adj_and_noun"
    template = (
        "This is a {word} {obj}. This is a {word} {obj}. "
        "{a} is {adj} than {b}. {a} is {adj} than {b}. {a} is {adj} than {b}. "
        "Put the {adj} {word} into the {word}."
    )
    vima_max_steps = 3

    def setup(self, ctx: SetupContext) -> None:
        _nouns(ctx)
        _adjective(ctx, ctx.pairs("base"), 2)

    def prompt(self, ctx: SetupContext) -> list[Segment]:
        p = ctx.episode.params
        return [
            *_noun_defs(ctx),
            *_adjective_demos(ctx),
            f"Put the {p['adv']}{p['adj']} {p['w1']} into the {p['w2']}.",
        ]
