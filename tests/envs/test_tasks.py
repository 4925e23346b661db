"""Every task x level (primitive mode) and every task at its first level (delta mode): reset,
observations, prompt, oracle success, determinism; and per task, a wrong action fails."""

from __future__ import annotations

import re

import numpy as np
import pytest

from uio2_robot.envs import TASKS, Oracle, levels_for, make_env
from uio2_robot.envs.levels import level_shape_pool, level_texture_pool
from uio2_robot.envs.spaces import PROPRIO_NAMES, action_space
from uio2_robot.envs.tasks import TASK_CLASSES
from uio2_robot.motion.primitive import Primitive

SIZE = 48
COMBOS = [(t, lv, "primitive") for t in TASKS for lv in levels_for(t)]
COMBOS += [(t, levels_for(t)[0], "delta") for t in TASKS]


def _template_regex(template: str) -> re.Pattern:
    """The task template with every {field} free: the plain-text prompt must follow it."""
    parts = re.split(r"\{[a-z_]+\}", template)
    return re.compile("^" + "(.+?)".join(re.escape(p) for p in parts) + "$")


def _check_prompt(info: dict, task: str) -> None:
    prompt, text = info["prompt"], info["prompt_text"]
    assert isinstance(prompt, list) and prompt
    images = [s for s in prompt if not isinstance(s, str)]
    assert images, "VIMA prompts are multimodal: at least one image"
    for img in images:
        assert (
            isinstance(img, np.ndarray)
            and img.dtype == np.uint8
            and img.ndim == 3
            and img.shape[2] == 3
        )
        assert img.std() > 5, "a prompt image shows something, not a blank frame"
    assert len(re.findall(r"\{[^{}]+\}", text)) == len(images)
    # the text segments, in order, are what is left of the plain text around the placeholders
    assert re.sub(r"\{[^{}]+\}", "\0", text).split("\0") == _text_runs(prompt)
    assert _template_regex(TASK_CLASSES[task].template).match(text), text


def _text_runs(prompt: list) -> list[str]:
    runs, cur = [], ""
    for s in prompt:
        if isinstance(s, str):
            cur += s
        else:
            runs.append(cur)
            cur = ""
    return [*runs, cur]


def _check_obs(env, obs: dict) -> None:
    assert set(obs) == {"front", "top", "proprio"}
    for cam in ("front", "top"):
        assert obs[cam].shape == (SIZE, SIZE, 3) and obs[cam].dtype == np.uint8
    assert obs["proprio"].shape == (len(PROPRIO_NAMES),) and obs["proprio"].dtype == np.float32
    assert env.observation_space.contains(obs)


def _nominal(shape_name: str) -> str:
    return shape_name.removesuffix("_short").removesuffix("_tall")


def _check_levels(env, level: str) -> None:
    """Goal objects and bases come from the level's role pools: L1 dragged Set A / base Set B,
    L2 swapped, L3 only held-out shapes (VIMA's partitions)."""
    extra = {"shorter_block", "small_block"}  # same_shape's and the sweeps' own shapes
    for p in env.unwrapped.episode.objects:
        kind = {"dragged": "dragged", "base": "base"}.get(p.role)
        if kind is None:
            continue
        if p.shape not in extra:
            assert _nominal(p.shape) in level_shape_pool(level, kind), (p.shape, level)
        if level in ("L1", "L2") and p.texture != "gray":
            tex = p.texture.removeprefix("dark_")
            assert tex in level_texture_pool(level, kind), (p.role, p.texture, level)


def _run_oracle(env, obs) -> tuple[dict, int]:
    oracle = Oracle()
    oracle.reset(env)
    steps, done, info = 0, False, {}
    while not done:
        obs, reward, terminated, truncated, info = env.step(oracle.act(obs))
        steps += 1
        done = terminated or truncated
        assert reward == float(info["is_success"])
    return info, steps


@pytest.mark.parametrize(("task", "level", "mode"), COMBOS)
def test_task_level_mode(task: str, level: str, mode: str) -> None:
    env = make_env(task, level, mode, image_size=SIZE)
    try:
        assert env.action_space == action_space(mode)
        assert env.unwrapped.control_hz == 10.0
        obs, info = env.reset(seed=11)
        _check_obs(env, obs)
        _check_prompt(info, task)
        _check_levels(env, level)
        u = env.unwrapped
        assert not u.task.success(u.sim, u.episode), "the episode must not start solved"
        assert u.task.failure(u.sim, u.episode) is None
        assert info["task"] == task and info["level"] == level and info["seed"] == 11
        assert info["action_mode"] == mode and info["max_steps"] == env.unwrapped.max_steps
        prim_steps = TASK_CLASSES[task].vima_max_steps + 2
        assert env.unwrapped.max_steps == (prim_steps if mode == "primitive" else prim_steps * 60)
        first_prompt_images = [s.copy() for s in info["prompt"] if not isinstance(s, str)]
        first_obs = {k: v.copy() for k, v in obs.items()}

        # the oracle solves it, within the step budget, and nothing fails on the way
        final, steps = _run_oracle(env, obs)
        assert final["is_success"], f"oracle failed: {final}"
        assert final["failure"] is None and steps <= env.unwrapped.max_steps

        # same seed -> identical episode: prompt, layout, images, and the trajectory under the
        # same actions; another seed -> a different layout
        obs2, info2 = env.reset(seed=11)
        assert info2["prompt_text"] == info["prompt_text"]
        imgs2 = [s for s in info2["prompt"] if not isinstance(s, str)]
        assert all(np.array_equal(a, b) for a, b in zip(first_prompt_images, imgs2, strict=True))
        assert all(np.array_equal(first_obs[k], obs2[k]) for k in first_obs)
        oracle = Oracle()
        oracle.reset(env)
        actions = []
        for _ in range(2):
            a = oracle.act(obs2)
            actions.append(a)
            obs2, _, terminated, truncated, _ = env.step(a)
            if terminated or truncated:
                break
        obs3, _ = env.reset(seed=11)
        for a in actions:
            obs3, *_ = env.step(a)
        assert all(np.array_equal(obs2[k], obs3[k]) for k in obs2)
        _, info4 = env.reset(seed=12)
        layout = [
            tuple(np.round(env.unwrapped.sim.pose(p), 4)) for p in env.unwrapped.episode.objects
        ]
        env.reset(seed=11)
        layout11 = [
            tuple(np.round(env.unwrapped.sim.pose(p), 4)) for p in env.unwrapped.episode.objects
        ]
        assert layout != layout11
    finally:
        env.close()


@pytest.mark.parametrize("task", ["same_shape", "same_texture"])
def test_oracle_takes_interchangeable_objects_left_to_right(task: str) -> None:
    """The oracle's first pick is the dragged object furthest left in the top view (smallest y in
    VIMA's camera), whatever the spawn order: a rule the policy can see, unlike the spawn order."""
    level = levels_for(task)[0]
    env = make_env(task, level, "primitive", image_size=SIZE)
    try:
        spawned_first = 0
        for seed in range(6):
            obs, _ = env.reset(seed=seed)
            u = env.unwrapped
            dragged = u.episode.with_role("dragged")
            leftmost = min(dragged, key=lambda p: u.sim.pose(p)[1])
            spawned_first += leftmost is dragged[0]
            oracle = Oracle()
            oracle.reset(env)
            pick = oracle.act(obs)[:2]
            x, y, _, _ = u.sim.pose(leftmost)
            assert np.hypot(pick[0] - x, pick[1] - y) < 0.03, (seed, pick, (x, y))
        assert 0 < spawned_first < 6, "the seeds should cover both spawn orders"
    finally:
        env.close()


def _wrong_action(env) -> np.ndarray:
    """A wrong first step: the oracle's pick put back where it was (nothing achieved), or for
    the sweeps a push of a swept block straight through the line."""
    u = env.unwrapped
    if u.task.tool == "spatula":
        block = min(u.episode.with_role("dragged"), key=lambda p: abs(u.sim.pose(p)[1]))
        x, y, _, _ = u.sim.pose(block)
        lx, _ = u.episode.params["line"]
        return Primitive("push", x + 0.04, y, np.pi, lx - 0.06, y, np.pi).as_action()
    a = Oracle()
    a.reset(env)
    act = a.act(None).copy()
    act[3:5] = act[0:2]
    act[5] = 0.0
    return act


@pytest.mark.parametrize("task", TASKS)
def test_a_wrong_action_fails_where_the_oracle_succeeds(task: str) -> None:
    """The same episode: the oracle's steps succeed (test above); a wrong first step followed by
    doing nothing ends in failure (early, or by truncation), never in success."""
    env = make_env(task, levels_for(task)[0], "primitive", image_size=SIZE)
    try:
        env.reset(seed=5)
        obs, _, terminated, truncated, info = env.step(_wrong_action(env))
        idle = np.array([0.26, -0.49, 0.0, 0.26, -0.49, 0.0], np.float32)
        while not (terminated or truncated):
            obs, _, terminated, truncated, info = env.step(idle)
        assert not info["is_success"], info
        if TASK_CLASSES[task].needs_progress:
            assert info["failure"] == "no progress"
        if TASK_CLASSES[task].tool == "spatula":
            assert info["failure"] == "constraint violated"
    finally:
        env.close()
