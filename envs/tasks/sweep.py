"""The two spatula tasks (VIMA's visual constraint satisfaction), on VIMA's fixed layouts.

sweep_without_exceeding (L1, L2): "Sweep {det} {swept_obj} into {bounds} without exceeding
{constraint}." A 0.27 m three-sided rectangle centred at (0.41, 0), open towards +x; a line lies
*inside* it at a random depth; the zone is the strip between the line and the opening.

sweep_without_touching (L4): "... without touching {constraint}." A 0.172 x 0.30 m rectangle at
(0.39, 0); a short line lies just in front of its opening, so the straight path is blocked.

Both: 1-3 swept cubes (0.5 / 0.25 / 0.25) in one texture in an 18 x 18 cm patch, as many
distractor cubes in another texture in a second patch; {det} from {any, one, two, three, all}.
Success: **exactly** the requested number of swept cubes fully in the zone (each latched when it
gets in). Failure: more than that in the zone, any distractor point in the zone, or any swept
cube point touching the line **at any moment** (``monitor``, every control period during
motion, latched). Blocks, rectangle and line keep VIMA's sizes but for the cubes (3.2 cm, see
``shapes.SMALL_BLOCK_SCALE``); block centres stay 4 cm inside the +x workspace edge so the
spatula's start behind them is within the action bounds (VIMA's patches reach the edge).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from uio2_robot.motion.primitive import Primitive

from ..levels import level_texture_pool
from ..scene import SPATULA_HALF
from ..shapes import shape
from ..sim import Placed, Sim
from ..spaces import WORKSPACE_X, WORKSPACE_Y
from .base import REST_SPEED, Episode, LayoutError, Segment, SetupContext, Task

PUSH_GAP = 0.02  # the spatula starts this far behind the block (VIMA: 2 cm)
PATCH_CORNERS = ((0.57, -0.22), (0.58, 0.03))
BLOCK_X_MAX = WORKSPACE_X[1] - 0.04
BLOCK_GAP = 0.05  # m between cube centres (a cube's diagonal is 4.6 cm)
N_BLOCKS_P = (0.5, 0.25, 0.25)
CORRIDOR = SPATULA_HALF[1] + 0.035  # a push's path must keep other cubes' centres this far
DETS = {"any": 1, "one": 1, "two": 2, "three": 3}


@dataclass(frozen=True)
class Rect:
    """An axis-aligned rectangle [x0, x1] x [y0, y1]."""

    x0: float
    x1: float
    y0: float
    y1: float

    def contains(self, x: float, y: float) -> bool:
        return self.x0 <= x <= self.x1 and self.y0 <= y <= self.y1


def block_points(sim: Sim, p: Placed) -> list[tuple[float, float]]:
    """Sample points of a cube's footprint: its centre, corners and edge midpoints."""
    x, y, _, yaw = sim.pose(p)
    h = shape(p.shape).parts[0].hx
    c, s = math.cos(yaw), math.sin(yaw)
    pts = [(0.0, 0.0)] + [(a * h, b * h) for a in (-1, 0, 1) for b in (-1, 0, 1) if a or b]
    return [(x + c * u - s * v, y + s * u + c * v) for u, v in pts]


def _patch_spot(
    ctx: SetupContext, x0: float, y0: float, size: float, taken: list[tuple[float, float]]
) -> tuple[float, float]:
    """A cube centre in the patch [x0, x0 + size] x [y0, y0 + size] (the cube inside it), at
    least ``BLOCK_GAP`` from every cube placed so far (VIMA fits 3 cubes in its 9 cm patch)."""
    h = shape("small_block").parts[0].hx
    x_hi = min(x0 + size - h, BLOCK_X_MAX)
    for _ in range(500):
        x = float(ctx.rng.uniform(x0 + h, x_hi))
        y = float(ctx.rng.uniform(y0 + h, y0 + size - h))
        if all(math.hypot(x - tx, y - ty) > BLOCK_GAP for tx, ty in taken):
            return x, y
    raise LayoutError("no room for a cube in its patch")


def _seg_dist(px, py, ax, ay, bx, by) -> float:
    dx, dy = bx - ax, by - ay
    t = max(0.0, min(1.0, ((px - ax) * dx + (py - ay) * dy) / max(dx * dx + dy * dy, 1e-12)))
    return math.hypot(px - ax - t * dx, py - ay - t * dy)


class _Sweep(Task):
    """What both sweeping tasks share: layout sampling, exact-count goals, the monitor."""

    tool = "spatula"
    bounds_shape: str
    line_shape: str
    verb: str  # "exceeding" | "touching"
    distractor_patch: float

    def pool_copies(self, level: str) -> dict[str, int]:
        return {"small_block": 6, self.bounds_shape: 1, self.line_shape: 1}

    # ---- layout
    def rect_centre(self, ctx: SetupContext) -> tuple[float, float]:
        raise NotImplementedError

    def line_centre(self, ctx: SetupContext) -> tuple[float, float]:
        raise NotImplementedError

    def zone(self, ep: Episode) -> Rect:
        raise NotImplementedError

    def line_rect(self, ep: Episode) -> Rect:
        lx, ly = ep.params["line"]
        part = shape(self.line_shape).parts[0]
        return Rect(lx - part.hx, lx + part.hx, ly - part.hy, ly + part.hy)

    def setup(self, ctx: SetupContext) -> None:
        rng = ctx.rng
        n = int(rng.choice(3, p=N_BLOCKS_P)) + 1
        dets = ["any", "one", "all"] + ["two"] * (n >= 2) + ["three"] * (n >= 3)
        det = str(ctx.choose(dets))
        required = n if det == "all" else DETS[det]
        drag_pool = level_texture_pool(ctx.level, "swept")
        tex = ctx.choose(drag_pool)
        d_tex = ctx.choose([t for t in drag_pool if t != tex])
        mark_pool = level_texture_pool(ctx.level, "base")
        bounds_tex = ctx.choose(mark_pool)
        line_tex = ctx.choose([t for t in mark_pool if t != bounds_tex])
        ctx.add(self.bounds_shape, bounds_tex, "bounds", xy=self.rect_centre(ctx), yaw=0.0)
        line_xy = self.line_centre(ctx)
        ctx.add(self.line_shape, line_tex, "constraint", xy=line_xy, yaw=0.0)
        ctx.episode.params.update(n=n, det=det, required=required, line=line_xy)
        corners = list(PATCH_CORNERS)
        if rng.random() < 0.5:
            corners.reverse()
        taken: list[tuple[float, float]] = []
        for (cx, cy), size, t, role in (
            (corners[0], 0.18, tex, "dragged"),
            (corners[1], self.distractor_patch, d_tex, "distractor"),
        ):
            for _ in range(n):
                xy = _patch_spot(ctx, cx, cy, size, taken)
                taken.append(xy)
                ctx.add("small_block", t, role, xy=xy)
        ctx.episode.params["latched"] = []

    def prompt(self, ctx: SetupContext) -> list[Segment]:
        ep = ctx.episode
        det = ep.params["det"]
        return [
            f"Sweep {det} ",
            ctx.object_image(ep.with_role("dragged")[0]),
            " into ",
            ctx.object_image(ep.one("bounds")),
            f" without {self.verb} ",
            ctx.object_image(ep.one("constraint")),
            ".",
        ]

    # ---- rules
    def fully_in(self, sim: Sim, ep: Episode, p: Placed) -> bool:
        z = self.zone(ep)
        return all(z.contains(x, y) for x, y in block_points(sim, p))

    def monitor(self, sim: Sim, ep: Episode) -> None:
        if ep.violation is not None:
            return
        line = self.line_rect(ep)
        for p in ep.with_role("dragged"):
            if any(line.contains(x, y) for x, y in block_points(sim, p)):
                ep.violation = "constraint violated"
                return

    def update(self, sim: Sim, ep: Episode, event: bool) -> None:
        self.monitor(sim, ep)
        latched = ep.params["latched"]
        for p in ep.with_role("dragged"):
            if (
                p.pool_index not in latched
                and sim.speed(p) < REST_SPEED
                and self.fully_in(sim, ep, p)
            ):
                latched.append(p.pool_index)

    def success(self, sim: Sim, ep: Episode) -> bool:
        return len(ep.params["latched"]) == ep.params["required"]

    def failure(self, sim: Sim, ep: Episode) -> str | None:
        if ep.violation is not None:
            return ep.violation
        z = self.zone(ep)
        inside = set(ep.params["latched"]) | {
            p.pool_index for p in ep.with_role("dragged") if self.fully_in(sim, ep, p)
        }
        if len(inside) > ep.params["required"]:
            return "too many swept"
        for p in ep.with_role("distractor"):
            if any(z.contains(x, y) for x, y in block_points(sim, p)):
                return "distractor in zone"
        for p in ep.with_role("dragged"):
            x, y, zz, _ = sim.pose(p)
            if p.pool_index not in inside and (
                not (
                    WORKSPACE_X[0] <= x <= WORKSPACE_X[1] and WORKSPACE_Y[0] <= y <= WORKSPACE_Y[1]
                )
                or zz < -0.02
            ):
                return "object left workspace"
        return None

    # ---- oracle
    def priority(self, sim: Sim, ep: Episode, p: Placed) -> tuple[float, ...]:
        """Which cube the oracle pushes first (smallest key): the one nearest the zone."""
        return (float(sim.pose(p)[0]),)

    def waypoint(self, sim: Sim, ep: Episode, p: Placed) -> list[tuple[float, float]]:
        """Candidate next positions for block ``p``, best first."""
        raise NotImplementedError

    def oracle(self, sim: Sim, ep: Episode) -> Primitive | None:
        dragged = ep.with_role("dragged")
        inside = [p for p in dragged if self.fully_in(sim, ep, p)]
        if len(set(ep.params["latched"]) | {p.pool_index for p in inside}) >= ep.params["required"]:
            return None
        todo = [p for p in dragged if p not in inside]
        todo.sort(key=lambda p: self.priority(sim, ep, p))
        best, best_clear = None, -1.0
        for p in todo:
            for tx, ty in self.waypoint(sim, ep, p):
                prim = self._push(sim, p, tx, ty)
                clear = self._clearance(sim, ep, p, prim, (tx, ty))
                if clear >= CORRIDOR:
                    return prim
                if clear > best_clear:
                    best, best_clear = prim, clear
        return best  # nothing is clear: the push that comes closest to it

    def _clearance(self, sim: Sim, ep: Episode, p: Placed, prim: Primitive, end) -> float:
        """How far the nearest other cube's centre is from the push's path (spatula start to
        the pushed cube's end point)."""
        out = math.inf
        for q in ep.objects:
            if q is p or q.role not in ("dragged", "distractor"):
                continue
            qx, qy, _, _ = sim.pose(q)
            out = min(out, _seg_dist(qx, qy, prim.x0, prim.y0, end[0], end[1]))
        return out

    @staticmethod
    def _push(sim: Sim, p: Placed, tx: float, ty: float) -> Primitive:
        """A spatula push that carries block ``p`` so its centre stops at (tx, ty)."""
        x, y, _, yaw = sim.pose(p)
        dx, dy = tx - x, ty - y
        dist = max(math.hypot(dx, dy), 1e-6)
        ux, uy = dx / dist, dy / dist
        phi = yaw - math.atan2(uy, ux)
        half = shape(p.shape).parts[0].hx * (abs(math.cos(phi)) + abs(math.sin(phi)))
        back = shape(p.shape).radius + SPATULA_HALF[0] + PUSH_GAP
        stop = half + SPATULA_HALF[0]
        x0, y0 = x - ux * back, y - uy * back
        x1, y1 = tx - ux * stop, ty - uy * stop
        heading = math.atan2(uy, ux)
        return Primitive("push", x0, y0, heading, x1, y1, heading)


class SweepWithoutExceeding(_Sweep):
    name = "sweep_without_exceeding"
    template = "Sweep {det} {swept_obj} into {bounds} without exceeding {constraint}."
    vima_max_steps = 8
    bounds_shape = "three_sided_rectangle"
    line_shape = "line"
    verb = "exceeding"
    distractor_patch = 0.09

    def rect_centre(self, ctx: SetupContext) -> tuple[float, float]:
        return (0.41, 0.0)

    def line_centre(self, ctx: SetupContext) -> tuple[float, float]:
        return (float(ctx.rng.uniform(0.3425, 0.437)), 0.0)

    def zone(self, ep: Episode) -> Rect:
        lx, _ = ep.params["line"]
        return Rect(lx + 0.02, 0.545, -0.135, 0.135)

    def waypoint(self, sim: Sim, ep: Episode, p: Placed) -> list[tuple[float, float]]:
        z = self.zone(ep)
        _, y, _, _ = sim.pose(p)
        tx = 0.5 * (z.x0 + z.x1)
        lanes = [-0.09, -0.06, -0.03, 0.0, 0.03, 0.06, 0.09]
        return [(tx, ly) for ly in sorted(lanes, key=lambda v: abs(v - y))]


class SweepWithoutTouching(_Sweep):
    name = "sweep_without_touching"
    template = "Sweep {det} {swept_obj} into {bounds} without touching {constraint}."
    vima_max_steps = 14
    bounds_shape = "three_sided_rectangle_small"
    line_shape = "line_short"
    verb = "touching"
    distractor_patch = 0.18
    SIDE = 0.09375 + 0.10  # VIMA's detour: the line's half length + 10 cm

    def rect_centre(self, ctx: SetupContext) -> tuple[float, float]:
        return (0.39, 0.0)

    def line_centre(self, ctx: SetupContext) -> tuple[float, float]:
        return (0.496, 0.0)

    def zone(self, ep: Episode) -> Rect:
        return Rect(0.39 - 0.086, 0.39 + 0.086, -0.15, 0.15)

    def phase(self, sim: Sim, p: Placed) -> int:
        """Where a cube is on VIMA's detour: 1 in front of the line, 2 beside it, 3 past it."""
        x, y, _, _ = sim.pose(p)
        if x > 0.53 and abs(y) < self.SIDE - 0.02:
            return 1
        return 2 if x > 0.40 else 3

    def priority(self, sim: Sim, ep: Episode, p: Placed) -> tuple[float, ...]:
        """VIMA's order: cubes past the line first, then beside it, then in front of it; the
        farthest first within a phase (beside the line: the one behind pushes the one ahead)."""
        x, y, _, _ = sim.pose(p)
        phase = self.phase(sim, p)
        return (-phase, -x if phase == 2 else x)

    def waypoint(self, sim: Sim, ep: Episode, p: Placed) -> list[tuple[float, float]]:
        """VIMA's three-phase detour: out to the side of the line, towards the robot beside
        it, then sideways into the zone."""
        x, y, _, _ = sim.pose(p)
        side = math.copysign(1.0, y) if abs(y) > 1e-3 else 1.0
        phase = self.phase(sim, p)
        if phase == 1:  # in front of the line
            xs = max(x, 0.58)
            return [(xs, side * self.SIDE), (xs, -side * self.SIDE)]
        if phase == 2:  # beside the line, towards the robot
            return [(0.37, side * max(abs(y), self.SIDE - 0.02))]
        lanes = [0.0, 0.05, -0.05, 0.09, -0.09]  # phase 3: sideways into the zone
        return [(0.39, ly) for ly in lanes]
