"""The public API: names, registration, bad input, vector envs, rendering options."""

from __future__ import annotations

import multiprocessing as mp

import gymnasium as gym
import numpy as np
import pytest

from uio2_robot.envs import (
    ENV_ID,
    HELDOUT_TASKS,
    TASKS,
    TRAIN_TASKS,
    levels_for,
    make_env,
    make_vector_env,
    oracle_action,
)
from uio2_robot.envs.spaces import DELTA_ACTION_NAMES, PRIMITIVE_ACTION_NAMES

SIZE = 32


@pytest.fixture(scope="module")
def prim_env():
    env = make_env("visual_manipulation", "L1", "primitive", image_size=SIZE)
    yield env
    env.close()


def test_task_names_and_levels() -> None:
    """VIMA-Bench's 17 tasks and its partitions: 13 at L1 and L2, 12 at L3, 4 held out at L4."""
    from uio2_robot.envs.levels import LEVEL_TASKS, resolve_levels

    assert len(TASKS) == 17 and set(TASKS) == {t for lv in LEVEL_TASKS.values() for t in lv}
    assert HELDOUT_TASKS == (
        "novel_adj_and_noun",
        "follow_motion",
        "sweep_without_touching",
        "same_texture",
    )
    assert set(TRAIN_TASKS) == set(TASKS) - set(HELDOUT_TASKS) == set(LEVEL_TASKS["L1"])
    assert [len(LEVEL_TASKS[lv]) for lv in ("L1", "L2", "L3", "L4")] == [13, 13, 12, 4]
    assert levels_for("same_texture") == ("L4",)
    assert levels_for("sweep_without_exceeding") == ("L1", "L2")
    assert levels_for("rotate") == ("L1", "L2", "L3")
    # no task list = every task of the requested levels
    assert list(resolve_levels([], ["L4"])) == list(t for t in TASKS if t in LEVEL_TASKS["L4"])
    assert len(resolve_levels([], ["L1", "L3"])) == 13
    with pytest.raises(ValueError, match="unknown task.*'fly'.*visual_manipulation"):
        resolve_levels(["fly"], ["L1"])
    with pytest.raises(ValueError, match="unknown task 'fly'.*visual_manipulation"):
        levels_for("fly")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"task": "fly"}, r"unknown task 'fly'; expected one of \("),
        ({"task": "rotate", "level": "L9"}, r"unknown level 'L9'; expected one of \('L1'"),
        ({"task": "same_texture", "level": "L1"}, r"has no level 'L1'; expected one of \('L4',\)"),
        ({"task": "sweep_without_exceeding", "level": "L3"}, r"has no level 'L3'"),
        ({"task": "rotate", "action_mode": "joint"}, r"unknown action mode 'joint'.*primitive"),
        ({"task": "rotate", "cameras": ("side",)}, r"cameras must be distinct names"),
        ({"task": "rotate", "image_size": 4}, r"image_size must be within"),
        (
            {"task": "rotate", "image_size": "big"},
            r"image_size must be an int or \(height, width\)",
        ),
        ({"task": "rotate", "control_hz": 0.0}, r"control_hz must be a number in \[1, 100\]"),
        ({"task": "rotate", "max_steps": 0}, r"max_steps must be a positive int"),
        ({"task": "rotate", "render_mode": "human"}, r"unknown render_mode 'human'"),
    ],
)
def test_bad_construction_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make_env(**kwargs)


def test_action_names_and_spaces() -> None:
    p = make_env("rotate", action_mode="primitive", image_size=SIZE)
    d = make_env("rotate", action_mode="delta", image_size=SIZE)
    assert p.unwrapped.action_names == PRIMITIVE_ACTION_NAMES and p.action_space.shape == (6,)
    assert d.unwrapped.action_names == DELTA_ACTION_NAMES and d.action_space.shape == (5,)
    p.close()
    d.close()


def test_bad_actions(prim_env) -> None:
    env = prim_env
    with pytest.raises(RuntimeError, match="reset"):
        make_env("rotate", image_size=SIZE).step(np.zeros(6, np.float32))
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \(5,\), expected \(6,\)"):
        env.step(np.zeros(5, np.float32))
    with pytest.raises(ValueError, match="NaN or Inf"):
        env.step(np.array([0.5, 0.0, 0.0, 0.5, np.nan, 0.0]))
    with pytest.raises(ValueError, match="NaN or Inf"):
        env.step(np.array([0.5, 0.0, np.inf, 0.5, 0.0, 0.0]))
    with pytest.raises(ValueError, match="numeric array"):
        env.step("left")
    # in bounds: not clipped; out of bounds: clipped to the documented bounds and flagged
    _, _, _, _, info = env.step(np.array([0.7, 0.45, 0.0, 0.7, 0.45, 0.0], np.float32))
    assert info["action_clipped"] is False
    obs, _, _, _, info = env.step(np.array([2.0, 0.45, 0.0, 0.7, 0.45, 9.0], np.float32))
    assert info["action_clipped"] is True
    # the clipped primitive still ran: the tool ends above its place pose
    assert obs["proprio"][0] == pytest.approx(0.7, abs=0.01)


def test_step_after_episode_end_raises() -> None:
    env = make_env("visual_manipulation", image_size=SIZE, max_steps=1)
    env.reset(seed=0)
    _, _, terminated, truncated, _ = env.step(
        np.array([0.7, 0.45, 0.0, 0.7, 0.45, 0.0], np.float32)
    )
    assert truncated and not terminated
    with pytest.raises(RuntimeError, match="episode has ended"):
        env.step(np.array([0.7, 0.45, 0.0, 0.7, 0.45, 0.0], np.float32))
    env.close()


def test_delta_out_of_bounds_is_clipped() -> None:
    env = make_env("rotate", action_mode="delta", image_size=SIZE)
    env.reset(seed=0)
    z0 = env.unwrapped.sim.proprio()[2]
    obs, _, _, _, info = env.step(np.array([0.0, 0.0, 1.0, 0.0, 0.0], np.float32))
    assert info["action_clipped"] is True
    # a dz of 1 m became the 4 cm per-step bound
    assert obs["proprio"][2] - z0 == pytest.approx(0.04, abs=0.005)
    env.close()


def test_gym_registration_and_render(prim_env) -> None:
    env = gym.make(ENV_ID, task="rotate", level="L2", image_size=(24, 40), render_mode="rgb_array")
    obs, info = env.reset(seed=3)
    assert obs["top"].shape == (24, 40, 3) and info["level"] == "L2"
    frame = env.render()
    assert frame.shape == (24, 80, 3) and frame.dtype == np.uint8
    env.close()


def test_segmentation_ids() -> None:
    env = make_env("visual_manipulation", image_size=64, segmentation=True)
    obs, _ = env.reset(seed=4)
    assert set(obs) == {"front", "top", "segm_front", "segm_top", "proprio"}
    assert env.observation_space.contains(obs)
    n = len(env.unwrapped.episode.objects)
    ids = set(np.unique(obs["segm_top"]).tolist())
    assert ids == set(range(n + 1)), "every object (1..n) and the table (0) are seen from the top"
    # an object's mask sits where its colour is: the base (id of its index + 1) is large
    base_k = next(k for k, p in enumerate(env.unwrapped.episode.objects) if p.role == "base")
    assert (obs["segm_top"] == base_k + 1).sum() > 10
    env.close()


def test_single_camera_and_tool_is_hidden() -> None:
    env = make_env("rotate", action_mode="delta", image_size=64, cameras=("top",))
    obs, _ = env.reset(seed=1)
    assert set(obs) == {"top", "proprio"}
    # the tool is hidden in RGB as in VIMA: moving it over the table changes no pixel
    before = obs["top"]
    for _ in range(3):
        obs, *_ = env.step(np.array([0.0, 0.0, -0.04, 0.0, 0.0], np.float32))
    assert obs["proprio"][2] < 0.05
    assert np.array_equal(before, obs["top"])
    env.close()


def test_oracle_action_helper_in_delta_mode() -> None:
    env = make_env("rotate", action_mode="delta", image_size=SIZE)
    obs, _ = env.reset(seed=2)
    done, info = False, {}
    while not done:
        obs, _, terminated, truncated, info = env.step(oracle_action(env, obs))
        done = terminated or truncated
    assert info["is_success"]
    env.close()


def test_sync_and_async_vector_envs() -> None:
    fns = [
        lambda: gym.make(ENV_ID, task="rotate", action_mode="delta", image_size=SIZE)
        for _ in range(2)
    ]
    sync = gym.vector.SyncVectorEnv(fns)
    obs, info = sync.reset(seed=[5, 6])
    assert obs["top"].shape == (2, SIZE, SIZE, 3) and list(info["seed"]) == [5, 6]
    first = {k: v.copy() for k, v in obs.items()}
    obs, rew, term, trunc, info = sync.step(np.zeros((2, 5), np.float32))
    assert rew.shape == (2,) and obs["proprio"].shape == (2, 6)
    sync.close()
    # this test process has rendered already, so make_vector_env starts the workers cleanly
    venv = make_vector_env("rotate", 2, action_mode="delta", image_size=SIZE)
    obs_a, _ = venv.reset(seed=[5, 6])
    # same seeds, other processes: the same episodes
    assert all(np.array_equal(obs_a[k], first[k]) for k in first)
    obs_a, rew, term, trunc, _ = venv.step(np.zeros((2, 5), np.float32))
    assert obs_a["top"].shape == (2, SIZE, SIZE, 3) and rew.shape == (2,)
    venv.close()


def _child_render(q) -> None:
    try:
        env = make_env("rotate", image_size=SIZE)
        env.reset(seed=0)
        q.put("rendered")
    except RuntimeError as e:
        q.put(str(e))


def test_forked_child_gets_a_clear_error_not_a_hang(prim_env) -> None:
    prim_env.reset(seed=0)  # make sure this process holds an EGL context
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_child_render, args=(q,))
    p.start()
    msg = q.get(timeout=60)
    p.join(timeout=30)
    assert "forked from one that had already rendered" in msg and "spawn" in msg


def test_top_view_workspace_box_frames_exactly_the_workspace():
    """The crop box of a square top view holds the workspace; outside it is the table's brown."""
    from uio2_robot.envs.render import top_view_workspace_box
    from uio2_robot.tokenize.processor import crop_fraction

    top, left, bottom, right = top_view_workspace_box(128, 128)
    assert (left, right) == (0.0, 1.0) and 0.2 < top < 0.25 and 0.75 < bottom < 0.8
    assert top_view_workspace_box(64, 128)[0] == 0.0  # a 2:1 view is all workspace already
    env = make_env("visual_manipulation", "L1", image_size=128, cameras=("top",))
    obs, _ = env.reset(seed=0)
    img = obs["top"]
    env.close()
    crop = crop_fraction(img, (top, left, bottom, right))
    # rows just outside the box are table (brown), the crop's middle row is mostly light workspace
    outside = img[int(top * 128) - 3].astype(int)
    inside = crop[crop.shape[0] // 2].astype(int)
    assert (outside[:, 0] - outside[:, 2]).mean() > 30  # brown: red well above blue
    assert np.median(inside.sum(1)) > np.median(outside.sum(1))


def test_top_view_point_map_lands_oracle_picks_on_objects():
    """Mapped through the crop, the oracle's pick point is an object pixel, not bare table."""
    from uio2_robot.envs.render import top_view_point_map, top_view_workspace_box
    from uio2_robot.tokenize.processor import crop_fraction

    a, b, c, d, e, f = top_view_point_map()
    env = make_env("visual_manipulation", "L1", image_size=128, cameras=("top",))
    hits = 0
    for seed in range(5):
        obs, _ = env.reset(seed=seed)
        crop = crop_fraction(obs["top"], top_view_workspace_box(128, 128))
        x, y = oracle_action(env)[:2]
        row, col = (
            int((a * x + b * y + c) * crop.shape[0]),
            int((d * x + e * y + f) * crop.shape[1]),
        )
        pixel = crop[row, col].astype(int)
        empty = crop[crop.shape[0] // 2, 8].astype(int)  # bare workspace near the left edge
        hits += int(np.abs(pixel - empty).sum() > 60)
    env.close()
    assert hits == 5
