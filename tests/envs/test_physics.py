"""The tool's motion is physical: suction lifts, released objects fall, the spatula pushes,
objects stack; and the early-failure conditions fire when they should."""

from __future__ import annotations

import numpy as np
import pytest

from uio2_robot.envs import make_env, oracle_action
from uio2_robot.envs.shapes import shape
from uio2_robot.envs.spaces import WORKSPACE_X
from uio2_robot.envs.tasks.base import grasp_point, pick_place
from uio2_robot.motion.primitive import HOVER_Z, Primitive, PrimitiveFollower

SIZE = 32


def _drive_to(env, x: float, y: float, z: float, tool: float, steps: int = 40) -> dict:
    """P-control the tool with delta actions (as a policy would)."""
    obs = None
    for _ in range(steps):
        p = env.unwrapped.sim.proprio()
        a = np.clip([x - p[0], y - p[1], z - p[2], 0.0, tool], -0.04, 0.04).astype(np.float32)
        a[4] = tool
        obs, *_ = env.step(a)
    return obs


def test_suction_lifts_and_release_drops() -> None:
    env = make_env("rotate", action_mode="delta", image_size=SIZE)
    env.reset(seed=0)
    u = env.unwrapped
    obj = u.episode.one("dragged")
    gx, gy, _ = grasp_point(u.sim, obj)
    _drive_to(env, gx, gy, HOVER_Z, 0.0)
    assert u.sim.held is None
    obs = _drive_to(env, gx, gy, 0.0, 1.0, steps=12)  # descend with suction on: it seals on contact
    assert u.sim.held == obj.pool_index and obs["proprio"][5] == 1.0
    _drive_to(env, gx, gy, HOVER_Z, 1.0, steps=10)
    assert u.sim.pose(obj)[2] > 0.08, "the held object came up with the cup"
    obs = _drive_to(env, gx, gy, HOVER_Z, 0.0, steps=8)  # suction off in mid-air: it falls
    assert u.sim.held is None and obs["proprio"][4] == 0.0
    assert u.sim.pose(obj)[2] < 0.005, "released object fell back onto the table"
    env.close()


def test_suction_off_does_not_grab() -> None:
    env = make_env("rotate", action_mode="delta", image_size=SIZE)
    env.reset(seed=0)
    u = env.unwrapped
    obj = u.episode.one("dragged")
    gx, gy, _ = grasp_point(u.sim, obj)
    _drive_to(env, gx, gy, HOVER_Z, 0.0)
    _drive_to(env, gx, gy, 0.0, 0.0, steps=12)
    # the cup rests on the object (blocked, not through it) and nothing is held
    assert u.sim.held is None
    assert u.sim.proprio()[2] > shape(obj.shape).height - 0.005
    _drive_to(env, gx, gy, HOVER_Z, 0.0, steps=10)
    assert u.sim.pose(obj)[2] < 0.005
    env.close()


def test_pick_and_place_stacks_on_another_object() -> None:
    """follow_order's first scripted move always stacks onto an occupied column."""
    env = make_env("follow_order", image_size=SIZE)
    obs, _ = env.reset(seed=1)
    u = env.unwrapped
    goal = u.episode.stages[0][0]
    top = u.episode.by_index(goal.obj)
    _, _, terminated, _, info = env.step(oracle_action(env, obs))
    z = u.sim.pose(top)[2]
    # it rests on the column's object, which stays put: no failure, progress made
    assert z == pytest.approx(shape(top.shape).height, abs=0.006)
    assert info["failure"] is None and not terminated
    env.close()


def test_spatula_pushes_along_the_line() -> None:
    env = make_env("sweep_without_exceeding", action_mode="delta", image_size=SIZE)
    env.reset(seed=2)
    u = env.unwrapped
    block = u.episode.with_role("dragged")[0]
    x0, y0, _, _ = u.sim.pose(block)
    ux, uy = -1.0, 0.0  # towards the rectangle's opening
    start = (x0 - 0.05 * ux, y0 - 0.05 * uy)
    end = (x0 + 0.05 * ux, y0 + 0.05 * uy)
    follower = PrimitiveFollower(Primitive("push", *start, 0.0, *end, 0.0), u.control_hz)
    while not follower.done:
        env.step(follower.act(u.sim.proprio()))
    x1, y1, z1, _ = u.sim.pose(block)
    along = (x1 - x0) * ux + (y1 - y0) * uy
    across = -(x1 - x0) * uy + (y1 - y0) * ux
    assert along > 0.02, "the block was pushed forward"
    assert abs(across) < 0.02 and z1 < 0.005, "it slid along the table, on the push line"
    env.close()


def test_distractor_rule_is_vimas() -> None:
    """Moving a distractor is allowed; putting it within 10 cm of the goal's target fails."""
    env = make_env("visual_manipulation", image_size=SIZE)
    env.reset(seed=3)
    u = env.unwrapped
    d, base = u.episode.one("distractor"), u.episode.one("base")
    x, y, _, yaw = u.sim.pose(d)
    _, _, terminated, _, info = env.step(pick_place(u.sim, d, x, y + 0.03, yaw).as_action())
    assert not terminated and info["failure"] is None, "a nudged distractor is no failure"
    bx, by, _, _ = u.sim.pose(base)
    _, reward, terminated, truncated, info = env.step(pick_place(u.sim, d, bx, by, yaw).as_action())
    assert terminated and not truncated and reward == 0.0
    assert info["failure"] == "distractor rule" and not info["is_success"]
    env.close()


def test_goals_latch_once_met() -> None:
    """VIMA pops a goal once met: taking the object out of the base again does not undo it
    (same_shape: the first object in, then out again, then the second in -> success)."""
    env = make_env("same_shape", image_size=SIZE)
    obs, _ = env.reset(seed=4)
    u = env.unwrapped
    first = u.episode.by_index(u.episode.stages[0][0].obj)
    env.step(oracle_action(env, obs))
    assert len(u.episode.latched) == 1
    moved = u.episode.by_index(u.episode.latched[0].obj)
    x, y, _, yaw = u.sim.pose(moved)
    away = (0.3 if x > 0.5 else 0.7, -0.4 if y > 0 else 0.4)
    _, _, terminated, _, info = env.step(pick_place(u.sim, moved, *away, yaw).as_action())
    assert not terminated and info["failure"] is None and len(u.episode.latched) == 1
    _, _, terminated, _, info = env.step(oracle_action(env, obs))
    assert terminated and info["is_success"], (info, first)
    env.close()


def test_sweeping_past_the_line_violates_the_constraint() -> None:
    env = make_env("sweep_without_exceeding", image_size=SIZE)
    env.reset(seed=4)
    u = env.unwrapped
    block = min(u.episode.with_role("dragged"), key=lambda p: abs(u.sim.pose(p)[1]))
    x, y, _, _ = u.sim.pose(block)
    lx, _ = u.episode.params["line"]
    # push straight towards the robot, through the zone and over the line
    _, _, terminated, _, info = env.step(
        np.array([x + 0.04, y, np.pi, lx - 0.06, y, np.pi], np.float32)
    )
    assert u.sim.pose(block)[0] < lx + 0.02
    assert terminated and info["failure"] == "constraint violated"
    env.close()


def test_touching_the_line_in_passing_fails() -> None:
    """sweep_without_touching's constraint is watched during motion: a block pushed across the
    line and beyond it still fails, though it ends clear of the line."""
    env = make_env("sweep_without_touching", "L4", image_size=SIZE)
    env.reset(seed=0)
    u = env.unwrapped
    block = min(u.episode.with_role("dragged"), key=lambda p: abs(u.sim.pose(p)[1]))
    x, y, _, _ = u.sim.pose(block)
    env.unwrapped.sim.set_pose(block, x, 0.0, 0.0)  # in front of the line
    u.sim.forward()
    _, _, terminated, _, info = env.step(
        np.array([x + 0.04, 0.0, np.pi, 0.40, 0.0, np.pi], np.float32)
    )
    bx = u.sim.pose(block)[0]
    assert bx < 0.476 - 0.02, "it ended past the line"
    assert terminated and info["failure"] == "constraint violated"
    env.close()


def test_object_carried_off_the_workspace_fails() -> None:
    env = make_env("rotate", action_mode="delta", image_size=SIZE)
    env.reset(seed=5)
    u = env.unwrapped
    obj = u.episode.one("dragged")
    gx, gy, _ = grasp_point(u.sim, obj)
    # the tool can reach 10 cm past the workspace; the env does not stop a policy carrying an
    # object there, it ends the episode once the object is out
    follower = PrimitiveFollower(
        Primitive("pick_place", gx, gy, 0.0, WORKSPACE_X[1] + 0.08, gy, 0.0), u.control_hz
    )
    info, terminated = {}, False
    while not follower.done and not terminated:
        _, _, terminated, _, info = env.step(follower.act(u.sim.proprio()))
    assert u.sim.pose(obj)[0] > WORKSPACE_X[1] + 0.02
    assert terminated and info["failure"] == "object left workspace"
    env.close()


def test_truncation_at_vima_max_steps_plus_two() -> None:
    env = make_env("rotate", image_size=SIZE)
    env.reset(seed=6)
    idle = np.array([0.74, -0.49, 0.0, 0.74, -0.49, 0.0], np.float32)  # an empty corner
    steps, terminated, truncated = 0, False, False
    while not (terminated or truncated):
        _, _, terminated, truncated, _ = env.step(idle)
        steps += 1
    assert truncated and not terminated and steps == 3 + 2
    env.close()


@pytest.mark.parametrize("hz", [10.0, 20.0, 100.0, 15.0])
def test_one_control_step_is_one_control_period(hz: float) -> None:
    env = make_env("rotate", action_mode="delta", image_size=SIZE, control_hz=hz)
    env.reset(seed=0)
    sim = env.unwrapped.sim
    t0 = sim.data.time
    env.step(np.zeros(5, np.float32))
    assert sim.data.time - t0 == pytest.approx(sim.control_period)
    assert sim.control_period == pytest.approx(
        1.0 / hz, abs=0.5 * 0.01
    )  # rounded to a physics step
    env.close()
