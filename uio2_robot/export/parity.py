"""Torch vs onnxruntime parity of a deploy bundle, open loop and closed loop.

Open loop (``check_parity``): both policies see the same recorded observations (suite episodes
driven by the scripted oracle when the sim is installed, synthetic frames otherwise). At every
step the encoder inputs are built once, by the ONNX policy's own prompt/history code, and both
networks decode the action tokens greedily under the same constraint; the report gives the
share of steps whose tokens are all identical, the share of identical tokens, whether the two
*policies* (queue, clipping and all) returned identical actions, and the largest difference of
the logits decoding may pick from (the action bins). fp32 must agree on every step; int8 on at
least 99%.

Closed loop (``compare_closed_loop``): both policies run the same seeded episodes through
``uio2_robot.eval.rollout.evaluate``; the ONNX success rate must fall inside the torch policy's
95% Wilson interval. This needs a trained checkpoint to say anything.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces

from uio2_robot.policies.base import Observation, PromptSegment
from uio2_robot.runtime.manifest import load_bundle, sha256_file
from uio2_robot.tokenize.processor import Processor

PARITY_THRESHOLDS = {"fp32": 1.0, "int8": 0.99, "fp16": 0.99}
"""Minimum share of control steps whose action tokens must all match torch, per variant."""

NEAR_TIE = 0.1
"""A step is a near tie when some token's best two allowed torch logits lie closer than this
(in logits): HL-Gauss action heads put neighbouring bins this close whenever the action falls
near a bin edge, and reduced precision flips exactly those. The report gives the agreement on
the other steps apart, so a flip on a clear decision (a real fault) cannot hide among them."""


def min_margin(logits: np.ndarray, allowed: np.ndarray) -> float:
    """The smallest gap between the best and second-best allowed logit over a step's tokens:
    logits (n, V), allowed (V,) bool."""
    top2 = np.sort(np.where(allowed, logits, -np.inf), axis=-1)[:, -2:]
    return float((top2[:, 1] - top2[:, 0]).min())


@dataclass
class RecordedEpisode:
    """A prompt, the action space and the observations an episode produced, in order."""

    prompt: list[PromptSegment]
    action_space: spaces.Box
    observations: list[Observation] = field(default_factory=list)
    label: str = ""


# ---------------------------------------------------------------------------- observations


def synthetic_episodes(
    processor: Processor,
    n_episodes: int = 2,
    steps: int = 4,
    seed: int = 0,
    action_mode: str = "primitive",
) -> list[RecordedEpisode]:
    """Random camera frames and proprio with a short image-and-text prompt.

    Used when the sim suite is not installed. Frames are twice the model's input size so the
    resize path runs as it would on real cameras (a cropping processor gets frames of the size
    its crops were defined on). With prompt scenes (``processor.max_prompt_scenes``), every other
    episode's first prompt image is a camera frame, i.e. a scene.
    """
    from uio2_robot.envs.spaces import action_space

    rng = np.random.default_rng(seed)
    if processor.frame_size is not None:
        h, w = (v // 2 for v in processor.frame_size)
    else:
        h, w = processor.image_size
    episodes = []
    for e in range(n_episodes):
        prompt: list[PromptSegment] = ["put "]
        if processor.max_prompt_images > 0:
            scene = processor.max_prompt_scenes > 0 and e % 2 == 0
            size = (2 * h, 2 * w) if scene else (24, 24)
            prompt.append(rng.integers(0, 256, (*size, 3), dtype=np.uint8))
        prompt.append(" in ")
        if processor.max_prompt_images > 1:
            prompt.append(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8))
        observations = []
        for _ in range(steps):
            obs: Observation = {
                key: rng.integers(0, 256, (2 * h, 2 * w, 3), dtype=np.uint8)
                for key in processor.camera_keys
            }
            obs[processor.proprio_key] = rng.normal(size=processor.proprio_dim).astype(np.float32)
            observations.append(obs)
        episodes.append(
            RecordedEpisode(prompt, action_space(action_mode), observations, f"synthetic/{e}")
        )
    return episodes


def suite_episodes(
    n_episodes: int = 2,
    max_steps: int = 4,
    seed: int = 0,
    tasks: Sequence[str] | None = None,
    level: str = "L1",
    action_mode: str = "primitive",
    driver: str = "oracle",
) -> list[RecordedEpisode]:
    """Roll out ``driver`` (the scripted oracle) on the sim suite, recording what it saw.

    Episodes cycle through ``tasks`` (default: every suite task that has ``level``), so the
    observations cover several scenes and prompts. Raises ImportError when the suite
    (``uio2_robot.envs.make_env``) is not available.
    """
    os.environ.setdefault("MUJOCO_GL", "egl")
    from uio2_robot.envs import TASKS, levels_for, make_env  # ImportError without the suite
    from uio2_robot.eval.rollout import run_episode
    from uio2_robot.policies.factory import make_policy
    from uio2_robot.seeding import episode_seed

    try:
        policy = make_policy(driver, seed=seed)
    except ImportError:  # no scripted oracle yet: random actions still give varied frames
        driver = "random"
        policy = make_policy(driver, seed=seed)
    if tasks is None:
        tasks = [t for t in TASKS if level in levels_for(t)]
    episodes = []
    for i in range(n_episodes):
        task = tasks[i % len(tasks)]
        env = make_env(task, level, action_mode=action_mode)
        try:
            ep_seed = episode_seed(seed, task, level, i)
            observations: list[dict] = []
            run = run_episode(
                env,
                policy,
                ep_seed,
                max_steps=max_steps,
                on_step=lambda obs, *_, seen=observations: seen.append(obs),
            )[1]
            prompt = list(run.reset_info["prompt"])
            name = f"{task}/{level}/{ep_seed}/{driver}"
            episodes.append(RecordedEpisode(prompt, env.action_space, observations, name))
        finally:
            env.close()
    return episodes


def record_episodes(
    processor: Processor,
    n_episodes: int = 2,
    max_steps: int = 4,
    seed: int = 0,
    use_suite: bool = True,
    **suite_kwargs: Any,
) -> tuple[list[RecordedEpisode], str]:
    """Suite episodes if the sim is installed (and ``use_suite``), else synthetic ones; also
    returns which was used ("suite" or "synthetic: <reason>")."""
    if use_suite:
        try:
            return suite_episodes(n_episodes, max_steps, seed, **suite_kwargs), "suite"
        except ImportError as exc:
            reason = f"sim suite unavailable ({exc})"
    else:
        reason = "use_suite=False"
    mode = suite_kwargs.get("action_mode", "primitive")
    episodes = synthetic_episodes(processor, n_episodes, max_steps, seed, mode)
    return episodes, f"synthetic: {reason}"


# ---------------------------------------------------------------------------- torch reference


def torch_greedy(
    model: Any, arrays: dict[str, np.ndarray], n_tokens: int, allowed: np.ndarray, bos_id: int
) -> tuple[np.ndarray, np.ndarray]:
    """Torch's greedy constrained decoding (``UIO2Model.greedy_decode``, the function the
    bundle's decoder_greedy graph was exported from) over the whole-sequence encoder: tokens
    (B, n) and the raw logits (B, n, V)."""
    import torch

    from uio2_robot.model.inputs import encoder_inputs_from_numpy

    with torch.no_grad():
        inputs = encoder_inputs_from_numpy(arrays)
        enc = model.encode(inputs)
        cross_k, cross_v = model.precompute_cross_kv(enc.hidden, enc.positions, enc.rope_2d)
        tokens, logits = model.greedy_decode(
            cross_k, cross_v, enc.mask, torch.from_numpy(allowed), n_tokens, int(bos_id)
        )
        return tokens.numpy(), logits.float().numpy()


# ---------------------------------------------------------------------------- open loop


def check_parity(
    checkpoint: str | Path,
    bundle: str | Path,
    episodes: list[RecordedEpisode] | None = None,
    n_episodes: int = 2,
    max_steps: int = 4,
    seed: int = 0,
    use_suite: bool = True,
    providers: Sequence[str] | None = None,
    threads: int = 0,
) -> dict[str, Any]:
    """Compare the checkpoint (torch) and the bundle (onnxruntime) on recorded observations.

    Returns a JSON-ready report; ``passed`` is True when the share of steps with identical
    tokens reaches ``PARITY_THRESHOLDS[variant]`` and the policies' actions agree as often.
    """
    from uio2_robot.policies.onnx_policy import OnnxPolicy
    from uio2_robot.policies.uio2 import UIO2Policy

    loaded = load_bundle(bundle)
    exported_from = loaded.manifest.get("source_checkpoint", {}).get("weights_sha256")
    if exported_from and exported_from != sha256_file(Path(checkpoint) / "model.safetensors"):
        raise ValueError(
            f"{checkpoint} no longer holds the weights {bundle} was exported from (sha256 "
            f"{exported_from[:12]}...); a training run may have overwritten it since: re-export"
        )
    torch_policy = UIO2Policy.from_checkpoint(checkpoint)
    onnx_policy = OnnxPolicy(loaded, providers=providers, threads=threads)
    processor = torch_policy.processor
    if processor != loaded.processor:
        raise ValueError(
            f"the bundle {bundle} carries another processor than the checkpoint {checkpoint}: "
            "they were not exported from each other"
        )
    source = "given"
    if episodes is None:
        episodes, source = record_episodes(processor, n_episodes, max_steps, seed, use_suite)
    model = torch_policy.model
    bos = processor.vocab.bos_id
    steps = same_steps = same_tokens = n_tokens_total = same_actions = near_steps = 0
    clear_steps = same_clear_steps = 0
    max_diff, diffs = 0.0, []
    for episode in episodes:
        torch_policy.reset(episode.prompt, episode.action_space)
        onnx_policy.reset(episode.prompt, episode.action_space)
        mode = onnx_policy.action_mode
        n_tok = processor.n_action_tokens(mode)
        allowed = np.zeros(model.cfg.vocab_size, dtype=bool)
        allowed[processor.allowed_action_ids(mode)] = True
        runner = onnx_policy.runner
        prompt = None
        for obs in episode.observations:
            arrays = onnx_policy.encoder_arrays(obs)
            t_tokens, t_logits = torch_greedy(model, arrays, n_tok, allowed, bos)
            if runner.has_prompt_cache and prompt is None:
                prompt = runner.encode_prompt(arrays)  # the path the ONNX policy runs
            o_tokens, o_logits = runner.generate(
                arrays, n_tok, allowed, return_logits=True, prompt=prompt
            )
            equal = t_tokens[0] == o_tokens[0]
            # logits are comparable up to and including the first divergent token (same prefix)
            upto = n_tok if equal.all() else int(np.argmin(equal)) + 1
            # over the ids decoding may emit (the ONNX greedy graph computes only those)
            diff = np.abs(t_logits[0, :upto][:, allowed] - o_logits[0, :upto][:, allowed])
            max_diff = max(max_diff, float(diff.max()))
            diffs.append(float(diff.mean()))
            steps += 1
            same_steps += int(equal.all())
            # bins are consecutive ids: a near-tie flips a token to the neighbouring bin
            near_steps += int((np.abs(t_tokens[0] - o_tokens[0]) <= 1).all())
            if min_margin(t_logits[0], allowed) >= NEAR_TIE:
                clear_steps += 1
                same_clear_steps += int(equal.all())
            same_tokens += int(equal.sum())
            n_tokens_total += n_tok
            # the policies themselves, end to end (history, queue, decoding, clipping)
            same_actions += int(np.array_equal(torch_policy.act(obs), onnx_policy.act(obs)))
    if steps == 0:
        raise ValueError("no observations to compare: every recorded episode is empty")
    threshold = PARITY_THRESHOLDS[loaded.variant]
    step_agreement = same_steps / steps
    action_agreement = same_actions / steps
    return {
        "variant": loaded.variant,
        "model_hash": loaded.model_hash,
        "checkpoint": str(checkpoint),
        "bundle": str(bundle),
        "observations": source,
        "encoder_path": "prompt_encoder + step_encoder"
        if onnx_policy.runner.has_prompt_cache
        else "encoder",
        "episodes": len(episodes),
        "episode_labels": [e.label for e in episodes],
        "steps": steps,
        "tokens": n_tokens_total,
        "step_agreement": step_agreement,
        "token_agreement": same_tokens / n_tokens_total,
        "action_agreement": action_agreement,
        # share of steps whose every token is torch's bin or a neighbour (one bin = the action
        # range / n_bins): what an int8 near-tie flip costs, as opposed to a wrong action
        "within_one_bin": near_steps / steps,
        # steps where every torch token won by >= NEAR_TIE logits, and the agreement on those
        "clear_steps": clear_steps / steps,
        "clear_step_agreement": same_clear_steps / clear_steps if clear_steps else None,
        "near_tie": NEAR_TIE,
        "max_logit_diff": max_diff,
        "mean_logit_diff": float(np.mean(diffs)),
        "threshold": threshold,
        "providers": onnx_policy.providers,
        "passed": bool(step_agreement >= threshold and action_agreement >= threshold),
    }


# ---------------------------------------------------------------------------- closed loop


def compare_closed_loop(
    checkpoint: str | Path,
    bundle: str | Path,
    tasks: Sequence[str],
    levels: Sequence[str],
    episodes: int,
    seed: int | None = None,
    action_mode: str = "primitive",
    image_size: int = 128,
    providers: Sequence[str] | None = None,
    threads: int = 0,
    progress: bool = False,
) -> dict[str, Any]:
    """Success of the torch and ONNX policies on the same seeded suite episodes.

    ``onnx_within_torch_ci`` is the check: the ONNX policy's overall success rate lies inside
    the 95% Wilson interval of the torch policy's. ``same_outcome`` is the share of episodes
    (same seed) that both policies succeed or fail together.
    """
    os.environ.setdefault("MUJOCO_GL", "egl")
    from uio2_robot.envs import make_env
    from uio2_robot.envs.levels import resolve_levels
    from uio2_robot.eval.rollout import evaluate
    from uio2_robot.eval.stats import wilson_interval
    from uio2_robot.policies.onnx_policy import OnnxPolicy
    from uio2_robot.policies.uio2 import UIO2Policy
    from uio2_robot.seeding import EVAL_SEED_BASE

    seed = EVAL_SEED_BASE if seed is None else int(seed)
    levels_by_task = resolve_levels(list(tasks), list(levels))

    def build(task: str, level: str) -> Any:
        return make_env(task, level, action_mode=action_mode, image_size=image_size)

    policies = {
        "torch": UIO2Policy.from_checkpoint(checkpoint),
        "onnx": OnnxPolicy(bundle, providers=providers, threads=threads),
    }
    reports = {}
    for name, policy in policies.items():
        policy.check_eval_seeds(seed, levels_by_task, episodes)
        reports[name] = evaluate(
            policy,
            build,
            list(levels_by_task),
            levels_by_task,
            episodes=episodes,
            seed=seed,
            policy_name=name,
            action_mode=action_mode,
            progress=progress,
        )
    summary: dict[str, Any] = {}
    for name, report in reports.items():
        succ = sum(e.success for e in report.episodes)
        n = len(report.episodes)
        low, high = wilson_interval(succ, n)
        summary[name] = {
            "successes": succ,
            "episodes": n,
            "success_rate": succ / n,
            "ci95": [low, high],
            "by_level": report.summary_by_level(),
        }
    t, o = summary["torch"], summary["onnx"]
    outcomes = zip(reports["torch"].episodes, reports["onnx"].episodes, strict=True)
    same = sum(a.success == b.success for a, b in outcomes)
    return {
        "torch": t,
        "onnx": o,
        "same_outcome": same / t["episodes"],
        "onnx_within_torch_ci": bool(t["ci95"][0] <= o["success_rate"] <= t["ci95"][1]),
        "seed": seed,
        "tasks": list(levels_by_task),
        "levels": {k: list(v) for k, v in levels_by_task.items()},
    }
