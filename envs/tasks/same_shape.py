"""same_shape: "Put all objects with the same profile as {base_obj} into it." (VIMA, L1-L3).

VIMA's profile rule: square-like = (shorter) block, frame, container, square, pallet;
circle-like = ring, round, bowl, pan; every other shape is undetermined and matches nothing. So
the two dragged objects are two shorter blocks (square bases) or two rings / rounds (bowl / pan),
and the distractor is any shape of another profile, in a texture no dragged object has.
Success: both within 12.5 cm of the base's centre (8.75 cm for a bowl), latched, any order.
"""

from __future__ import annotations

from uio2_robot.motion.primitive import Primitive

from ..levels import level_shape_pool
from ..shapes import shape
from ..sim import Sim
from .base import Episode, Goal, Segment, SetupContext, Task, goal_oracle

N_DRAGGED = 2


def fill_eps(base_shape: str) -> float:
    """VIMA's pos_eps of the same_* tasks: 12.5 cm, 8.75 cm for a bowl."""
    return 0.0875 if base_shape == "bowl" else 0.125


def task_shapes(level: str) -> tuple[str, ...]:
    """same_shape's dragged shapes: the level's, with the shorter block in place of the block."""
    return tuple(s for s in level_shape_pool(level, "dragged") if s != "block") + ("shorter_block",)


class SameShape(Task):
    name = "same_shape"
    template = "Put all objects with the same profile as {base_obj} into it."
    vima_max_steps = 4
    copies = 2

    def pool_copies(self, level: str) -> dict[str, int]:
        return {**super().pool_copies(level), "shorter_block": N_DRAGGED}

    def setup(self, ctx: SetupContext) -> None:
        base = ctx.add(*ctx.choose(ctx.pairs("base")), "base")
        profile = shape(base.shape).profile
        shapes = task_shapes(ctx.level)
        same = [s for s in shapes if shape(s).profile == profile]
        other = [s for s in shapes if shape(s).profile != profile]
        eps = fill_eps(base.shape)
        goals, used_tex = [], set()
        for _ in range(N_DRAGGED):
            pair = ctx.choose(ctx.pairs("dragged", shapes=same, level_shapes=False))
            used_tex.add(pair[1])
            goals.append(Goal(ctx.add(*pair, "dragged").pool_index, base.pool_index, eps=eps))
        pairs = ctx.pairs("dragged", shapes=other, level_shapes=False)
        ctx.add_distractor(*ctx.choose([p for p in pairs if p[1] not in used_tex]), eps)
        ctx.goals(goals)
        ctx.episode.params["profile"] = profile

    def prompt(self, ctx: SetupContext) -> list[Segment]:
        return [
            "Put all objects with the same profile as ",
            ctx.object_image(ctx.episode.one("base")),
            " into it.",
        ]

    def oracle(self, sim: Sim, ep: Episode) -> Primitive | None:
        return goal_oracle(sim, ep)
