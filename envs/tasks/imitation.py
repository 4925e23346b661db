"""VIMA's tasks whose prompt shows what to do in images: twist, follow_motion, follow_order.

- twist (L1-L3): "'Twist' is defined as rotating object a specific angle. For examples: From
  {before_i} to {after_i}. (x3) Now twist all {texture} objects." The angle (30-330 degrees,
  clockwise) is never stated: three example scenes, each with one object not in the workspace,
  show it. 1-2 dragged objects of one texture; each within 5 cm of its start and 15 degrees of
  its target yaw (latched); the distractor rule applies.
- follow_motion (L4): "Follow this motion for {dragged_obj}: {frame_0} {frame_1} {frame_2}."
  Five waypoints on a 0.19 m circle; two moves to adjacent waypoints; every step must reach the
  next waypoint (10 cm) or the episode fails. No distractor rule.
- follow_order (L1-L3): "Stack objects in this order {frame_0} {frame_1} {frame_2}." Three
  objects of one shape in a row; two scripted moves of a column's top object onto another
  column; every step must bring the scripted object within 10 cm of its column.

"Every step must make progress" is checked after every primitive step, and in delta mode at
every placement event (``Task.update``).
"""

from __future__ import annotations

import math

from uio2_robot.contracts import wrap_angle
from uio2_robot.motion.primitive import Primitive

from ..levels import asymmetric_shapes, level_shape_pool
from ..render import Staged
from ..shapes import shape
from ..sim import Sim
from ..textures import ALL_TEXTURES, texture
from .base import Episode, Goal, Segment, SetupContext, Task, goal_oracle

TWIST_ANGLES = tuple(range(30, 331, 30))


class Twist(Task):
    name = "twist"
    template = (
        "'Twist' is defined as rotating object a specific angle. For examples: "
        "From {a} to {b}. From {a} to {b}. From {a} to {b}. Now twist all {texture} objects."
    )
    vima_max_steps = 5
    copies = 3

    def setup(self, ctx: SetupContext) -> None:
        rng = ctx.rng
        shapes = asymmetric_shapes(ctx.level)
        n = int(rng.integers(1, 3))
        tex = ctx.choose([t for _, t in ctx.pairs("dragged")])
        theta = math.radians(int(ctx.choose(TWIST_ANGLES)))
        goals = []
        for _ in range(n):
            yaw = float(rng.uniform(-math.pi, math.pi))
            p = ctx.add(ctx.choose(shapes), tex, "dragged", yaw=yaw)
            x, y, _, _ = ctx.sim.pose(p)
            goals.append(
                Goal(p.pool_index, (float(x), float(y)), eps=0.05, yaw=wrap_angle(yaw - theta))
            )
        for _ in range(3 - n):
            others = [p for p in ctx.pairs("dragged", shapes=shapes) if p[1] != tex]
            ctx.add_distractor(*ctx.choose(others), 0.05)
        ctx.goals(goals)
        examples = []
        others = [t for _, t in ctx.pairs("dragged") if t != tex]
        dragged_shapes = [p.shape for p in ctx.episode.with_role("dragged")]
        for _ in range(3):
            s, t = ctx.choose(dragged_shapes), ctx.choose(others)
            x, y = float(rng.uniform(0.4375, 0.5625)), float(rng.uniform(-0.375, 0.375))
            phi = float(rng.uniform(-math.pi, math.pi))
            examples.append((Staged(s, t, x, y, phi), Staged(s, t, x, y, wrap_angle(phi - theta))))
        ctx.episode.params.update(
            texture=tex, theta_deg=round(math.degrees(theta)), examples=examples
        )

    def prompt(self, ctx: SetupContext) -> list[Segment]:
        ep = ctx.episode
        out: list[Segment] = [
            "'Twist' is defined as rotating object a specific angle. For examples: "
        ]
        for k, (before, after) in enumerate(ep.params["examples"]):
            out += [
                "From ",
                ctx.scene_image([before], "before twist"),
                " to ",
                ctx.scene_image([after], "after twist"),
                ". " if k < 2 else ". ",
            ]
        out.append(f"Now twist all {texture(ep.params['texture']).word} objects.")
        return out

    def oracle(self, sim: Sim, ep: Episode) -> Primitive | None:
        return goal_oracle(sim, ep)


WAYPOINTS = tuple(
    (0.5 + 0.19 * math.cos(math.radians(72 * k)), 0.19 * math.sin(math.radians(72 * k)))
    for k in range(5)
)


class FollowMotion(Task):
    name = "follow_motion"
    template = "Follow this motion for {dragged_obj}: {frame} {frame} {frame}."
    vima_max_steps = 4
    distractor_check = "never"
    needs_progress = True

    def setup(self, ctx: SetupContext) -> None:
        rng = ctx.rng
        shapes = level_shape_pool(ctx.level, "dragged")
        pair = (ctx.choose(shapes), ctx.choose(ALL_TEXTURES))
        k0 = int(rng.integers(5))
        obj = ctx.add(*pair, "dragged", xy=WAYPOINTS[k0], yaw=0.0)
        dist = ctx.choose([(s, t) for s in shapes for t in ALL_TEXTURES if (s, t) != pair])
        ctx.add(*dist, "distractor", xy=(0.5, 0.0), yaw=0.0)
        path = [k0]
        for _ in range(2):
            path.append((path[-1] + (1 if rng.random() < 0.5 else -1)) % 5)
        ctx.goals(*[[Goal(obj.pool_index, WAYPOINTS[k])] for k in path[1:]])
        frame_dist = (ctx.choose(shapes), ctx.choose(ALL_TEXTURES))
        ctx.episode.params.update(
            path=path,
            frames=[
                [Staged(*pair, *WAYPOINTS[k], 0.0), Staged(*frame_dist, 0.5, 0.0, 0.0)]
                for k in path
            ],
        )

    def pool_copies(self, level: str) -> dict[str, int]:
        return {s: 3 for s in level_shape_pool(level, "dragged")}

    def prompt(self, ctx: SetupContext) -> list[Segment]:
        ep = ctx.episode
        frames = [ctx.scene_image(f, f"frame {k}") for k, f in enumerate(ep.params["frames"])]
        return [
            "Follow this motion for ",
            ctx.object_image(ep.one("dragged")),
            ": ",
            frames[0],
            " ",
            frames[1],
            " ",
            frames[2],
            ".",
        ]

    def oracle(self, sim: Sim, ep: Episode) -> Primitive | None:
        return goal_oracle(sim, ep)


COLUMNS_Y = (-0.25, 0.0, 0.25)
ROW_X = 0.5


class FollowOrder(Task):
    name = "follow_order"
    template = "Stack objects in this order {frame} {frame} {frame}."
    vima_max_steps = 4
    copies = 3
    distractor_check = "never"
    needs_progress = True

    def setup(self, ctx: SetupContext) -> None:
        rng = ctx.rng
        shp = ctx.choose(level_shape_pool(ctx.level, "dragged"))
        texs = [t for _, t in ctx.pairs("dragged", shapes=[shp])]
        chosen = [texs[i] for i in rng.choice(len(texs), size=3, replace=False)]
        objs = [
            ctx.add(shp, t, "dragged", xy=(ROW_X, y), yaw=0.0)
            for t, y in zip(chosen, COLUMNS_Y, strict=True)
        ]
        ctx.add_distractor(
            *ctx.choose([p for p in ctx.pairs("dragged") if p[0] != shp]),
            fixed=[(ROW_X, y) for y in COLUMNS_Y],
        )
        stacks = [[o.pool_index] for o in objs]
        moves = []
        for _ in range(2):
            src = int(ctx.choose([i for i in range(3) if stacks[i]]))
            dst = int(ctx.choose([j for j in range(3) if j != src]))
            moved = stacks[src].pop()
            stacks[dst].append(moved)
            moves.append((moved, dst, [list(s) for s in stacks]))
        ctx.goals(*[[Goal(i, (ROW_X, COLUMNS_Y[dst]))] for i, dst, _ in moves])
        h = shape(shp).height
        by_index = {o.pool_index: o for o in objs}

        def frame(stacks_now: list[list[int]]) -> list[Staged]:
            return [
                Staged(shp, by_index[i].texture, ROW_X, COLUMNS_Y[c], 0.0, 0.0005 + k * h)
                for c, stack in enumerate(stacks_now)
                for k, i in enumerate(stack)
            ]

        ctx.episode.params.update(
            frames=[frame([[o.pool_index] for o in objs])] + [frame(s) for _, _, s in moves],
            shape=shp,
        )

    def prompt(self, ctx: SetupContext) -> list[Segment]:
        frames = [
            ctx.scene_image(f, f"frame {k}") for k, f in enumerate(ctx.episode.params["frames"])
        ]
        return ["Stack objects in this order ", frames[0], " ", frames[1], " ", frames[2], "."]

    def oracle(self, sim: Sim, ep: Episode) -> Primitive | None:
        return goal_oracle(sim, ep)
