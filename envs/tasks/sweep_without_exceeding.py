"""sweep_without_exceeding: "Sweep {det} {swept_obj} into {bounds} without exceeding {constraint}."

VIMA's spatula task (L1-L2). Small blocks lie in front of the open side of a flat three-sided
rectangle; a flat line runs just beyond its closed side. The policy must push the asked number of
blocks ("all", "one", "two": at least that many) into the rectangle, and fails early if any block's
centre crosses the line ("constraint violated") or the distractor block (another texture) moves.
Bounds and line are flat marks on the table: blocks slide over them, so overshooting is possible.
The whole arrangement is rotated to a random heading, so pushes go in any direction.
"""

from __future__ import annotations

import math

from uio2_robot.motion.primitive import Primitive

from ..levels import level_textures
from ..scene import SPATULA_HALF
from ..shapes import shape
from ..sim import Placed, Sim
from ..spaces import WORKSPACE_X, WORKSPACE_Y
from .base import Episode, LayoutError, Segment, SetupContext, Task, moved

LINE_X = 0.1  # line centre in the bounds frame (the rectangle's closed side is at x = 0.066)
LANES = (-0.085, 0.0, 0.085)  # lateral lanes of the blocks: a spatula push in one misses the others
PUSH_GAP = 0.02  # the spatula starts this far behind the block (VIMA: 2 cm)
REST_SPEED = 0.05


def to_local(sim: Sim, ep: Episode, p: Placed) -> tuple[float, float]:
    """An object's position in the bounds frame (x along the push direction into the rectangle)."""
    cx, cy, theta = ep.params["frame"]
    x, y, _, _ = sim.pose(p)
    c, s = math.cos(theta), math.sin(theta)
    dx, dy = x - cx, y - cy
    return c * dx + s * dy, -s * dx + c * dy


class SweepWithoutExceeding(Task):
    name = "sweep_without_exceeding"
    template = "Sweep {det} {swept_obj} into {bounds} without exceeding {constraint}."
    levels = ("L1", "L2")
    tool = "spatula"
    vima_max_steps = 8

    def pool_copies(self, level: str) -> dict[str, int]:
        return {"small_block": 4, "three_sided_rectangle": 1, "line": 1}

    def setup(self, ctx: SetupContext) -> None:
        rng = ctx.rng
        n = int(rng.integers(2, 4))
        required = int(ctx.choose([n, 1, 2]))
        swept_s, tex = ctx.choose(ctx.pairs("swept"))
        distractor_tex = ctx.choose([t for _, t in ctx.pairs("swept") if t != tex])
        marks = [t for t in level_textures(ctx.level) if t not in (tex, distractor_tex)]
        bounds_tex = ctx.choose(marks)
        line_tex = ctx.choose([t for t in marks if t != bounds_tex])
        lanes = sorted(rng.choice(len(LANES), size=n, replace=False).tolist())
        local_blocks = [
            (float(rng.uniform(-0.26, -0.13)), LANES[k] + float(rng.uniform(-0.008, 0.008)))
            for k in lanes
        ]
        side = 1.0 if rng.random() < 0.5 else -1.0
        local_distractor = (float(rng.uniform(-0.24, 0.0)), side * float(rng.uniform(0.165, 0.19)))
        # Local points that must land inside the workspace: blocks and where the spatula starts.
        must_fit = [(x, y, 0.03) for x, y in (*local_blocks, local_distractor)]
        must_fit += [(x - 0.05, y, 0.0) for x, y in local_blocks]
        must_fit += [(sx * 0.072, sy * 0.142, 0.0) for sx in (-1, 1) for sy in (-1, 1)]
        must_fit += [(LINE_X, sy * 0.16, 0.0) for sy in (-1, 1)]
        for _ in range(400):
            theta = float(rng.uniform(-math.pi, math.pi))
            cx = float(rng.uniform(*WORKSPACE_X))
            cy = float(rng.uniform(*WORKSPACE_Y))
            c, s = math.cos(theta), math.sin(theta)
            ok = True
            for lx, ly, r in must_fit:
                wx, wy = cx + c * lx - s * ly, cy + s * lx + c * ly
                if not (
                    WORKSPACE_X[0] + r <= wx <= WORKSPACE_X[1] - r
                    and WORKSPACE_Y[0] + r <= wy <= WORKSPACE_Y[1] - r
                ):
                    ok = False
                    break
            if ok:
                break
        else:
            raise LayoutError("no heading fits the sweep layout")

        def world(lx: float, ly: float) -> tuple[float, float]:
            return cx + c * lx - s * ly, cy + s * lx + c * ly

        ctx.add("three_sided_rectangle", bounds_tex, "bounds", xy=(cx, cy), yaw=theta)
        ctx.add("line", line_tex, "constraint", xy=world(LINE_X, 0.0), yaw=theta)
        for lx, ly in local_blocks:
            ctx.add(swept_s, tex, "dragged", xy=world(lx, ly))
        ctx.add(swept_s, distractor_tex, "distractor", xy=world(*local_distractor))
        ctx.episode.params.update(frame=(cx, cy, theta), required=required, n=n)

    def prompt(self, ctx: SetupContext) -> list[Segment]:
        ep = ctx.episode
        n, req = ep.params["n"], ep.params["required"]
        det = "all" if req == n else {1: "one", 2: "two"}[req]
        return [
            f"Sweep {det} ",
            ctx.object_image(ep.with_role("dragged")[0]),
            " into ",
            ctx.object_image(ep.one("bounds")),
            " without exceeding ",
            ctx.object_image(ep.one("constraint")),
            ".",
        ]

    def _inside(self, sim: Sim, ep: Episode, p: Placed) -> bool:
        inner = shape("three_sided_rectangle").inner
        assert inner is not None
        return inner.contains(*to_local(sim, ep, p))

    def success(self, sim: Sim, ep: Episode) -> bool:
        inside = [
            p
            for p in ep.with_role("dragged")
            if self._inside(sim, ep, p) and sim.speed(p) < REST_SPEED
        ]
        return len(inside) >= ep.params["required"] and self.failure(sim, ep) is None

    def failure(self, sim: Sim, ep: Episode) -> str | None:
        for p in ep.with_role("dragged") + ep.with_role("distractor"):
            if to_local(sim, ep, p)[0] > LINE_X:
                return "constraint violated"
        return super().failure(sim, ep)

    def oracle(self, sim: Sim, ep: Episode) -> Primitive | None:
        dragged = ep.with_role("dragged")
        inside = [p for p in dragged if self._inside(sim, ep, p)]
        if len(inside) >= ep.params["required"]:
            return None
        todo = sorted((p for p in dragged if p not in inside), key=lambda p: moved(sim, ep, p))
        p = todo[0]
        lx, ly = to_local(sim, ep, p)
        tx, ty = 0.0, max(-0.09, min(0.09, ly))  # the rectangle's centre line, same lane
        dx, dy = tx - lx, ty - ly
        dist = math.hypot(dx, dy)
        ux, uy = dx / dist, dy / dist
        _, _, _, yaw = sim.pose(p)
        cx, cy, theta = ep.params["frame"]
        phi = yaw - theta - math.atan2(uy, ux)
        half = shape(p.shape).parts[0].hx * (abs(math.cos(phi)) + abs(math.sin(phi)))
        back = shape(p.shape).radius + SPATULA_HALF[0] + PUSH_GAP
        stop = half + SPATULA_HALF[0]
        c, s = math.cos(theta), math.sin(theta)

        def world(x: float, y: float) -> tuple[float, float]:
            return cx + c * x - s * y, cy + s * x + c * y

        x0, y0 = world(lx - ux * back, ly - uy * back)
        x1, y1 = world(tx - ux * stop, ty - uy * stop)
        yaw_push = math.atan2(y1 - y0, x1 - x0)
        return Primitive("push", x0, y0, yaw_push, x1, y1, yaw_push)
