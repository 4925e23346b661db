"""visual_manipulation: "Put the {dragged_obj} into the {base_obj}." (VIMA task 1, L1-L3).

One base, one dragged object and one distractor drawn from the union of the dragged and base
pools (any pair but the two goal objects' exact ones, so it may share either shape). Success:
the dragged object within 10 cm of the base's centre (latched) and VIMA's distractor rule.
"""

from __future__ import annotations

from uio2_robot.motion.primitive import Primitive

from ..sim import Sim
from .base import Episode, Goal, Segment, SetupContext, Task, goal_oracle


class VisualManipulation(Task):
    name = "visual_manipulation"
    template = "Put the {dragged_obj} into the {base_obj}."
    vima_max_steps = 3
    base_copies = 2

    def setup(self, ctx: SetupContext) -> None:
        base_pair = ctx.choose(ctx.pairs("base"))
        base = ctx.add(*base_pair, "base")
        dragged_pair = ctx.choose(ctx.pairs("dragged"))
        obj = ctx.add(*dragged_pair, "dragged")
        union = ctx.pairs("dragged") + ctx.pairs("base")
        ctx.add_distractor(*ctx.choose([p for p in union if p not in (base_pair, dragged_pair)]))
        ctx.goals([Goal(obj.pool_index, base.pool_index)])

    def prompt(self, ctx: SetupContext) -> list[Segment]:
        ep = ctx.episode
        return [
            "Put the ",
            ctx.object_image(ep.one("dragged")),
            " into the ",
            ctx.object_image(ep.one("base")),
            ".",
        ]

    def oracle(self, sim: Sim, ep: Episode) -> Primitive | None:
        return goal_oracle(sim, ep)
