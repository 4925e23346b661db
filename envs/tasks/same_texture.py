"""same_texture: "Put all objects with the same texture as {base_obj} into it." (VIMA, L4 only).

As VIMA: any of the 6 bases with a base-pool texture, two dragged objects of any shape (held-out
ones included) in the base's texture, one distractor with a dragged-pool texture of another
kind. Success: both within 12.5 cm of the base (8.75 cm for a bowl), latched, any order.
"""

from __future__ import annotations

from uio2_robot.motion.primitive import Primitive

from ..levels import level_shape_pool
from ..sim import Sim
from .base import Episode, Goal, Segment, SetupContext, Task, goal_oracle
from .same_shape import fill_eps

N_DRAGGED = 2


class SameTexture(Task):
    name = "same_texture"
    template = "Put all objects with the same texture as {base_obj} into it."
    vima_max_steps = N_DRAGGED + 2  # VIMA: n + 2
    copies = 3

    def setup(self, ctx: SetupContext) -> None:
        base_s, tex = ctx.choose(ctx.pairs("base"))
        base = ctx.add(base_s, tex, "base")
        eps = fill_eps(base_s)
        shapes = level_shape_pool(ctx.level, "dragged")
        goals = [
            Goal(ctx.add(ctx.choose(shapes), tex, "dragged").pool_index, base.pool_index, eps=eps)
            for _ in range(N_DRAGGED)
        ]
        ctx.add_distractor(*ctx.choose([p for p in ctx.pairs("dragged") if p[1] != tex]), eps)
        ctx.goals(goals)
        ctx.episode.params["texture"] = tex

    def prompt(self, ctx: SetupContext) -> list[Segment]:
        return [
            "Put all objects with the same texture as ",
            ctx.object_image(ctx.episode.one("base")),
            " into it.",
        ]

    def oracle(self, sim: Sim, ep: Episode) -> Primitive | None:
        return goal_oracle(sim, ep)
