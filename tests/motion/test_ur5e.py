"""UR5e kinematics (numpy only): FK against poses derived by hand from UR's DH table, the
Jacobian against finite differences, DLS IK that never leaves the joint limits and never returns
a silently wrong answer, the reachability check, and the twin's mounting covering the workspace."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from uio2_robot.contracts import WORKSPACE_X, WORKSPACE_Y
from uio2_robot.motion import ur5e
from uio2_robot.motion.frames import TOOL_DOWN, rot_z, rotvec_to_matrix, table_to_tcp

A2, A3 = 0.425, 0.3922  # |a2|, |a3|
D1, D4, D5, D6 = 0.1625, 0.1333, 0.0997, 0.0996
HALF_PI = math.pi / 2


@pytest.mark.parametrize(
    ("q", "pos", "rot"),
    [
        # zero pose: arm stretched along base -x, the wrist offsets along -y, flange facing -y
        ([0, 0, 0, 0, 0, 0], (-(A2 + A3), -(D4 + D6), D1 - D5), [[1, 0, 0], [0, 0, -1], [0, 1, 0]]),
        # upright: everything stacked above the base
        (
            [0, -HALF_PI, 0, -HALF_PI, 0, 0],
            (0.0, -(D4 + D6), D1 + A2 + A3 + D5),
            [[-1, 0, 0], [0, 0, -1], [0, -1, 0]],
        ),
        # UR's usual "tool down" pose: upper arm up, forearm forward, flange pointing down
        (
            [0, -HALF_PI, HALF_PI, -HALF_PI, -HALF_PI, 0],
            (-(A3 + D5), -D4, D1 + A2 - D6),
            [[0, 1, 0], [1, 0, 0], [0, 0, -1]],
        ),
    ],
)
def test_fk_matches_the_dh_table(q, pos, rot) -> None:
    t = ur5e.fk(np.array(q, dtype=float))
    np.testing.assert_allclose(t[:3, 3], pos, atol=1e-9)
    np.testing.assert_allclose(t[:3, :3], rot, atol=1e-9)
    # the base joint turns the whole arm about z
    t90 = ur5e.fk(np.array(q, dtype=float) + [HALF_PI, 0, 0, 0, 0, 0])
    np.testing.assert_allclose(t90[:3, 3], rot_z(HALF_PI) @ np.array(pos), atol=1e-9)


def test_jacobian_matches_finite_differences() -> None:
    rng = np.random.default_rng(1)
    for _ in range(5):
        q = rng.uniform(-3, 3, 6)
        j = ur5e.jacobian(q, "suction")
        eps = 1e-6
        for i in range(6):
            dq = np.zeros(6)
            dq[i] = eps
            t1, t0 = ur5e.tcp_pose(q + dq, "suction"), ur5e.tcp_pose(q - dq, "suction")
            np.testing.assert_allclose((t1[:3, 3] - t0[:3, 3]) / (2 * eps), j[:3, i], atol=1e-6)
            w = (t1[:3, :3] - t0[:3, :3]) / (2 * eps) @ t1[:3, :3].T  # skew(omega)
            np.testing.assert_allclose([w[2, 1], w[0, 2], w[1, 0]], j[3:, i], atol=1e-5)


def test_calibration_and_base_pose_are_inverse() -> None:
    calib = ur5e.calibration_for_base(0.1, -0.2, 0.05, 0.7)
    assert ur5e.base_pose_in_table(calib) == pytest.approx((0.1, -0.2, 0.05, 0.7))
    x, y, z, yaw = ur5e.base_pose_in_table(ur5e.TWIN_CALIBRATION)
    inside = WORKSPACE_X[0] <= x <= WORKSPACE_X[1] and WORKSPACE_Y[0] <= y <= WORKSPACE_Y[1]
    assert not inside, "the arm base must not sit in the workspace"


def test_ik_targets_are_the_drivers_tcp_poses() -> None:
    """The IK's base-frame target for a table pose is what the UR driver sends (table_to_tcp),
    and FK of the solution reads back through tcp_to_table as the same table pose."""
    calib = ur5e.calibration_for_base(-0.05, 0.1, 0.02, 2.8)
    pose = np.array([0.45, -0.2, 0.07, 1.1])
    t = ur5e.target_matrix(pose, calib)
    tcp = table_to_tcp(pose, calib)
    np.testing.assert_allclose(t[:3, 3], tcp[:3], atol=1e-12)
    np.testing.assert_allclose(t[:3, :3], rotvec_to_matrix(tcp[3:]), atol=1e-9)
    res = ur5e.solve_ik(pose, ur5e.home_seed(calib), "spatula", calib)
    assert res.ok
    np.testing.assert_allclose(ur5e.tcp_table_pose(res.q, "spatula", calib), pose, atol=2e-3)


def _check(res: ur5e.IKResult, pose: np.ndarray, tool: str) -> None:
    assert np.all(res.q >= ur5e.JOINT_LOWER) and np.all(res.q <= ur5e.JOINT_UPPER)
    got = ur5e.tcp_table_pose(res.q, tool)
    pos_err = float(np.linalg.norm(got[:3] - pose[:3]))
    yaw_err = abs(math.remainder(got[3] - pose[3], 2 * math.pi))
    assert pos_err == pytest.approx(res.pos_err, abs=1e-6)
    if res.ok:
        assert res.reason is None
        assert pos_err <= ur5e.POS_TOL and yaw_err <= ur5e.ANG_TOL + 1e-6
        assert ur5e.tool_tilt(res.q) <= ur5e.ANG_TOL + 1e-6
    else:  # never a silent bad q: a reason, and the errors say how far off it is
        assert res.reason in ("out_of_reach", "joint_limit", "singular", "not_converged")
        assert max(res.pos_err, res.yaw_err, res.tilt_err) > min(ur5e.POS_TOL, ur5e.ANG_TOL)


def test_ik_on_1000_workspace_targets_respects_limits_and_tolerances() -> None:
    rng = np.random.default_rng(0)
    n, n_far = 1000, 50
    poses = np.column_stack(
        [
            rng.uniform(*WORKSPACE_X, n),
            rng.uniform(*WORKSPACE_Y, n),
            rng.uniform(0.0, 0.15, n),
            rng.uniform(-math.pi, math.pi, n),
        ]
    )
    # a few far out of reach (1.0 - 1.4 m from the base): they must fail with a reason
    ang = rng.uniform(-1.0, 1.0, n_far)
    dist = rng.uniform(1.0, 1.4, n_far)
    poses[:n_far, 0], poses[:n_far, 1] = dist * np.cos(ang), dist * np.sin(ang)
    seed = ur5e.home_seed()
    ok = 0
    for k, pose in enumerate(poses):
        tool = "suction" if k % 2 else "spatula"
        res = ur5e.solve_ik(pose, seed, tool)
        _check(res, pose, tool)
        if k < n_far:
            assert not res.ok and res.reason == "out_of_reach"
        ok += res.ok
    assert ok == n - n_far, "every target in the workspace is reachable from the twin's mount"


def test_ik_reports_a_joint_limit() -> None:
    seed = ur5e.solve_ik(np.array([0.5, 0.0, 0.1, 0.0]), ur5e.home_seed(), "suction").q
    # wind the wrist to just inside its +2 pi limit, then ask for more of the same yaw direction
    seed = seed.copy()
    seed[5] = ur5e.JOINT_UPPER[5] - 0.05
    here = ur5e.tcp_table_pose(seed, "suction")
    sign = 1.0 if ur5e.tcp_table_pose(seed + [0, 0, 0, 0, 0, 0.01], "suction")[3] > here[3] else -1
    # q6 grows with yaw * sign: a yaw change of sign * 0.5 needs q6 beyond +2 pi
    target = here.copy()
    target[3] = here[3] + sign * 0.5
    res = ur5e.solve_ik(target, seed, "suction")
    _check(res, target, "suction")
    assert not res.ok and res.reason == "joint_limit"
    assert res.q[5] == pytest.approx(ur5e.JOINT_UPPER[5], abs=1e-9)


def test_check_reachable() -> None:
    inside = [(0.3, -0.4, 0.0, 0.5), (0.74, 0.49, 0.0, -2.0), (0.5, 0.0, 0.15, 3.0)]
    assert ur5e.check_reachable(inside, "suction") is None
    msg = ur5e.check_reachable([(0.5, 0.0, 0.1, 0.0), (1.5, 0.0, 0.0, 0.0)], "suction")
    assert msg is not None and msg.startswith("pose (1.50, 0.00, 0.00) is out of the arm's reach (")
    short = float(msg.split("(")[-1].split(" cm")[0])
    assert 50 < short < 70  # 1.5 m away, ~0.92 m reach with the tool down at table height


def test_twin_mount_covers_the_workspace() -> None:
    frac, missed = ur5e.workspace_coverage(
        ur5e.TWIN_CALIBRATION, "suction", n_xy=(5, 9), heights=(0.0, 0.15)
    )
    assert frac == 1.0, missed


def test_home_pose_points_down_at_tool_home() -> None:
    res = ur5e.solve_ik(np.array([0.5, 0.0, 0.15, 0.0]), ur5e.home_seed(), "suction")
    assert res.ok
    r = ur5e.fk(res.q)[:3, :3]
    want = ur5e.TWIN_CALIBRATION.rotation() @ rot_z(0.0) @ TOOL_DOWN
    np.testing.assert_allclose(r, want, atol=2 * ur5e.ANG_TOL)


def test_kinematics_import_neither_mujoco_nor_torch() -> None:
    code = (
        "import sys, uio2_robot.motion.ur5e; "
        "bad = [m for m in ('mujoco', 'torch', 'gymnasium') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
