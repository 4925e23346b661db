"""What every task module provides, and the machinery VIMA's tasks share.

A task is a small class with:
- ``setup(ctx)``: sample the objects for a level, put them on the table and declare the goals
  (``ctx.goals(...)``, stages of goals met in any order within a stage, stages in order);
- ``prompt(ctx)``: the interleaved text-and-image prompt from its template;
- ``oracle(sim, ep)``: the next VIMA primitive from privileged state (None when nothing is left);
- optionally ``extra_failure`` (task rules beyond the shared ones) and ``monitor`` (a constraint
  checked every control period, during motion).

Success and failure follow VIMA-Bench (VIMA-SUITE.md §1):
- a goal is "object within ``eps`` (x-y) of its target", plus, for rotations, "yaw within 15
  degrees modulo the shape's symmetry". It counts once the object is released and at rest, and
  is **latched**: met once, never re-checked (``Task.update`` after every step);
- success = every agent-visible goal latched; oracle-only goals (moving a distractor off a goal)
  never count;
- the distractor rule: fail if a distractor lies within a goal's ``eps`` of that goal's target,
  or a goal object within ``eps`` of a distractor; checked only while the tool holds nothing
  (VIMA checks after whole primitives, when nothing is held);
- the workspace rule: a goal object whose goals are not all latched is outside VIMA's workspace
  (no slack) or fell off the table.

Step semantics in delta mode (VIMA-SUITE.md M2): a primitive step is one env step; in delta mode
the rules VIMA applies "after each step" that need a step (follow_* "every step must make
progress") are applied at *placement events*: the tool released an object and it came to rest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from uio2_robot.contracts import wrap_angle
from uio2_robot.motion.primitive import Primitive

from ..levels import level_shape_pool, object_pairs
from ..render import Staged
from ..shapes import shape
from ..sim import Placed, Sim
from ..spaces import WORKSPACE_X, WORKSPACE_Y
from ..textures import texture

REST_SPEED = 0.05  # m/s: a goal counts once its object is released and slower than this
YAW_TOL = math.radians(15)  # VIMA's rotation tolerance
POS_EPS = 0.10  # VIMA's pos_eps of most tasks
PLACE_MARGIN = 0.012  # m of free space kept between sampled objects
EDGE_MARGIN = 0.02  # m kept between an object's bounding circle and the workspace edge
CLEAR_SLACK = 0.05  # m a distractor keeps beyond eps from goal targets and goal objects


class LayoutError(RuntimeError):
    """The sampler could not fit the objects; the env redraws the episode from the same RNG."""


@dataclass
class PromptImage:
    """An image segment of a prompt and the words its placeholder stands for."""

    image: np.ndarray  # (h, w, 3) uint8
    label: str  # e.g. "red block" -> rendered as "{red block}" in the plain-text prompt


Segment = str | PromptImage


@dataclass
class Goal:
    """Object ``obj`` (pool index) within ``eps`` of ``target``: a fixed (x, y), or a base's pool
    index (its current position); ``yaw`` also asks for an orientation. ``visible=False`` marks
    VIMA's oracle-only goals, which the agent's success ignores."""

    obj: int
    target: tuple[float, float] | int
    eps: float = POS_EPS
    yaw: float | None = None
    visible: bool = True
    face: float | None = None  # the yaw the oracle places the object at when ``yaw`` is None


@dataclass
class Episode:
    """One episode's sampled content and bookkeeping."""

    task: str
    level: str
    seed: int
    objects: list[Placed] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    start: dict[int, np.ndarray] = field(default_factory=dict)  # pool index -> (x, y, z, yaw)
    stages: list[list[Goal]] = field(default_factory=list)  # goals still to meet
    latched: list[Goal] = field(default_factory=list)  # goals met, in the order they were met
    violation: str | None = None  # a failure latched during motion (``Task.monitor``)
    progressed: bool = False  # a goal latched since the last placement event

    def with_role(self, role: str) -> list[Placed]:
        """The objects that play ``role`` ("dragged", "base", "distractor", ...)."""
        return [p for p in self.objects if p.role == role]

    def one(self, role: str) -> Placed:
        """The single object with ``role``."""
        found = self.with_role(role)
        if len(found) != 1:
            raise AssertionError(f"expected one {role!r} object, found {len(found)}")
        return found[0]

    def by_index(self, pool_index: int) -> Placed:
        """The episode's object on pool body ``pool_index``."""
        return next(p for p in self.objects if p.pool_index == pool_index)

    def all_goals(self) -> list[Goal]:
        """Every goal of the episode, met or not."""
        return self.latched + [g for stage in self.stages for g in stage]


class SetupContext:
    """What a task's ``setup`` and ``prompt`` may use: the RNG, the level, placement, images."""

    def __init__(self, sim: Sim, episode: Episode, rng: np.random.Generator, images: Any) -> None:
        self.sim = sim
        self.episode = episode
        self.rng = rng
        self.level = episode.level
        self._images = images

    # ---- sampling
    def choose(self, seq):
        """One element of a non-empty sequence, drawn with the episode RNG."""
        if not seq:
            raise LayoutError("nothing left to choose from")
        return seq[int(self.rng.integers(len(seq)))]

    def pairs(
        self, kind: str, *, shapes=None, textures=None, avoid=(), level_shapes=True
    ) -> list[tuple[str, str]]:
        """(shape, texture) pairs of ``kind`` the level allows, filtered by shape/texture sets.

        ``avoid`` lists pairs that must not be drawn (objects must look different);
        ``level_shapes=False`` takes ``shapes`` as given with the level's textures (shapes a
        task adds to the pool, e.g. same_shape's shorter block).
        """
        if level_shapes:
            base = object_pairs(self.level, kind)
        else:
            texs = {t for _, t in object_pairs(self.level, kind)}
            base = tuple((s, t) for s in shapes or () for t in sorted(texs))
        out = []
        for s, t in base:
            if shapes is not None and s not in shapes:
                continue
            if textures is not None and t not in textures:
                continue
            if (s, t) in avoid:
                continue
            out.append((s, t))
        return out

    def spot(
        self,
        radius: float,
        *,
        others: list[tuple[float, float, float]] | None = None,
        tries: int = 300,
        x_range: tuple[float, float] = WORKSPACE_X,
        y_range: tuple[float, float] = WORKSPACE_Y,
    ) -> tuple[float, float]:
        """A random (x, y) in the workspace whose circle of ``radius`` overlaps nothing placed."""
        taken = self.footprints() + (others or [])
        x_lo, x_hi = x_range[0] + radius + EDGE_MARGIN, x_range[1] - radius - EDGE_MARGIN
        y_lo, y_hi = y_range[0] + radius + EDGE_MARGIN, y_range[1] - radius - EDGE_MARGIN
        for _ in range(tries):
            x, y = self.rng.uniform(x_lo, x_hi), self.rng.uniform(y_lo, y_hi)
            if all(math.hypot(x - ox, y - oy) > radius + r + PLACE_MARGIN for ox, oy, r in taken):
                return float(x), float(y)
        raise LayoutError(f"no free spot of radius {radius:.3f} m")

    def footprints(self) -> list[tuple[float, float, float]]:
        """(x, y, bounding radius) of every object placed so far; flat marks (the sweeps'
        rectangle and line) take no room: objects may lie on them."""
        out = []
        for p in self.episode.objects:
            if shape(p.shape).kind == "marker":
                continue
            x, y, _, _ = self.sim.pose(p)
            out.append((float(x), float(y), shape(p.shape).radius))
        return out

    def add(
        self, shape_name: str, texture_name: str, role: str, *, xy=None, yaw=None, z: float = 0.0005
    ) -> Placed:
        """Put an object on the table at a free random spot (or ``xy``, at height ``z`` to rest
        on something) and record its role."""
        shp = shape(shape_name)
        if xy is None:
            xy = self.spot(shp.radius)
        if yaw is None:
            yaw = float(self.rng.uniform(-math.pi, math.pi))
        placed = self.sim.place(shape_name, texture_name, role, xy[0], xy[1], yaw, z)
        self.sim.forward()
        self.episode.objects.append(placed)
        return placed

    def add_distractor(
        self, shape_name: str, texture_name: str, eps: float = POS_EPS, *, fixed=()
    ) -> Placed:
        """A distractor at a spot clear of VIMA's distractor rule from the start: more than
        ``eps`` + ``CLEAR_SLACK`` from every goal object, base and point in ``fixed``."""
        r = shape(shape_name).radius
        clear = eps + CLEAR_SLACK
        keep = [
            (float(x), float(y), clear - r - PLACE_MARGIN)
            for p in self.episode.objects
            if p.role in ("dragged", "base")
            for x, y, _, _ in [self.sim.pose(p)]
        ]
        keep += [(float(x), float(y), clear - r - PLACE_MARGIN) for x, y in fixed]
        return self.add(shape_name, texture_name, "distractor", xy=self.spot(r, others=keep))

    def goals(self, *stages: list[Goal]) -> None:
        """Declare the episode's goals: stages in order, each a list met in any order."""
        self.episode.stages = [list(s) for s in stages if s]

    # ---- prompt images
    def object_image(self, placed: Placed, *, texture_name: str | None = None) -> PromptImage:
        """The object photographed alone (VIMA's object placeholder, at a fixed yaw), labelled
        with its description; ``texture_name`` overrides its look (e.g. neutral "gray")."""
        tex = texture_name or placed.texture
        return self.shot(placed.shape, tex)

    def shot(
        self, shape_name: str, texture_name: str, label: str | None = None, *, side: bool = False
    ) -> PromptImage:
        """A studio photo of any (shape, texture), in the scene or not (demos, gray images);
        ``side`` takes it from 45 degrees above the table instead of straight down (heights)."""
        img = self._images.object_image(shape_name, texture_name, math.pi / 2, side=side)
        return PromptImage(img, label or describe_pair(shape_name, texture_name))

    def scene_image(self, objects: list[Staged], label: str = "scene") -> PromptImage:
        """The top view of a scene made of ``objects`` only (not the workspace itself)."""
        return PromptImage(self._images.scene_image(objects), label)

    def staged(self, p: Placed, x=None, y=None, yaw=None, z: float = 0.0005) -> Staged:
        """``p`` as a :class:`Staged` object, at its current pose unless given another."""
        px, py, _, pyaw = self.sim.pose(p)
        return Staged(
            p.shape,
            p.texture,
            float(px if x is None else x),
            float(py if y is None else y),
            float(pyaw if yaw is None else yaw),
            z,
        )


def describe(placed: Placed) -> str:
    """Words for an object: "<texture> <shape>" (e.g. "red and yellow stripe letter T")."""
    return describe_pair(placed.shape, placed.texture)


def describe_pair(shape_name: str, texture_name: str) -> str:
    """Words for a (shape, texture) pair."""
    return f"{texture(texture_name).word} {shape(shape_name).word}"


class Task:
    """Base class: class attributes describe the task, methods implement it."""

    name: ClassVar[str]
    template: ClassVar[str]
    levels: ClassVar[tuple[str, ...]] = ()  # set from levels.LEVEL_TASKS at registration
    tool: ClassVar[str] = "suction"
    vima_max_steps: ClassVar[int]  # VIMA's step budget; episodes get two more
    copies: ClassVar[int] = 2  # pool copies per dragged shape (max objects sharing a shape)
    base_copies: ClassVar[int] = 1  # pool copies per base shape
    distractor_check: ClassVar[str] = "always"  # "always" | "at_end" (rearrange) | "never"
    needs_progress: ClassVar[bool] = False  # follow_*: every step must latch a goal

    def pool_copies(self, level: str) -> dict[str, int]:
        """{shape: copies} of pool bodies this task needs at ``level``."""
        out = {s: self.copies for s in level_shape_pool(level, "dragged")}
        out.update({s: self.base_copies for s in level_shape_pool(level, "base")})
        return out

    @property
    def primitive_max_steps(self) -> int:
        """Episode length in primitive mode: VIMA's max steps + 2 (its evaluation protocol)."""
        return self.vima_max_steps + 2

    def setup(self, ctx: SetupContext) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def prompt(self, ctx: SetupContext) -> list[Segment]:  # pragma: no cover - abstract
        raise NotImplementedError

    def oracle(self, sim: Sim, ep: Episode) -> Primitive | None:  # pragma: no cover - abstract
        raise NotImplementedError

    # ---- the shared rules
    def monitor(self, sim: Sim, ep: Episode) -> None:
        """Called every control period, during motion: tasks with a constraint that must hold
        all the time latch ``ep.violation`` here. Default: nothing to watch."""

    def update(self, sim: Sim, ep: Episode, event: bool) -> None:
        """After each step: latch the goals that are met (VIMA's ``update_goals``); ``event``
        says whether this step ends a placement (every primitive step does). Tasks with VIMA's
        "every step must make progress" rule fail a placement that latched nothing."""
        latch_goals(sim, ep)
        if event and self.needs_progress and ep.stages and not ep.progressed:
            ep.violation = ep.violation or "no progress"
        if event:
            ep.progressed = False

    def success(self, sim: Sim, ep: Episode) -> bool:
        """Every agent-visible goal latched."""
        return not any(g.visible for stage in ep.stages for g in stage)

    def failure(self, sim: Sim, ep: Episode) -> str | None:
        """VIMA's early failures: a latched violation, an unfinished goal object out of the
        workspace, the distractor rule, then the task's own rule."""
        if ep.violation is not None:
            return ep.violation
        pending = {g.obj for stage in ep.stages for g in stage if g.visible}
        for i in pending:
            x, y, z, _ = sim.pose(i)
            if (
                not (
                    WORKSPACE_X[0] <= x <= WORKSPACE_X[1] and WORKSPACE_Y[0] <= y <= WORKSPACE_Y[1]
                )
                or z < -0.02
            ):
                return "object left workspace"
        check = self.distractor_check == "always" or (
            self.distractor_check == "at_end" and self.success(sim, ep)
        )
        if check and sim.held is None and distractor_rule_broken(sim, ep):
            return "distractor rule"
        return self.extra_failure(sim, ep)

    def extra_failure(self, sim: Sim, ep: Episode) -> str | None:
        """A task's own early-failure rule (None: none)."""
        return None


# ---------------------------------------------------------------------- shared checks / oracle
def moved(sim: Sim, ep: Episode, p: Placed) -> float:
    """How far (m, in x-y) an object is from where the episode started it."""
    x, y, _, _ = sim.pose(p)
    sx, sy, _, _ = ep.start[p.pool_index]
    return math.hypot(x - sx, y - sy)


def at_rest(sim: Sim, p: Placed | int) -> bool:
    """Not held by the tool and not moving (a placement only counts once it has settled)."""
    i = p if isinstance(p, int) else p.pool_index
    return sim.held != i and sim.speed(i) < REST_SPEED


def target_xy(sim: Sim, g: Goal) -> tuple[float, float]:
    """Where goal ``g`` wants its object: a fixed point or a base's current position."""
    if isinstance(g.target, int):
        x, y, _, _ = sim.pose(g.target)
        return float(x), float(y)
    return g.target


def symmetric_error(delta: float, symmetry: float) -> float:
    """|delta| folded by the shape's symmetry (symmetry 0 = rotation-invariant shape)."""
    if symmetry <= 0:
        return 0.0
    r = delta % symmetry
    return min(r, symmetry - r)


def goal_reached(sim: Sim, ep: Episode, g: Goal) -> bool:
    """The geometric test of a goal: x-y within ``eps`` and, if asked, yaw within 15 degrees."""
    x, y, _, yaw = sim.pose(g.obj)
    tx, ty = target_xy(sim, g)
    if math.hypot(x - tx, y - ty) > g.eps:
        return False
    if g.yaw is None:
        return True
    sym = shape(ep.by_index(g.obj).shape).symmetry
    return symmetric_error(wrap_angle(float(yaw) - g.yaw), sym) <= YAW_TOL


def latch_goals(sim: Sim, ep: Episode) -> None:
    """Pop every goal of the current stage that is met by a released object at rest (VIMA's
    ``update_goals``); move on to the next stage when one empties."""
    while ep.stages:
        stage = ep.stages[0]
        met = [g for g in stage if at_rest(sim, g.obj) and goal_reached(sim, ep, g)]
        for g in met:
            stage.remove(g)
            ep.latched.append(g)
            ep.progressed = True
        if stage:
            return
        ep.stages.pop(0)


def distractor_rule_broken(sim: Sim, ep: Episode) -> bool:
    """VIMA's ``check_distractors``: a distractor within a goal's eps of its target, or a goal
    object within eps of a distractor."""
    goals = [g for g in ep.all_goals() if g.visible]
    for d in ep.with_role("distractor"):
        dx, dy, _, _ = sim.pose(d)
        for g in goals:
            tx, ty = target_xy(sim, g)
            if math.hypot(dx - tx, dy - ty) < g.eps:
                return True
            ox, oy, _, _ = sim.pose(g.obj)
            if math.hypot(dx - ox, dy - oy) < g.eps:
                return True
    return False


def pending(ep: Episode) -> list[Goal]:
    """The current stage's goals not yet met (oracle-only ones included)."""
    return list(ep.stages[0]) if ep.stages else []


def goal_oracle(sim: Sim, ep: Episode) -> Primitive | None:
    """VIMA's oracle for goals "object to a place": the next unmet goal of the current stage
    (oracle-only goals first, then interchangeable objects left to right as the top camera shows
    them), carried out as one pick-and-place. A container target is filled slot by slot."""
    todo = [g for g in pending(ep) if sim.held != g.obj and not goal_reached(sim, ep, g)]
    if not todo:
        return None
    hidden = [g for g in todo if not g.visible]
    if hidden:
        g = hidden[0]
    else:
        order = left_to_right(sim, [ep.by_index(g.obj) for g in todo])
        g = next(g for g in todo if g.obj == order[0].pool_index)
    p = ep.by_index(g.obj)
    if isinstance(g.target, int):
        base = ep.by_index(g.target)
        slot = sum(
            1 for h in ep.all_goals() if h.target == g.target and h is not g and h in ep.latched
        )
        return place_into(sim, p, base, slot)
    tx, ty = g.target
    yaw = next((v for v in (g.yaw, g.face) if v is not None), None)
    if yaw is None:
        yaw = float(sim.pose(p)[3])
    return pick_place(sim, p, tx, ty, yaw)


def grasp_point(sim: Sim, p: Placed) -> tuple[float, float, float]:
    """World (x, y) of the shape's suction point and the object's yaw."""
    x, y, _, yaw = sim.pose(p)
    gx, gy = shape(p.shape).grasp
    c, s = math.cos(yaw), math.sin(yaw)
    return x + c * gx - s * gy, y + s * gx + c * gy, float(yaw)


def pick_place(sim: Sim, p: Placed, x: float, y: float, yaw: float) -> Primitive:
    """The suction primitive that moves object ``p`` so its origin lands at (x, y) with ``yaw``.

    The cup picks at the shape's grasp point with cup yaw 0 and turns by the object's yaw change,
    so the grasp point is carried to where it will sit in the goal pose.
    """
    gx, gy, cur_yaw = grasp_point(sim, p)
    ox, oy = shape(p.shape).grasp
    c, s = math.cos(yaw), math.sin(yaw)
    tx, ty = x + c * ox - s * oy, y + s * ox + c * oy
    return Primitive("pick_place", gx, gy, 0.0, tx, ty, wrap_angle(yaw - cur_yaw))


def place_into(sim: Sim, p: Placed, base: Placed, slot: int) -> Primitive:
    """Put ``p`` into ``base`` at the container's ``slot``-th place (side by side), keeping its yaw."""
    inner = shape(base.shape).inner
    assert inner is not None
    off = inner.place_offsets[slot % len(inner.place_offsets)]
    bx, by, _, byaw = sim.pose(base)
    c, s = math.cos(byaw), math.sin(byaw)
    x, y = bx + c * off[0] - s * off[1], by + s * off[0] + c * off[1]
    _, _, _, yaw = sim.pose(p)
    # Turn the object so its long side lies across the slot axis (two objects fit side by side).
    return pick_place(sim, p, x, y, _align_yaw(p, byaw, float(yaw)))


def _align_yaw(p: Placed, base_yaw: float, cur_yaw: float) -> float:
    """The object's symmetric orientation closest to ``cur_yaw`` aligned with the base axes."""
    sym = shape(p.shape).symmetry or 2 * math.pi
    step = min(sym, math.pi / 2)
    k = round(wrap_angle(cur_yaw - base_yaw) / step)
    return wrap_angle(base_yaw + k * step)


def left_to_right(sim: Sim, objects: list[Placed]) -> list[Placed]:
    """``objects`` in the order a viewer of the top camera reads them: left to right (image
    left is world -y in VIMA's camera), top to bottom on a tie (image up is -x).

    Oracles that may move interchangeable objects in any order take them in this order. Spawn
    order is invisible to a policy: demonstrations that followed it picked either object 50/50
    from the policy's point of view, and the policy learnt to pick one object and place it at the
    other's goal. A rule it can see in the image makes every demonstration's choice learnable.
    """

    def reading_key(p: Placed) -> tuple[float, float]:
        x, y, _, _ = sim.pose(p)
        return round(y, 3), x

    return sorted(objects, key=reading_key)
