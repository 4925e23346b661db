"""visual_manipulation: "Put the {dragged_obj} into the {base_obj}." (VIMA task 1, L1-L3).

One dragged object, one container and one distractor; both named objects are shown as images.
Success: the dragged object rests inside the container. The distractor must stay put.
"""

from __future__ import annotations

from uio2_robot.motion.primitive import Primitive

from ..sim import Sim
from .base import Episode, Segment, SetupContext, Task, at_rest, in_container, place_into


class VisualManipulation(Task):
    name = "visual_manipulation"
    template = "Put the {dragged_obj} into the {base_obj}."
    vima_max_steps = 3

    def setup(self, ctx: SetupContext) -> None:
        base = ctx.add(*ctx.choose(ctx.pairs("base")), "base")
        dragged_pair = ctx.choose(ctx.pairs("dragged"))
        ctx.add(*dragged_pair, "dragged")
        ctx.add(*ctx.choose(ctx.pairs("dragged", avoid=[dragged_pair])), "distractor")
        ctx.episode.params["base"] = base.shape

    def prompt(self, ctx: SetupContext) -> list[Segment]:
        ep = ctx.episode
        return [
            "Put the ",
            ctx.object_image(ep.one("dragged")),
            " into the ",
            ctx.object_image(ep.one("base")),
            ".",
        ]

    def success(self, sim: Sim, ep: Episode) -> bool:
        obj, base = ep.one("dragged"), ep.one("base")
        return at_rest(sim, obj) and in_container(sim, obj, base)

    def oracle(self, sim: Sim, ep: Episode) -> Primitive | None:
        obj, base = ep.one("dragged"), ep.one("base")
        if in_container(sim, obj, base):
            return None
        return place_into(sim, obj, base, 0)
