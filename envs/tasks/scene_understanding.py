"""scene_understanding: "Put the {texture} object in {scene} into the {texture} object." (L1-L3).

The scene image shows the table from the top camera; the two objects are named by texture only,
so the policy must ground the words in the picture. Distractors have other textures, which
keeps the reference unambiguous.
"""

from __future__ import annotations

from uio2_robot.motion.primitive import Primitive

from ..sim import Sim
from ..textures import texture
from .base import Episode, Segment, SetupContext, Task, at_rest, in_container, place_into


class SceneUnderstanding(Task):
    name = "scene_understanding"
    template = "Put the {dragged_texture} object in {scene} into the {base_texture} object."
    vima_max_steps = 3
    copies = 3

    def setup(self, ctx: SetupContext) -> None:
        base_s, base_t = ctx.choose(ctx.pairs("base"))
        ctx.add(base_s, base_t, "base")
        drag = ctx.choose([p for p in ctx.pairs("dragged") if p[1] != base_t])
        ctx.add(*drag, "dragged")
        used = {base_t, drag[1]}
        for _ in range(int(ctx.rng.integers(1, 3))):
            pair = ctx.choose([p for p in ctx.pairs("dragged") if p[1] not in used])
            used.add(pair[1])
            ctx.add(*pair, "distractor")

    def prompt(self, ctx: SetupContext) -> list[Segment]:
        ep = ctx.episode
        dragged_word = texture(ep.one("dragged").texture).word
        base_word = texture(ep.one("base").texture).word
        return [
            f"Put the {dragged_word} object in ",
            ctx.scene_image("top scene"),
            f" into the {base_word} object.",
        ]

    def success(self, sim: Sim, ep: Episode) -> bool:
        obj, base = ep.one("dragged"), ep.one("base")
        return at_rest(sim, obj) and in_container(sim, obj, base)

    def oracle(self, sim: Sim, ep: Episode) -> Primitive | None:
        obj, base = ep.one("dragged"), ep.one("base")
        if in_container(sim, obj, base):
            return None
        return place_into(sim, obj, base, 0)
