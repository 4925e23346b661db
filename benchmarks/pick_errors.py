"""Why a policy fails a pick-and-place task: which object each of its picks landed on.

Rolls a checkpoint out on the same evaluation seeds as ``uio2-robot rollout`` and, at every
step, reads from the simulator (privileged: a diagnosis, not something a robot could do) the
object nearest to the pick point. A failed episode is then a
**wrong pick** (some pick landed on a distractor: the policy chose the wrong object), a **miss**
(a pick farther than ``--near`` from every object, so nothing was lifted) or **other** (right
objects, misplaced). Used for the fine-tuning study (docs/finetuning.md): same_texture's
failures were wrong picks, not imprecise placing. It also prints, per left-to-right rank of the
distractor, how often the first pick took it: the suite's oracles take interchangeable objects
left to right, and a policy that learnt "start at the left" instead of the rule shows it there.

    python benchmarks/pick_errors.py --checkpoint runs/st/checkpoints/policy --task same_texture --level L4 --episodes 50

``--pick-from-head`` asks whether the encoder knows the right object when the decoder does not:
the pick tokens may then only name the observation patch that the pointing head (trained by
``mixture.point_weight``) scores highest, the way ``guide_place`` reads the place from the goal
scene. On same_texture it changed nothing (36/50 both ways, full fine-tune, seed 1): the head
confuses the same objects.
"""

from __future__ import annotations

import argparse
import collections
import json
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from uio2_robot.envs import make_env
from uio2_robot.envs.tasks.base import left_to_right
from uio2_robot.eval.rollout import evaluate
from uio2_robot.policies.factory import DEFAULT_POLICY_DIR, make_policy
from uio2_robot.policies.uio2 import UIO2Policy
from uio2_robot.runtime.guidance import PICK_DIMS, patch_bins
from uio2_robot.seeding import EVAL_SEED_BASE
from uio2_robot.train.batching import encoder_inputs_from_numpy


class PickSpy(gym.Wrapper):
    """Records, per step, the role of the object nearest the pick ("nothing" beyond ``near``)
    and the roles of the objects other than the base in the order the oracle reads them (left
    to right in the top view), to tell a wrong object from a wrong side."""

    def __init__(self, env: gym.Env, near: float, log: list[dict[str, Any]]) -> None:
        super().__init__(env)
        self.near, self.log = near, log

    def reset(self, **kwargs: Any) -> Any:
        out = super().reset(**kwargs)
        objects = self.env.unwrapped.episode.objects
        self.log.append({"textures": {o.role: o.texture for o in objects}, "steps": []})
        return out

    def step(self, action: Any) -> Any:
        u = self.env.unwrapped
        objects = u.episode.objects
        xy = np.array([u.sim.pose(o)[:2] for o in objects])
        dist = np.linalg.norm(xy - np.asarray(action, dtype=float)[:2], axis=1)
        nearest = int(np.argmin(dist))
        pick = objects[nearest].role if dist[nearest] <= self.near else "nothing"
        movable = [o for o in objects if o.role != "base"]
        order = left_to_right(u.sim, movable)
        self.log[-1]["steps"].append({"pick": pick, "left_to_right": [o.role for o in order]})
        return super().step(action)


class HeadPickPolicy(UIO2Policy):
    """Greedy decoding with the pick (x0, y0) held to the pointing head's top patch (plus
    ``guide_margin`` bins); every other token as the decoder chooses (no scene-guided placement).
    Prefix models only."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cfg = self.model.cfg
        if self.model.point_head is None or not cfg.prompt_prefix:
            raise ValueError(
                "--pick-from-head needs a prefix-encoding model with pointing heads "
                f"(prompt_prefix={cfg.prompt_prefix}, point_heads={cfg.point_heads})"
            )

    @torch.no_grad()
    def plan_tokens(self, obs: Any) -> np.ndarray:
        model, processor = self.model, self.processor
        inputs = encoder_inputs_from_numpy(self.encoder_arrays(obs), self.device)
        if self._prompt_cache is None:
            self._prompt_cache, _ = model.encode_prompt(
                model.embed_prompt(*inputs.prompt_tensors())
            )
        step = model.embed_step(
            inputs.obs_images, inputs.history_images, inputs.history_mask, inputs.proprio
        )
        hidden = model.encode_step(self._prompt_cache, step)[3]
        patch = int(model.point_head(hidden[:, : model.cfg.n_patches])[0, :, 0].argmax())
        n_tokens = processor.n_action_tokens(self._mode)
        allowed = torch.zeros((n_tokens, model.cfg.vocab_size), dtype=torch.bool)
        allowed[:, torch.from_numpy(processor.allowed_action_ids(self._mode))] = True
        first = processor.action_tokenizer("primitive").first_bin_id
        # patch_bins reads the place's bins; the pick's (x0, y0) share their range (the contract)
        masks = patch_bins(processor, patch, model.cfg.grid_hw, self.guide_margin)
        for dim, mask in zip(PICK_DIMS, masks, strict=True):
            in_patch = torch.zeros(model.cfg.vocab_size, dtype=torch.bool)
            in_patch[first + np.flatnonzero(mask)] = True
            allowed[dim] &= in_patch
        tokens = model.generate(
            inputs,
            n_tokens,
            allowed=allowed,
            bos_id=processor.vocab.bos_id,
            prompt=self._prompt_cache,
        )
        return tokens[0].cpu().numpy()


def classify(success: bool, steps: list[dict[str, Any]]) -> str:
    picks = [s["pick"] for s in steps]
    if success:
        return "success"
    if "distractor" in picks:
        return "wrong pick"
    if "nothing" in picks:
        return "miss"
    return "other"


def first_by_rank(rows: list[dict[str, Any]]) -> dict[int, str]:
    """Per left-to-right rank of the distractor at the first step: how often it was picked
    first ("picked/episodes"). A policy that compares objects picks it about as rarely at every
    rank; one that learnt "start at the left" picks it most when it is leftmost."""
    seen: dict[int, list[int]] = {}
    for r in rows:
        if not r["steps"] or "distractor" not in r["steps"][0]["left_to_right"]:
            continue
        first = r["steps"][0]
        counts = seen.setdefault(first["left_to_right"].index("distractor"), [0, 0])
        counts[0] += first["pick"] == "distractor"
        counts[1] += 1
    return {rank: f"{k}/{n}" for rank, (k, n) in sorted(seen.items())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", help="a checkpoint folder; none: the shipped policy")
    ap.add_argument("--task", default="same_texture")
    ap.add_argument("--level", default="L4")
    ap.add_argument("--episodes", type=int, default=50)
    ap.add_argument("--seed", type=int, default=EVAL_SEED_BASE)
    ap.add_argument("--near", type=float, default=0.04, help="m: a pick this close hits an object")
    ap.add_argument("--json", help="write every episode's picks here")
    ap.add_argument(
        "--pick-from-head", action="store_true", help="pick in the pointing head's top patch"
    )
    args = ap.parse_args()
    if args.pick_from_head:
        policy = HeadPickPolicy.from_checkpoint(args.checkpoint or str(DEFAULT_POLICY_DIR))
    else:
        policy = make_policy("uio2" if args.checkpoint else "default", checkpoint=args.checkpoint)
    log: list[dict[str, Any]] = []

    def build(task: str, level: str) -> gym.Env:
        env = make_env(task, level, action_mode="primitive", cameras=("front", "top"))
        return PickSpy(env, args.near, log)

    report = evaluate(
        policy,
        build,
        [args.task],
        {args.task: [args.level]},
        episodes=args.episodes,
        seed=args.seed,
        n_videos=0,
        progress=False,
    )
    rows = []
    for ep, result in zip(log, report.episodes, strict=True):
        rows.append({"seed": result.seed, "kind": classify(result.success, ep["steps"]), **ep})
    counts = collections.Counter(r["kind"] for r in rows)
    print(json.dumps({"episodes": len(rows), **counts}))
    print(
        json.dumps({"first pick on the distractor, by its left-to-right rank": first_by_rank(rows)})
    )
    for r in rows:
        if r["kind"] != "success":
            print(r["seed"], r["kind"], [s["pick"] for s in r["steps"]], r["textures"])
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
