"""The UR5e arm embodiment: the same oracle solves episodes through it, it is drawn in the
cameras, its model is the numpy kinematics, its counters count, and the default floating tool is
untouched."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from uio2_robot.envs import Oracle, make_env
from uio2_robot.envs.arm import ARM_PARK
from uio2_robot.envs.render import top_view_point_map, top_view_workspace_box
from uio2_robot.envs.scene import TOOL_GROUP, TOOL_HOME, build_scene, make_pool
from uio2_robot.envs.shapes import shape
from uio2_robot.envs.sim import Sim
from uio2_robot.envs.tasks.base import grasp_point
from uio2_robot.motion import ur5e

ZERO = {"ik_failures": 0, "joint_limit_stops": 0, "self_collisions": 0}


@pytest.fixture(scope="module")
def arm_sim():
    return Sim(make_pool({"block": 1}), "suction", 10.0, "arm")


def test_oracle_solves_primitive_episodes_on_the_arm() -> None:
    env = make_env("visual_manipulation", "L1", "primitive", image_size=32, embodiment="arm")
    assert env.unwrapped.embodiment == "arm"
    oracle = Oracle()
    for seed in range(3):
        obs, _ = env.reset(seed=seed)
        oracle.reset(env)
        done, info = False, {}
        while not done:
            obs, _, terminated, truncated, info = env.step(oracle.act(obs))
            done = terminated or truncated
        assert info["is_success"], f"seed {seed}: {info['failure']}"
        assert info["arm"] == ZERO, "a clean oracle episode needs no counted event"
    env.close()


def _pixel(table_xy: tuple[float, float], size: int) -> tuple[int, int]:
    """Where a table point appears in a size x size top view."""
    a, b, c, d, e, f = top_view_point_map()
    top, left, bottom, right = top_view_workspace_box(size, size)
    row = top + (a * table_xy[0] + b * table_xy[1] + c) * (bottom - top)
    col = left + (d * table_xy[0] + e * table_xy[1] + f) * (right - left)
    return int(row * size), int(col * size)


def test_arm_is_drawn_and_floating_tool_is_not() -> None:
    size = 96
    views = {}
    for embodiment in ("floating", "arm"):
        env = make_env("rotate", "L1", "delta", image_size=size, embodiment=embodiment)
        obs, _ = env.reset(seed=4)
        views[embodiment] = obs
        env.close()
    changed = {}
    for cam in ("front", "top"):  # the same episode, with the arm drawn in both views
        diff = np.abs(views["arm"][cam].astype(int) - views["floating"][cam].astype(int))
        changed[cam] = diff.sum(-1) > 30
        assert 0.003 < changed[cam].mean() < 0.5, cam
    # ... but parked (ARM_PARK) off the workspace in the top view, so a frame shows the scene
    (r0, c0), (r1, c1) = _pixel((0.75, 0.5), size), _pixel((0.25, -0.5), size)
    rows, cols = sorted((r0, r1)), sorted((c0, c1))
    workspace = changed["top"][rows[0] : rows[1] + 1, cols[0] : cols[1] + 1]
    assert workspace.size > 100 and workspace.mean() < 0.01


def test_arm_over_the_workspace_hides_the_table_under_it() -> None:
    size = 96
    views = {}
    for embodiment in ("floating", "arm"):
        env = make_env("rotate", "L1", "delta", image_size=size, embodiment=embodiment)
        env.reset(seed=4)
        sim = env.unwrapped.sim
        for _ in range(30):  # to the suite's centre home, as a primitive's approach would
            d = np.array([*TOOL_HOME, 0.0]) - sim.tool_pose()
            d[:3] = np.clip(d[:3], -0.04, 0.04)
            obs, *_ = env.step(np.array([*d, 0.0], np.float32))
        views[embodiment] = obs
        env.close()
    r, c = _pixel(TOOL_HOME[:2], size)
    patch = (slice(r - 1, r + 2), slice(c - 1, c + 2))
    diff = np.abs(views["arm"]["top"].astype(int) - views["floating"]["top"].astype(int)).sum(-1)
    assert diff[patch].min() > 60, "the wrist must hide the table under the tool"


def test_default_embodiment_is_the_hidden_floating_tool() -> None:
    env = make_env("rotate", "L1", "delta", image_size=32)
    u = env.unwrapped
    assert u.embodiment == "floating" and u.sim.arm is None
    m = u.sim.model
    assert mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, "ur_base") == -1
    assert m.geom_group[u.sim.tool_geom] == TOOL_GROUP  # hidden from the cameras
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.zeros(5, np.float32))
    assert "arm" not in info
    pool = make_pool({"block": 1})
    assert build_scene(pool, "suction") == build_scene(pool, "suction", "floating")
    with pytest.raises(ValueError, match="unknown embodiment 'hexapod'"):
        make_env("rotate", embodiment="hexapod")
    env.close()


def test_mujoco_arm_is_the_numpy_kinematics(arm_sim) -> None:
    m, d = arm_sim.model, arm_sim.data
    flange = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_SITE, "flange")
    rt, origin = ur5e.TWIN_CALIBRATION.rotation(), np.asarray(ur5e.TWIN_CALIBRATION.origin)
    rng = np.random.default_rng(0)
    for _ in range(5):
        q = rng.uniform(-3.0, 3.0, 6)
        d.qpos[arm_sim.arm.qadr] = q
        d.qpos[arm_sim.arm.stage_qadr] = 0.0
        mujoco.mj_kinematics(m, d)
        t = ur5e.fk(q)
        np.testing.assert_allclose(d.site_xpos[flange], rt.T @ (t[:3, 3] - origin), atol=1e-9)
        np.testing.assert_allclose(d.site_xmat[flange].reshape(3, 3), rt.T @ t[:3, :3], atol=1e-9)
        np.testing.assert_allclose(
            d.xpos[arm_sim.arm.tool_body], ur5e.tcp_table_pose(q, "suction")[:3], atol=1e-9
        )
    arm_sim.reset_pool()  # home: the tool tip at the park pose, pointing down
    np.testing.assert_allclose(arm_sim.tool_pose(), ARM_PARK, atol=1e-5)


def _drive(sim: Sim, delta, steps: int) -> None:
    for _ in range(steps):
        sim.command(np.asarray(delta, dtype=np.float64), False)


def test_counters_count_and_reset(arm_sim) -> None:
    sim = arm_sim
    sim.reset_pool()
    assert sim.arm_stats == ZERO
    _drive(sim, [0.04, 0.04, 0.0, 0.0], 25)  # into the far corner, beyond the arm's reach
    stats = sim.arm_stats
    assert stats["ik_failures"] > 5 and stats["self_collisions"] == 0
    assert sim.tool_pose()[2] > 0.14, "an unreachable target must not sag the tool"
    sim.reset_pool()
    _drive(sim, [0.0, 0.0, 0.0, 0.3], 60)  # keep turning: the wrist reaches its 2 pi stop
    stats = sim.arm_stats
    assert stats["joint_limit_stops"] > 0 and stats["ik_failures"] >= stats["joint_limit_stops"]
    assert abs(sim.data.qpos[sim.arm.qadr[5]]) == pytest.approx(2 * np.pi, abs=0.02)
    sim.reset_pool()
    for _ in range(30):  # out of the park to the suite's home over the table
        d = np.array([*TOOL_HOME, 0.0]) - sim.tool_pose()
        sim.command(np.clip(d, -0.04, 0.04), False)
    _drive(sim, [-0.04, 0.0, -0.01, 0.0], 25)  # back over the base: the wrist meets the shoulder
    assert sim.arm_stats["self_collisions"] > 0
    sim.reset_pool()
    assert sim.arm_stats == ZERO


def test_blocked_tool_presses_gently() -> None:
    """Pushing down on an object (suction off): the tip stops on it, the compliance stage and not
    the arm's joint torques sets the force, and the object is not driven into the table."""
    env = make_env("rotate", "L1", "delta", image_size=16, cameras=("top",), embodiment="arm")
    env.reset(seed=0)
    u = env.unwrapped
    obj = u.episode.one("dragged")
    gx, gy, _ = grasp_point(u.sim, obj)
    for z, steps in ((0.12, 30), (0.0, 15)):
        for _ in range(steps):
            p = u.sim.proprio()
            a = np.clip([gx - p[0], gy - p[1], z - p[2], 0.0], -0.04, 0.04)
            env.step(np.array([*a, 0.0], np.float32))
    sim, d = u.sim, u.sim.data
    assert u.sim.proprio()[2] > shape(obj.shape).height - 0.005, "the tip rests on the object"
    assert sim.data.qpos[sim.arm.stage_qadr] > 0.01, "the stage gave way"
    force, total = np.zeros(6), 0.0
    for i in range(d.ncon):
        if sim.tool_geom in d.contact.geom[i]:
            mujoco.mj_contactForce(sim.model, d, i, force)
            total += force[0]
    assert 1.0 < total < 8.0
    assert sim.pose(obj)[2] > -0.003
    env.close()
