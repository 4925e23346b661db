"""scene_understanding: "Put the {texture} object in {scene} into the {texture} object." (L1-L3).

As VIMA: the workspace holds the base, the dragged object and one distractor that makes the
texture word ambiguous (half the time another dragged shape in the dragged object's texture,
otherwise the base's shape in another texture). The {scene} image is a *separate* scene: the
dragged object at another random pose beside a scene distractor of another texture, so the
image says which shape the texture word means. Success: within 10 cm of the base (latched).
"""

from __future__ import annotations

import math

from uio2_robot.motion.primitive import Primitive

from ..render import Staged
from ..shapes import shape
from ..sim import Sim
from ..spaces import WORKSPACE_X, WORKSPACE_Y
from ..textures import texture
from .base import Episode, Goal, LayoutError, Segment, SetupContext, Task, goal_oracle


class SceneUnderstanding(Task):
    name = "scene_understanding"
    template = "Put the {dragged_texture} object in {scene} into the {base_texture} object."
    vima_max_steps = 3
    base_copies = 2

    def setup(self, ctx: SetupContext) -> None:
        base_s, base_t = ctx.choose(ctx.pairs("base"))
        base = ctx.add(base_s, base_t, "base")
        drag_s, drag_t = ctx.choose([p for p in ctx.pairs("dragged") if p[1] != base_t])
        obj = ctx.add(drag_s, drag_t, "dragged")
        if ctx.rng.random() < 0.5:
            pair = ctx.choose(ctx.pairs("dragged", textures=[drag_t], avoid=[(drag_s, drag_t)]))
            pair = (
                pair
                if pair[0] != drag_s
                else ctx.choose(
                    [p for p in ctx.pairs("dragged", textures=[drag_t]) if p[0] != drag_s]
                )
            )
        else:
            pair = ctx.choose([p for p in ctx.pairs("base", shapes=[base_s]) if p[1] != base_t])
        ctx.add_distractor(*pair)
        ctx.goals([Goal(obj.pool_index, base.pool_index)])
        # the prompt's scene: the dragged object elsewhere, beside a distractor of another texture
        union = ctx.pairs("dragged") + ctx.pairs("base")
        other = ctx.choose([p for p in union if p[1] != drag_t and p[0] != drag_s])
        ctx.episode.params["scene"] = [
            Staged(
                drag_s,
                drag_t,
                *self._free(ctx, [], drag_s),
                float(ctx.rng.uniform(-math.pi, math.pi)),
            ),
        ]
        placed = [(s.x, s.y, shape(s.shape).radius) for s in ctx.episode.params["scene"]]
        ctx.episode.params["scene"].append(
            Staged(
                other[0],
                other[1],
                *self._free(ctx, placed, other[0]),
                float(ctx.rng.uniform(-math.pi, math.pi)),
            )
        )

    @staticmethod
    def _free(ctx: SetupContext, taken: list, shape_name: str) -> tuple[float, float]:
        r = shape(shape_name).radius
        for _ in range(200):
            x = float(ctx.rng.uniform(WORKSPACE_X[0] + r, WORKSPACE_X[1] - r))
            y = float(ctx.rng.uniform(WORKSPACE_Y[0] + r, WORKSPACE_Y[1] - r))
            if all(math.hypot(x - ox, y - oy) > r + orr + 0.02 for ox, oy, orr in taken):
                return x, y
        raise LayoutError("no room in the prompt scene")

    def prompt(self, ctx: SetupContext) -> list[Segment]:
        ep = ctx.episode
        dragged_word = texture(ep.one("dragged").texture).word
        base_word = texture(ep.one("base").texture).word
        return [
            f"Put the {dragged_word} object in ",
            ctx.scene_image(ep.params["scene"], "scene"),
            f" into the {base_word} object.",
        ]

    def oracle(self, sim: Sim, ep: Episode) -> Primitive | None:
        return goal_oracle(sim, ep)
