"""same_shape: "Put all objects with the same profile as {base_obj} into it." (VIMA, L1-L3).

Every shape has a profile, "square" or "circle" (VIMA's square-like / circle-like grouping).
The scene holds one container, two dragged objects whose profile matches the container's, and a
distractor with the other profile that must not be moved.
"""

from __future__ import annotations

from ..shapes import shape
from .base import FillBaseTask, Segment, SetupContext

N_DRAGGED = 2


class SameShape(FillBaseTask):
    name = "same_shape"
    template = "Put all objects with the same profile as {base_obj} into it."
    vima_max_steps = 4
    copies = 3

    def setup(self, ctx: SetupContext) -> None:
        base = ctx.add(*ctx.choose(ctx.pairs("base")), "base")
        profile = shape(base.shape).profile
        same = [p for p in ctx.pairs("dragged") if shape(p[0]).profile == profile]
        other = [p for p in ctx.pairs("dragged") if shape(p[0]).profile != profile]
        used: list[tuple[str, str]] = []
        for _ in range(N_DRAGGED):
            pair = ctx.choose([p for p in same if p not in used])
            used.append(pair)
            ctx.add(*pair, "dragged")
        ctx.add(*ctx.choose(other), "distractor")
        ctx.episode.params["profile"] = profile

    def prompt(self, ctx: SetupContext) -> list[Segment]:
        return [
            "Put all objects with the same profile as ",
            ctx.object_image(ctx.episode.one("base")),
            " into it.",
        ]
