"""VIMA's tasks that need memory or a fixed order of goals.

- rearrange_then_restore (L1-L3): "Rearrange objects to this setup {scene} and then restore."
  rearrange's sampling; phase 1 every dragged object within 10 cm of its goal (any order,
  latched), phase 2 every one back within 10 cm of its start; the distractor rule at the end.
- manipulate_old_neighbor (L1-L3): "First put {dragged_obj} into {base_obj} then put the object
  that was previously at its {direction} into the same {base_obj}." A 3 x 2 grid with one empty
  cell; north = image up (-x in VIMA's camera), east = image right (+y). Fails if the neighbour
  gets into the base first.
- pick_in_order_then_restore (L1-L3): "Put {dragged_obj} into {base_obj_1} then {base_obj_2}.
  Finally restore it into its original container." Six bases of one shape, the object on one;
  within 5 cm of target 1, then target 2, then the original; fails when the object sits at a
  later target than the next one.
"""

from __future__ import annotations

from uio2_robot.motion.primitive import Primitive

from ..levels import level_shape_pool
from ..shapes import shape
from ..sim import Sim
from .base import (
    Episode,
    Goal,
    LayoutError,
    Segment,
    SetupContext,
    Task,
    at_rest,
    goal_oracle,
    goal_reached,
)
from .rearrange import goal_scene, sample_rearrangement


class RearrangeThenRestore(Task):
    name = "rearrange_then_restore"
    template = "Rearrange objects to this setup {scene} and then restore."
    vima_max_steps = 8
    copies = 3
    distractor_check = "at_end"

    def setup(self, ctx: SetupContext) -> None:
        goals, clear = sample_rearrangement(ctx)
        restore = []
        for g in goals:
            x, y, _, yaw = ctx.sim.pose(g.obj)
            restore.append(Goal(g.obj, (float(x), float(y)), face=float(yaw)))
        ctx.goals(goals + ([clear] if clear else []), restore)

    def prompt(self, ctx: SetupContext) -> list[Segment]:
        return ["Rearrange objects to this setup ", goal_scene(ctx), " and then restore."]

    def oracle(self, sim: Sim, ep: Episode) -> Primitive | None:
        return goal_oracle(sim, ep)


GRID_X = (0.375, 0.5, 0.625)  # rows: north (row 0, image up) to south
GRID_Y = (-0.25, 0.0)  # columns: west to east
DIRECTIONS = {"north": (-1, 0), "south": (1, 0), "west": (0, -1), "east": (0, 1)}


class ManipulateOldNeighbor(Task):
    name = "manipulate_old_neighbor"
    template = (
        "First put {dragged_obj} into {base_obj} then put the object that was previously at its "
        "{direction} into the same {base_obj}."
    )
    vima_max_steps = 4

    def setup(self, ctx: SetupContext) -> None:
        rng = ctx.rng
        base = ctx.add(*ctx.choose(ctx.pairs("base")), "base", xy=(0.5, 0.25), yaw=0.0)
        cells = [(r, c) for r in range(3) for c in range(2)]
        drag_cell = cells[int(rng.integers(len(cells)))]
        dirs = [
            (name, (drag_cell[0] + dr, drag_cell[1] + dc))
            for name, (dr, dc) in DIRECTIONS.items()
            if 0 <= drag_cell[0] + dr < 3 and 0 <= drag_cell[1] + dc < 2
        ]
        direction, nb_cell = dirs[int(rng.integers(len(dirs)))]
        free = [c for c in cells if c not in (drag_cell, nb_cell)]
        empty = free[int(rng.integers(len(free)))]
        # distinct shapes (VIMA: distinct pairs) so the pool needs one body per shape
        shapes = list(level_shape_pool(ctx.level, "dragged"))
        picked = [shapes[i] for i in rng.choice(len(shapes), size=5, replace=len(shapes) < 5)]
        objs = {}
        for cell, shp in zip([c for c in cells if c != empty], picked, strict=True):
            role = (
                "dragged" if cell == drag_cell else "neighbour" if cell == nb_cell else "distractor"
            )
            tex = ctx.choose([t for s, t in ctx.pairs("dragged", shapes=[shp])])
            objs[cell] = ctx.add(shp, tex, role, xy=(GRID_X[cell[0]], GRID_Y[cell[1]]), yaw=0.0)
        ctx.goals(
            [Goal(objs[drag_cell].pool_index, base.pool_index)],
            [Goal(objs[nb_cell].pool_index, base.pool_index)],
        )
        ctx.episode.params.update(direction=direction)

    def pool_copies(self, level: str) -> dict[str, int]:
        pool = level_shape_pool(level, "dragged")
        return {**super().pool_copies(level), **({s: 2 for s in pool} if len(pool) < 5 else {})}

    def prompt(self, ctx: SetupContext) -> list[Segment]:
        ep = ctx.episode
        base_img = ctx.object_image(ep.one("base"))
        return [
            "First put ",
            ctx.object_image(ep.one("dragged")),
            " into ",
            base_img,
            f" then put the object that was previously at its {ep.params['direction']} into the same ",
            base_img,
            ".",
        ]

    def update(self, sim: Sim, ep: Episode, event: bool) -> None:
        # the neighbour reaching the base first is a failure, not a latched goal: check it
        # before the stage machinery would simply wait for the dragged object
        nb = ep.one("neighbour")
        if (
            len(ep.stages) == 2
            and at_rest(sim, nb)
            and goal_reached(sim, ep, Goal(nb.pool_index, ep.one("base").pool_index))
        ):
            ep.violation = ep.violation or "wrong order"
        super().update(sim, ep, event)

    def oracle(self, sim: Sim, ep: Episode) -> Primitive | None:
        return goal_oracle(sim, ep)


BASE_SLOTS = [(x, y) for x in (0.375, 0.625) for y in (-0.25, 0.0, 0.25)]
PICK_EPS = 0.05


class PickInOrderThenRestore(Task):
    name = "pick_in_order_then_restore"
    template = (
        "Put {dragged_obj} into {first_base} then {second_base}. "
        "Finally restore it into its original container."
    )
    vima_max_steps = 4
    base_copies = 6

    def pool_copies(self, level: str) -> dict[str, int]:
        out = {s: self.copies for s in level_shape_pool(level, "dragged")}
        out.update({s: 6 for s in self._bases(level)})
        return out

    @staticmethod
    def _bases(level: str) -> tuple[str, ...]:
        # the pan with its handle does not fit the 0.25 m grid (VIMA's L3 leaves it out too)
        return tuple(s for s in level_shape_pool(level, "base") if s != "pan")

    def setup(self, ctx: SetupContext) -> None:
        rng = ctx.rng
        base_shape = ctx.choose(self._bases(ctx.level))
        texs = [t for s, t in ctx.pairs("base", shapes=[base_shape])]
        if len(texs) < 6:
            raise LayoutError("fewer than six base textures")
        chosen = [texs[i] for i in rng.choice(len(texs), size=6, replace=False)]
        bases = [
            ctx.add(base_shape, t, "base", xy=xy, yaw=0.0)
            for t, xy in zip(chosen, BASE_SLOTS, strict=True)
        ]
        order = [int(i) for i in rng.permutation(6)]
        original, t1, t2 = (bases[i] for i in order[:3])
        ox, oy, _, _ = ctx.sim.pose(original)
        z = shape(base_shape).height + 0.002
        obj = ctx.add(*ctx.choose(ctx.pairs("dragged")), "dragged", xy=(float(ox), float(oy)), z=z)
        ctx.goals(
            [Goal(obj.pool_index, t1.pool_index, eps=PICK_EPS)],
            [Goal(obj.pool_index, t2.pool_index, eps=PICK_EPS)],
            [Goal(obj.pool_index, original.pool_index, eps=PICK_EPS)],
        )
        ctx.episode.params.update(
            targets=[t1.pool_index, t2.pool_index], original=original.pool_index
        )

    def prompt(self, ctx: SetupContext) -> list[Segment]:
        ep = ctx.episode
        t1, t2 = (ep.by_index(i) for i in ep.params["targets"])
        return [
            "Put ",
            ctx.object_image(ep.one("dragged")),
            " into ",
            ctx.object_image(t1),
            " then ",
            ctx.object_image(t2),
            ". Finally restore it into its original container.",
        ]

    def extra_failure(self, sim: Sim, ep: Episode) -> str | None:
        obj = ep.one("dragged")
        if sim.held == obj.pool_index or len(ep.stages) < 3:
            return None
        t2 = ep.params["targets"][1]
        if goal_reached(sim, ep, Goal(obj.pool_index, t2, eps=PICK_EPS)):
            return "wrong order"
        return None

    def oracle(self, sim: Sim, ep: Episode) -> Primitive | None:
        return goal_oracle(sim, ep)
