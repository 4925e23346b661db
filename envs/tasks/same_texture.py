"""same_texture: "Put all objects with the same texture as {base_obj} into it." (VIMA, L4 only).

Held out from training: it is evaluated only at L4 to measure generalisation to a new task. The
container and two dragged objects share a texture; the distractor has another and must stay.
"""

from __future__ import annotations

from .base import FillBaseTask, Segment, SetupContext

N_DRAGGED = 2


class SameTexture(FillBaseTask):
    name = "same_texture"
    template = "Put all objects with the same texture as {base_obj} into it."
    levels = ("L4",)
    vima_max_steps = N_DRAGGED + 2  # VIMA: n + 2
    copies = 3

    def setup(self, ctx: SetupContext) -> None:
        base_s, tex = ctx.choose(ctx.pairs("base"))
        ctx.add(base_s, tex, "base")
        used: list[tuple[str, str]] = []
        for _ in range(N_DRAGGED):
            pair = ctx.choose(ctx.pairs("dragged", textures=[tex], avoid=used))
            used.append(pair)
            ctx.add(*pair, "dragged")
        ctx.add(*ctx.choose([p for p in ctx.pairs("dragged") if p[1] != tex]), "distractor")
        ctx.episode.params["texture"] = tex

    def prompt(self, ctx: SetupContext) -> list[Segment]:
        return [
            "Put all objects with the same texture as ",
            ctx.object_image(ctx.episode.one("base")),
            " into it.",
        ]
