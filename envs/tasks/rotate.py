"""rotate: "Rotate the {dragged_obj} {angle} degrees." (VIMA task, L1-L3).

As VIMA: only rotationally asymmetric shapes, the rotation is **clockwise** seen from above
(target yaw = start yaw - angle), one distractor whose texture differs from the dragged one.
Success: within 10 cm of the start position and 15 degrees of the target yaw (latched).
"""

from __future__ import annotations

import math

from uio2_robot.contracts import wrap_angle
from uio2_robot.motion.primitive import Primitive

from ..levels import asymmetric_shapes
from ..sim import Sim
from .base import Episode, Goal, Segment, SetupContext, Task, goal_oracle

ANGLES_DEG = (30, 60, 90, 120, 150)


class Rotate(Task):
    name = "rotate"
    template = "Rotate the {dragged_obj} {angle} degrees."
    vima_max_steps = 3

    def setup(self, ctx: SetupContext) -> None:
        shp, tex = ctx.choose(ctx.pairs("dragged", shapes=asymmetric_shapes(ctx.level)))
        yaw = float(ctx.rng.uniform(-math.pi, math.pi))
        obj = ctx.add(shp, tex, "dragged", yaw=yaw)
        ctx.add_distractor(*ctx.choose([p for p in ctx.pairs("dragged") if p[1] != tex]))
        angle = int(ctx.choose(ANGLES_DEG))
        ctx.episode.params["angle_deg"] = angle
        x, y, _, _ = ctx.sim.pose(obj)
        target = wrap_angle(yaw - math.radians(angle))
        ctx.goals([Goal(obj.pool_index, (float(x), float(y)), yaw=target)])

    def prompt(self, ctx: SetupContext) -> list[Segment]:
        ep = ctx.episode
        return [
            "Rotate the ",
            ctx.object_image(ep.one("dragged")),
            f" {ep.params['angle_deg']} degrees.",
        ]

    def oracle(self, sim: Sim, ep: Episode) -> Primitive | None:
        return goal_oracle(sim, ep)
