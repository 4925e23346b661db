"""rearrange: "Rearrange to this {scene}." (VIMA task, L1-L3).

The prompt image is the goal scene from the top camera: the dragged objects at new poses and
the distractor where it is. Success: every dragged object rests within ``POS_TOL`` of its goal
position (the goal is only given as an image; 2 cm is well under an object's half-width).
Goals never overlap the start layout, so the objects can be moved in any order.
"""

from __future__ import annotations

import math

from uio2_robot.motion.primitive import Primitive

from ..shapes import shape
from ..sim import Sim
from .base import Episode, Segment, SetupContext, Task, at_rest, left_to_right, pick_place

POS_TOL = 0.02  # m
N_DRAGGED = 2


class Rearrange(Task):
    name = "rearrange"
    template = "Rearrange to this {scene}."
    vima_max_steps = 5
    copies = 3

    def setup(self, ctx: SetupContext) -> None:
        used: list[tuple[str, str]] = []
        for role in ["dragged"] * N_DRAGGED + ["distractor"]:
            pair = ctx.choose(ctx.pairs("dragged", avoid=used))
            used.append(pair)
            ctx.add(*pair, role)
        goals: dict[int, tuple[float, float, float]] = {}
        extra: list[tuple[float, float, float]] = []
        for p in ctx.episode.with_role("dragged"):
            r = shape(p.shape).radius
            x, y = ctx.spot(r, others=extra)
            yaw = float(ctx.rng.uniform(-math.pi, math.pi))
            goals[p.pool_index] = (x, y, yaw)
            extra.append((x, y, r))
        ctx.episode.params["goals"] = goals

    def prompt(self, ctx: SetupContext) -> list[Segment]:
        goals = ctx.episode.params["goals"]
        return ["Rearrange to this ", ctx.scene_image("goal scene", poses=goals), "."]

    def _at_goal(self, sim: Sim, ep: Episode, p) -> bool:
        gx, gy, _ = ep.params["goals"][p.pool_index]
        x, y, _, _ = sim.pose(p)
        return math.hypot(x - gx, y - gy) <= POS_TOL

    def success(self, sim: Sim, ep: Episode) -> bool:
        return all(at_rest(sim, p) and self._at_goal(sim, ep, p) for p in ep.with_role("dragged"))

    def oracle(self, sim: Sim, ep: Episode) -> Primitive | None:
        for p in left_to_right(sim, ep.with_role("dragged")):
            if not self._at_goal(sim, ep, p):
                gx, gy, gyaw = ep.params["goals"][p.pool_index]
                return pick_place(sim, p, gx, gy, gyaw)
        return None
