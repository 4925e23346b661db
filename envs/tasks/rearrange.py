"""rearrange: "Rearrange to this {scene}." (VIMA task, L1-L3), and the sampling it shares with
rearrange_then_restore.

As VIMA: 1-3 dragged objects (probabilities 0.4 / 0.4 / 0.2), shape and texture drawn
independently; goal poses are sampled first and start poses kept off them. A distractor only
when there is one dragged object: a different shape, any of the 49 textures, and half the time
sitting exactly on the goal (an oracle-only goal moves it off first). The {scene} image shows
only the dragged objects at their goals. Success: every dragged object has been within 10 cm of
its goal (latched, any order); the distractor rule is checked once the goals are done.
"""

from __future__ import annotations

import math

from uio2_robot.motion.primitive import Primitive

from ..shapes import shape
from ..sim import Sim
from ..textures import ALL_TEXTURES
from .base import (
    CLEAR_SLACK,
    POS_EPS,
    Episode,
    Goal,
    Segment,
    SetupContext,
    Task,
    goal_oracle,
)

N_DRAGGED_P = (0.4, 0.4, 0.2)


def sample_rearrangement(ctx: SetupContext) -> tuple[list[Goal], Goal | None]:
    """Dragged objects, their goals and (with one object) the distractor: VIMA's rearrange
    sampling. Returns the agent's goals and the oracle-only "clear the goal" goal (or None)."""
    n = int(ctx.rng.choice(3, p=N_DRAGGED_P)) + 1
    pairs = [ctx.choose(ctx.pairs("dragged")) for _ in range(n)]
    goal_xy: list[tuple[float, float, float]] = []
    for s, _ in pairs:
        r = shape(s).radius
        x, y = ctx.spot(r, others=goal_xy)
        goal_xy.append((x, y, r))
    goals = []
    # starts stay more than the tolerance off every goal, so no goal is met at the start
    keep = [(x, y, POS_EPS + 0.01 - r) for x, y, r in goal_xy]
    for (s, t), (gx, gy, _) in zip(pairs, goal_xy, strict=True):
        p = ctx.add(s, t, "dragged", xy=ctx.spot(shape(s).radius, others=keep))
        goals.append(Goal(p.pool_index, (gx, gy), face=float(ctx.rng.uniform(-math.pi, math.pi))))
    ctx.episode.params["scene_goals"] = [(g.obj, *g.target, g.face) for g in goals]
    clear = None
    if n == 1:
        d_shape = ctx.choose([sh for sh, _ in ctx.pairs("dragged") if sh != pairs[0][0]])
        d_tex = ctx.choose(ALL_TEXTURES)
        if ctx.rng.random() < 0.5:  # on the goal: the oracle must move it away first
            gx, gy, _ = goal_xy[0]
            d = ctx.add(d_shape, d_tex, "distractor", xy=(gx, gy))
            r = shape(d_shape).radius
            away = [(x, y, POS_EPS + CLEAR_SLACK - r) for x, y, _ in goal_xy]
            away += [(x, y, POS_EPS + CLEAR_SLACK - r) for x, y, _ in ctx.footprints()]
            clear = Goal(d.pool_index, ctx.spot(r, others=away), eps=0.03, visible=False)
        else:
            ctx.add_distractor(d_shape, d_tex, fixed=[(x, y) for x, y, _ in goal_xy])
    return goals, clear


def goal_scene(ctx: SetupContext):
    """The {scene} image: the dragged objects alone, at their goal poses."""
    ep = ctx.episode
    objs = [ctx.staged(ep.by_index(i), x, y, yaw=yaw) for i, x, y, yaw in ep.params["scene_goals"]]
    return ctx.scene_image(objs, "goal scene")


class Rearrange(Task):
    name = "rearrange"
    template = "Rearrange to this {scene}."
    vima_max_steps = 5
    copies = 3
    distractor_check = "at_end"

    def setup(self, ctx: SetupContext) -> None:
        goals, clear = sample_rearrangement(ctx)
        ctx.goals(goals + ([clear] if clear else []))

    def prompt(self, ctx: SetupContext) -> list[Segment]:
        return ["Rearrange to this ", goal_scene(ctx), "."]

    def oracle(self, sim: Sim, ep: Episode) -> Primitive | None:
        return goal_oracle(sim, ep)
