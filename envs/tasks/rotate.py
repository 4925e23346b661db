"""rotate: "Rotate the {dragged_obj} {angle} degrees." (VIMA task, L1-L3).

Rotation is counter-clockwise seen from above (positive yaw). Success (VIMA's tolerances): the
object is back where it was to within ``POS_TOL`` and its yaw is within ``YAW_TOL`` of the
target, modulo the shape's own symmetry. Angles that the symmetry makes (nearly) a no-op are
never drawn, so doing nothing cannot succeed.
"""

from __future__ import annotations

import math

from uio2_robot.contracts import wrap_angle
from uio2_robot.motion.primitive import Primitive

from ..shapes import shape
from ..sim import Sim
from .base import Episode, Segment, SetupContext, Task, at_rest, moved, pick_place

ANGLES_DEG = (30, 60, 90, 120, 150)
POS_TOL = 0.01  # m
YAW_TOL = math.radians(15)
MIN_EFFECTIVE_DEG = 20  # drawn angles differ from a symmetry of the shape by at least this


def symmetric_error(delta: float, symmetry: float) -> float:
    """|delta| folded by the shape's symmetry (symmetry 0 = rotation-invariant shape)."""
    if symmetry <= 0:
        return 0.0
    r = delta % symmetry
    return min(r, symmetry - r)


def effective_angles(shape_name: str) -> list[int]:
    """Angles that visibly change this shape's orientation."""
    sym = shape(shape_name).symmetry
    if sym <= 0:
        return []
    return [
        a
        for a in ANGLES_DEG
        if math.degrees(symmetric_error(math.radians(a), sym)) >= MIN_EFFECTIVE_DEG
    ]


class Rotate(Task):
    name = "rotate"
    template = "Rotate the {dragged_obj} {angle} degrees."
    vima_max_steps = 3

    def setup(self, ctx: SetupContext) -> None:
        pair = ctx.choose([p for p in ctx.pairs("dragged") if effective_angles(p[0])])
        obj = ctx.add(*pair, "dragged")
        ctx.add(*ctx.choose(ctx.pairs("dragged", avoid=[pair])), "distractor")
        ctx.episode.params["angle_deg"] = int(ctx.choose(effective_angles(obj.shape)))

    def prompt(self, ctx: SetupContext) -> list[Segment]:
        ep = ctx.episode
        return [
            "Rotate the ",
            ctx.object_image(ep.one("dragged")),
            f" {ep.params['angle_deg']} degrees.",
        ]

    def _target_yaw(self, ep: Episode) -> float:
        obj = ep.one("dragged")
        return wrap_angle(float(ep.start[obj.pool_index][3]) + math.radians(ep.params["angle_deg"]))

    def success(self, sim: Sim, ep: Episode) -> bool:
        obj = ep.one("dragged")
        if not at_rest(sim, obj) or moved(sim, ep, obj) > POS_TOL:
            return False
        delta = wrap_angle(float(sim.pose(obj)[3]) - self._target_yaw(ep))
        return symmetric_error(delta, shape(obj.shape).symmetry) <= YAW_TOL

    def oracle(self, sim: Sim, ep: Episode) -> Primitive | None:
        if self.success(sim, ep):
            return None
        obj = ep.one("dragged")
        sx, sy, _, _ = ep.start[obj.pool_index]
        return pick_place(sim, obj, float(sx), float(sy), self._target_yaw(ep))
