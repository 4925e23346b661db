"""What every task module provides, and the helpers they share.

A task is a small class with:
- ``setup(ctx)``: sample the objects for a level and put them on the table (reset distribution);
- ``prompt(ctx)``: the interleaved text-and-image prompt from its template;
- ``success(sim, ep)`` and ``failure(sim, ep)``: VIMA's binary success and early-failure checks;
- ``oracle(sim, ep)``: the next VIMA primitive from privileged state (None when nothing is left).

Shared tolerances, in one place so their meaning is documented once:
- "into a container": the object's origin (footprint centre) lies in the container's inner
  region (VIMA checks that the dragged object is within the base's footprint), the object is not
  held and has come to rest (< ``REST_SPEED``);
- a distractor is "disturbed" when it moved more than ``DISTRACTOR_TOL`` from where it started;
- an object "left the workspace" when its centre is more than ``WORKSPACE_SLACK`` outside VIMA's
  workspace bounds or it fell below the table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from uio2_robot.contracts import wrap_angle
from uio2_robot.motion.primitive import Primitive

from ..levels import level_shapes, object_pairs
from ..shapes import shape
from ..sim import Placed, Sim
from ..spaces import WORKSPACE_X, WORKSPACE_Y
from ..textures import texture

REST_SPEED = 0.05  # m/s
DISTRACTOR_TOL = 0.03  # m
WORKSPACE_SLACK = 0.02  # m
PLACE_MARGIN = 0.012  # m of free space kept between sampled objects
EDGE_MARGIN = 0.02  # m kept between an object's bounding circle and the workspace edge


class LayoutError(RuntimeError):
    """The sampler could not fit the objects; the env redraws the episode from the same RNG."""


@dataclass
class PromptImage:
    """An image segment of a prompt and the words its placeholder stands for."""

    image: np.ndarray  # (h, w, 3) uint8
    label: str  # e.g. "red block" -> rendered as "{red block}" in the plain-text prompt


Segment = str | PromptImage


@dataclass
class Episode:
    """One episode's sampled content and bookkeeping."""

    task: str
    level: str
    seed: int
    objects: list[Placed] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    start: dict[int, np.ndarray] = field(default_factory=dict)  # pool index -> (x, y, z, yaw)

    def with_role(self, role: str) -> list[Placed]:
        """The objects that play ``role`` ("dragged", "base", "distractor", ...)."""
        return [p for p in self.objects if p.role == role]

    def one(self, role: str) -> Placed:
        """The single object with ``role``."""
        found = self.with_role(role)
        if len(found) != 1:
            raise AssertionError(f"expected one {role!r} object, found {len(found)}")
        return found[0]


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

    def pairs(self, kind: str, *, shapes=None, textures=None, avoid=()) -> list[tuple[str, str]]:
        """Level-allowed (shape, texture) pairs of ``kind`` filtered by shape/texture sets.

        ``avoid`` lists pairs that must not be drawn (objects must look different).
        """
        out = []
        for s, t in object_pairs(self.level, kind):
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
    ) -> tuple[float, float]:
        """A random (x, y) in the workspace whose circle of ``radius`` overlaps nothing placed."""
        taken = self.footprints() + (others or [])
        x_lo, x_hi = WORKSPACE_X[0] + radius + EDGE_MARGIN, WORKSPACE_X[1] - radius - EDGE_MARGIN
        y_lo, y_hi = WORKSPACE_Y[0] + radius + EDGE_MARGIN, WORKSPACE_Y[1] - radius - EDGE_MARGIN
        for _ in range(tries):
            x, y = self.rng.uniform(x_lo, x_hi), self.rng.uniform(y_lo, y_hi)
            if all(math.hypot(x - ox, y - oy) > radius + r + PLACE_MARGIN for ox, oy, r in taken):
                return float(x), float(y)
        raise LayoutError(f"no free spot of radius {radius:.3f} m")

    def footprints(self) -> list[tuple[float, float, float]]:
        """(x, y, bounding radius) of every object placed so far."""
        out = []
        for p in self.episode.objects:
            x, y, _, _ = self.sim.pose(p)
            out.append((float(x), float(y), shape(p.shape).radius))
        return out

    def add(self, shape_name: str, texture_name: str, role: str, *, xy=None, yaw=None) -> Placed:
        """Put an object on the table at a free random spot (or ``xy``) and record its role."""
        shp = shape(shape_name)
        if xy is None:
            xy = self.spot(shp.radius)
        if yaw is None:
            yaw = float(self.rng.uniform(-math.pi, math.pi))
        placed = self.sim.place(shape_name, texture_name, role, xy[0], xy[1], yaw)
        self.sim.forward()
        self.episode.objects.append(placed)
        return placed

    # ---- prompt images
    def object_image(self, placed: Placed) -> PromptImage:
        """The object photographed alone, with its description as the placeholder label."""
        return PromptImage(self._images.object_image(placed), describe(placed))

    def scene_image(
        self, label: str = "top scene", poses: dict[int, tuple] | None = None
    ) -> PromptImage:
        """The whole scene from the top camera, optionally with objects moved to ``poses``."""
        return PromptImage(self._images.scene_image(poses), label)


def describe(placed: Placed) -> str:
    """Words for an object: "<texture> <shape>" (e.g. "red and yellow stripe letter T")."""
    return f"{texture(placed.texture).word} {shape(placed.shape).word}"


class Task:
    """Base class: class attributes describe the task, methods implement it."""

    name: ClassVar[str]
    template: ClassVar[str]
    levels: ClassVar[tuple[str, ...]] = ("L1", "L2", "L3")
    tool: ClassVar[str] = "suction"
    vima_max_steps: ClassVar[int]  # VIMA's step budget; episodes get two more
    copies: ClassVar[int] = 2  # pool copies per dragged shape (max objects sharing a shape)

    def pool_copies(self, level: str) -> dict[str, int]:
        """{shape: copies} of pool bodies this task needs at ``level``."""
        out = {s: self.copies for s in level_shapes(level, "dragged")}
        out.update({s: 1 for s in level_shapes(level, "base")})
        return out

    @property
    def primitive_max_steps(self) -> int:
        """Episode length in primitive mode: VIMA's max steps + 2 (its evaluation protocol)."""
        return self.vima_max_steps + 2

    def setup(self, ctx: SetupContext) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def prompt(self, ctx: SetupContext) -> list[Segment]:  # pragma: no cover - abstract
        raise NotImplementedError

    def success(self, sim: Sim, ep: Episode) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def oracle(self, sim: Sim, ep: Episode) -> Primitive | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def failure(self, sim: Sim, ep: Episode) -> str | None:
        """Early failure shared by all tasks: an object left the workspace or a distractor moved."""
        for p in ep.objects:
            if p.role in ("bounds", "constraint"):
                continue
            x, y, z, _ = sim.pose(p)
            if (
                x < WORKSPACE_X[0] - WORKSPACE_SLACK
                or x > WORKSPACE_X[1] + WORKSPACE_SLACK
                or y < WORKSPACE_Y[0] - WORKSPACE_SLACK
                or y > WORKSPACE_Y[1] + WORKSPACE_SLACK
                or z < -0.02
            ):
                return "object left workspace"
        for p in ep.with_role("distractor"):
            if moved(sim, ep, p) > DISTRACTOR_TOL:
                return "distractor disturbed"
        return None


# ---------------------------------------------------------------------- shared checks / oracle
def moved(sim: Sim, ep: Episode, p: Placed) -> float:
    """How far (m, in x-y) an object is from where the episode started it."""
    x, y, _, _ = sim.pose(p)
    sx, sy, _, _ = ep.start[p.pool_index]
    return math.hypot(x - sx, y - sy)


def at_rest(sim: Sim, p: Placed) -> bool:
    """Not held by the tool and not moving (a placement only counts once it has settled)."""
    return sim.held != p.pool_index and sim.speed(p) < REST_SPEED


def in_container(sim: Sim, obj: Placed, base: Placed) -> bool:
    """Whether ``obj``'s footprint centre lies in ``base``'s inner region (VIMA's "into")."""
    inner = shape(base.shape).inner
    assert inner is not None, f"{base.shape} is not a container"
    ox, oy, _, _ = sim.pose(obj)
    bx, by, _, byaw = sim.pose(base)
    c, s = math.cos(byaw), math.sin(byaw)
    dx, dy = ox - bx, oy - by
    return inner.contains(c * dx + s * dy, -s * dx + c * dy)


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
    left is world +y), top to bottom on a tie (image up is +x).

    Oracles that may move interchangeable objects in any order take them in this order. Spawn
    order is invisible to a policy: demonstrations that followed it picked either object 50/50
    from the policy's point of view, and the policy learnt to pick one object and place it at the
    other's goal. A rule it can see in the image makes every demonstration's choice learnable.
    """

    def reading_key(p: Placed) -> tuple[float, float]:
        x, y, _, _ = sim.pose(p)
        return -round(y, 3), -x

    return sorted(objects, key=reading_key)


def fill_container(sim: Sim, ep: Episode, targets: list[Placed], base: Placed) -> Primitive | None:
    """Oracle for "put all of these into the base": the leftmost target not in yet."""
    inside = [p for p in targets if in_container(sim, p, base)]
    for p in left_to_right(sim, targets):
        if p not in inside:
            return place_into(sim, p, base, len(inside))
    return None


class FillBaseTask(Task):
    """Tasks whose goal is "every dragged object rests inside the one base" (same_shape,
    same_texture): they differ only in which objects are dragged and how the prompt names them."""

    def success(self, sim: Sim, ep: Episode) -> bool:
        base = ep.one("base")
        return all(at_rest(sim, p) and in_container(sim, p, base) for p in ep.with_role("dragged"))

    def oracle(self, sim: Sim, ep: Episode) -> Primitive | None:
        return fill_container(sim, ep, ep.with_role("dragged"), ep.one("base"))
