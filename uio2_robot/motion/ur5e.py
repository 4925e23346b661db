"""UR5e kinematics for the arm twin and the real arm: FK, Jacobian, DLS differential IK, reach.

numpy only (plus :mod:`uio2_robot.contracts` and :mod:`uio2_robot.motion.frames`): the MuJoCo
suite's arm embodiment converts its Cartesian tool target into joint targets with this module,
and the robot PC, which has neither MuJoCo nor torch, runs the very same code to check that a
motion is reachable before a real UR moves.

**Why damped least squares and not mink.** mink (differential IK as a QP) is the usual choice
next to MuJoCo, but its ``Configuration`` wraps a ``mujoco.MjModel``/``MjData``: it would tie
the robot PC to MuJoCo and make the sim's IK and the robot's reachability check two different
solvers. DLS on the manufacturer's DH parameters is ~60 lines of numpy, runs in tens of
microseconds per iteration, and is exactly the same numbers in both places.

**Sources of the numbers.**
- Kinematics (``DH_*``) and dynamics (``LINK_MASS``, ``LINK_COM``): Universal Robots, "DH
  parameters for calculations of kinematics and dynamics" (support article, UR5e table;
  e-Series software 5.1). Standard (distal) DH convention,
  ``T_i = Rz(theta_i) Tz(d_i) Tx(a_i) Rx(alpha_i)``; each centre of mass is given in its link's
  DH frame ``i``.
- Inertia tensors (``LINK_INERTIA``): that article lists them for the UR20/UR30 only ("the
  inertia matrix values for UR3e and UR5e are negligible due to their smaller size"), so they
  come from Universal Robots' own ROS 2 description (``Universal_Robots_ROS2_Description``,
  ``config/ur5e/physical_parameters.yaml``), about each centre of mass in DH-frame axes.
- Joint limits: UR5e e-Series technical specification, working range +-360 deg on every joint;
  the elbow is limited to +-180 deg as in Universal Robots' ROS 2 description
  (``config/ur5e/joint_limits.yaml``: beyond that the forearm runs into the upper arm).
  Maximum joint speed 180 deg/s on every joint (UR5e user manual, via the same file).
- Joint torque limits (``JOINT_TORQUE``): 150 N m for the base, shoulder and elbow drives and
  28 N m for the wrist drives (UR article "Max. joint torques", as quoted by the ROS 2
  description's ``config/ur5e/joint_limits.yaml``).
- Reach: 850 mm (UR5e spec); with the tool pointing down the TCP reaches farther (~0.9 m
  horizontally at table height) because the wrist hangs outboard of the forearm.

Frames: the base frame is UR's (z up along joint 1). The policy's table frame relates to it by
a :class:`~uio2_robot.motion.frames.TableCalibration` (the table origin and heading in the base
frame); :data:`TWIN_CALIBRATION` is the simulated arm's mounting. The tool points straight down
(``frames.TOOL_DOWN``), so a TCP pose is the table-frame ``(x, y, z, yaw)`` of the tool tip.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from uio2_robot.contracts import WORKSPACE_X, WORKSPACE_Y, wrap_angle
from uio2_robot.motion.frames import (
    TOOL_DOWN,
    TableCalibration,
    matrix_to_rotvec,
    rot_z,
    tcp_to_table,
)

# ---------------------------------------------------------------- published UR5e parameters
# UR, "DH parameters for calculations of kinematics and dynamics", UR5e table.
DH_D = np.array([0.1625, 0.0, 0.0, 0.1333, 0.0997, 0.0996])  # m
DH_A = np.array([0.0, -0.425, -0.3922, 0.0, 0.0, 0.0])  # m
DH_ALPHA = np.array([math.pi / 2, 0.0, 0.0, math.pi / 2, -math.pi / 2, 0.0])  # rad
# Same table: link masses (kg) and centres of mass (m, in DH frame i of link i).
LINK_MASS = np.array([3.761, 8.058, 2.846, 1.37, 1.3, 0.365])
LINK_COM = np.array(
    [
        [0.0, -0.02561, 0.00193],
        [0.2125, 0.0, 0.11336],
        [0.15, 0.0, 0.0265],
        [0.0, -0.0018, 0.01634],
        [0.0, 0.0018, 0.01634],
        [0.0, 0.0, -0.001159],
    ]
)
# UR5e spec: +-360 deg on every joint; elbow +-180 deg (UR's ROS description joint_limits.yaml).
JOINT_LOWER = np.array(
    [-2 * math.pi, -2 * math.pi, -math.pi, -2 * math.pi, -2 * math.pi, -2 * math.pi]
)
JOINT_UPPER = -JOINT_LOWER
JOINT_SPEED_MAX = math.radians(180.0)  # rad/s, every joint (UR5e spec)
# UR5e drive sizes: size 3 (base, shoulder, elbow) 150 N m, size 1 (wrists) 28 N m.
JOINT_TORQUE = np.array([150.0, 150.0, 150.0, 28.0, 28.0, 28.0])
REACH = 0.85  # m, UR5e spec

# Inertia tensors (kg m^2) about each link's centre of mass, axes aligned with DH frame i:
# Universal Robots' ROS 2 description (UniversalRobots/Universal_Robots_ROS2_Description,
# config/ur5e/physical_parameters.yaml, "tensor"; its inertial frames are rotated onto the DH
# frames by the file's "rotation" entries). The DH article above does not list them for the
# UR5e ("negligible due to their smaller size").
_TENSOR = (  # ixx, iyy, izz, ixy, ixz, iyz
    (0.00700210, 0.00648091, 0.00657286, 0.00000073, -0.00001053, 0.00049994),
    (0.01505885, 0.33388086, 0.33247207, -0.00005400, 0.00000563, -0.00000181),
    (0.00399632, 0.07879254, 0.07848510, -0.00001365, 0.00137272, -0.00000660),
    (0.00165491, 0.00135962, 0.00126279, -0.00000282, -0.00000438, 0.00010157),
    (0.00135617, 0.00127827, 0.00096614, -0.00000274, 0.00000444, -0.00005048),
    (0.00018694, 0.00018908, 0.00025756, 0.00000006, -0.00000017, -0.00000092),
)
LINK_INERTIA = np.array(
    [
        [[ixx, ixy, ixz], [ixy, iyy, iyz], [ixz, iyz, izz]]
        for ixx, iyy, izz, ixy, ixz, iyz in _TENSOR
    ]
)

# ---------------------------------------------------------------- tools and mounting
# Flange-to-tool-tip distance along the flange z axis (tool at rest). 0.10 m puts the flange,
# and with it the 0.045 m radius wrist, 0.10 m above the tip: objects ~0.08 m tall next to the
# tip clear the wrist while the tip touches the table.
TOOL_LENGTH = {"suction": 0.10, "spatula": 0.10}


def calibration_for_base(x: float, y: float, z: float, yaw: float) -> TableCalibration:
    """The :class:`TableCalibration` of an arm whose base sits at table ``(x, y, z)`` turned by ``yaw``.

    The calibration is the table's pose in the base frame, i.e. the inverse of the base's pose
    in the table frame: ``p_base = rot_z(-yaw) (p_table - b)``.
    """
    rb_t = rot_z(-yaw)
    origin = -rb_t @ np.array([x, y, z], dtype=np.float64)
    return TableCalibration(origin=tuple(float(v) for v in origin), yaw=-float(yaw))


def base_pose_in_table(calib: TableCalibration) -> tuple[float, float, float, float]:
    """The arm base's ``(x, y, z, yaw)`` in the table frame (inverse of the calibration)."""
    rt = calib.rotation()
    b = -rt.T @ np.asarray(calib.origin, dtype=np.float64)
    return float(b[0]), float(b[1]), float(b[2]), wrap_angle(-calib.yaw)


# The simulated arm's mounting: on the table at the table origin, 0.25 m behind the
# workspace's near edge and centred on it (where VIMA-Bench puts its UR5), turned to face it.
# Measured (``workspace_coverage`` on a 26 x 51 grid x heights 0/0.05/0.1/0.15 m, random yaws,
# both tools): 100 % of the workspace reachable with the tool down. The far corners (0.75, +-0.5)
# are 0.90 m from the base; the tool-down reach there is 0.93 m at the table and 0.91 m at
# 0.15 m. Closer mounts reach further but fold the arm so much at the near edge that the wrist
# hits the shoulder (measured at x = +0.05: 4 cm of interpenetration at (0.25, 0, 0));
# mounts further back lose the far corners (x = -0.01: 2 of 924 grid poses unreachable).
# Neither camera is centred on it: the top view centres the workspace (the base shows at its
# bottom edge) and the front camera looks at the workspace from the far side.
TWIN_BASE = (0.0, 0.0, 0.0, math.pi)  # table-frame x, y, z, yaw of the base
TWIN_CALIBRATION = calibration_for_base(*TWIN_BASE)


# ---------------------------------------------------------------- forward kinematics
_CA = np.cos(DH_ALPHA)
_SA = np.sin(DH_ALPHA)


def link_transforms(q: np.ndarray) -> np.ndarray:
    """The six DH link transforms ``T_i = Rz(q_i) Tz(d_i) Tx(a_i) Rx(alpha_i)``, (6, 4, 4)."""
    ct, st = np.cos(q), np.sin(q)
    t = np.zeros((6, 4, 4))
    t[:, 0, 0], t[:, 0, 1], t[:, 0, 2], t[:, 0, 3] = ct, -st * _CA, st * _SA, DH_A * ct
    t[:, 1, 0], t[:, 1, 1], t[:, 1, 2], t[:, 1, 3] = st, ct * _CA, -ct * _SA, DH_A * st
    t[:, 2, 1], t[:, 2, 2], t[:, 2, 3] = _SA, _CA, DH_D
    t[:, 3, 3] = 1.0
    return t


def fk_frames(q: np.ndarray) -> np.ndarray:
    """The DH frames ``F_0 .. F_6`` (7, 4, 4) in the base frame; ``F_6`` is the flange."""
    links = link_transforms(np.asarray(q, dtype=np.float64))
    out = np.empty((7, 4, 4))
    out[0] = np.eye(4)
    out[1] = links[0]
    for i in range(1, 6):
        np.matmul(out[i], links[i], out=out[i + 1])
    return out


def fk(q: np.ndarray) -> np.ndarray:
    """4x4 pose of the flange in the base frame."""
    return fk_frames(q)[6]


def tcp_pose(q: np.ndarray, tool: str | float) -> np.ndarray:
    """4x4 pose of the tool tip in the base frame (the flange moved ``TOOL_LENGTH`` along its z)."""
    length = _tool_length(tool)
    t = fk(q).copy()
    t[:3, 3] += length * t[:3, 2]
    return t


def tcp_table_pose(
    q: np.ndarray, tool: str | float, calib: TableCalibration = TWIN_CALIBRATION
) -> np.ndarray:
    """The tool tip's table-frame ``(x, y, z, yaw)``; yaw as if the tool pointed straight down."""
    t = tcp_pose(q, tool)
    return tcp_to_table(np.concatenate([t[:3, 3], matrix_to_rotvec(t[:3, :3])]), calib)


def tool_tilt(q: np.ndarray) -> float:
    """Angle (rad) between the tool axis and straight down."""
    z = fk(q)[:3, 2]
    return math.acos(max(-1.0, min(1.0, -float(z[2]))))


def jacobian(q: np.ndarray, tool: str | float = 0.0) -> np.ndarray:
    """Geometric Jacobian (6, 6) of the flange (or the tool tip) in the base frame.

    Rows: linear velocity (3) then angular velocity (3); column i: joint i + 1.
    """
    frames = fk_frames(q)
    return _jacobian_from(frames, _tool_length(tool))


def _jacobian_from(frames: np.ndarray, length: float) -> np.ndarray:
    p_end = frames[6, :3, 3] + length * frames[6, :3, 2]
    z = frames[:6, :3, 2]  # joint i + 1 turns about z of frame i
    r = p_end - frames[:6, :3, 3]
    j = np.empty((6, 6))
    j[0] = z[:, 1] * r[:, 2] - z[:, 2] * r[:, 1]  # z x r, one column per joint
    j[1] = z[:, 2] * r[:, 0] - z[:, 0] * r[:, 2]
    j[2] = z[:, 0] * r[:, 1] - z[:, 1] * r[:, 0]
    j[3:] = z.T
    return j


def manipulability(j: np.ndarray) -> float:
    """Yoshikawa's measure sqrt(det(J J^T)); |det J| for the square 6x6 Jacobian."""
    return float(abs(np.linalg.det(j)))


def _tool_length(tool: str | float) -> float:
    if isinstance(tool, str):
        if tool not in TOOL_LENGTH:
            raise ValueError(f"unknown tool {tool!r}; expected one of {tuple(TOOL_LENGTH)}")
        return TOOL_LENGTH[tool]
    return float(tool)


# ---------------------------------------------------------------- differential IK
# m per rad: how orientation errors weigh against position errors. Tilting the tool is worse
# than missing the yaw, so when a target cannot be met exactly (a joint limit, a singularity)
# the compromise keeps the tool pointing down.
YAW_WEIGHT = 0.2
TILT_WEIGHT = 1.0
DAMPING_MIN = 1e-3  # lambda far from singularities
DAMPING_MAX = 0.08  # lambda reached at a singular configuration
MANIP_THRESHOLD = 0.02  # |det J| below which damping grows (typical work poses: 0.05..0.1)
MAX_JOINT_STEP = 0.25  # rad per iteration: larger steps are scaled down
POS_TOL = 1e-3  # m: a solution must put the tip this close
ANG_TOL = 0.01  # rad: and the tool axis/yaw this close


@dataclass(frozen=True)
class IKResult:
    """A solve's joint angles, whether they reach the target, and why not when they do not.

    ``reason`` is None when ``ok``; otherwise "out_of_reach" (the wrist geometry cannot get
    there, :func:`reach_shortfall`), "joint_limit" (a joint at its limit stopped the solve),
    "singular" or "not_converged". ``pos_err`` (m) and ``yaw_err`` (rad) are the remaining errors of ``q``
    (always within the joint limits); ``tilt_err`` is the tool axis's angle from the target's.
    """

    q: np.ndarray
    ok: bool
    reason: str | None
    pos_err: float
    yaw_err: float
    tilt_err: float = 0.0
    iterations: int = 0


def target_matrix(pose: np.ndarray, tool_calib: TableCalibration = TWIN_CALIBRATION) -> np.ndarray:
    """4x4 base-frame pose of the tool tip for a table-frame ``(x, y, z, yaw)``, tool down."""
    pose = np.asarray(pose, dtype=np.float64)
    rt = tool_calib.rotation()
    t = np.eye(4)
    t[:3, :3] = rt @ rot_z(float(pose[3])) @ TOOL_DOWN
    t[:3, 3] = rt @ pose[:3] + np.asarray(tool_calib.origin)
    return t


def pose_error(frames: np.ndarray, target: np.ndarray, length: float) -> np.ndarray:
    """6-vector [position error (m), orientation error (rotation vector, rad)] in the base frame."""
    t = frames[6]
    p = t[:3, 3] + length * t[:3, 2]
    e = np.empty(6)
    e[:3] = target[:3, 3] - p
    e[3:] = matrix_to_rotvec(target[:3, :3] @ t[:3, :3].T)
    return e


def _split_errors(
    frames: np.ndarray, target: np.ndarray, length: float
) -> tuple[float, float, float]:
    """(position error m, yaw error rad, tilt error rad) of ``frames`` against ``target``."""
    t = frames[6]
    p = t[:3, 3] + length * t[:3, 2]
    pos = float(np.linalg.norm(target[:3, 3] - p))
    tilt = math.acos(max(-1.0, min(1.0, float(t[:3, 2] @ target[:3, 2]))))
    # yaw: the flange x axes compared in the plane normal to the target's tool axis
    n = target[:3, 2]
    xa = t[:3, 0] - (t[:3, 0] @ n) * n
    xb = target[:3, 0]
    c = (
        xb[1] * xa[2] - xb[2] * xa[1],
        xb[2] * xa[0] - xb[0] * xa[2],
        xb[0] * xa[1] - xb[1] * xa[0],
    )  # xb x xa
    yaw = math.atan2(c[0] * n[0] + c[1] * n[1] + c[2] * n[2], float(xa @ xb))
    return pos, abs(yaw), tilt


_W = np.array([1.0, 1.0, 1.0, TILT_WEIGHT, TILT_WEIGHT, YAW_WEIGHT])
_EYE6 = np.eye(6)


def ik_step(
    q: np.ndarray, target: np.ndarray, length: float, frames: np.ndarray | None = None
) -> tuple[np.ndarray, bool, float]:
    """One damped-least-squares step from ``q`` towards the 4x4 base-frame tip pose ``target``.

    Returns ``(q_new, limited, manipulability)``: ``q_new`` is within the joint limits;
    ``limited`` says a joint pushing into its limit was frozen (its Jacobian column nulled and
    the step re-solved with the others). The damping grows as the manipulability drops below
    :data:`MANIP_THRESHOLD` (Nakamura and Hanafusa's variable damping), so steps stay bounded
    near singularities instead of blowing up.
    """
    q = np.asarray(q, dtype=np.float64)
    if frames is None:
        frames = fk_frames(q)
    j = _jacobian_from(frames, length)
    e = pose_error(frames, target, length)
    # orientation rows in the target's tool frame: x, y = tilt, z = yaw about the tool axis
    rt = target[:3, :3].T
    jw = np.concatenate([j[:3], rt @ j[3:]]) * _W[:, None]
    ew = np.concatenate([e[:3], rt @ e[3:]]) * _W
    m = manipulability(j)
    lam2 = DAMPING_MIN**2
    if m < MANIP_THRESHOLD:
        lam2 += (1.0 - m / MANIP_THRESHOLD) ** 2 * DAMPING_MAX**2
    free = np.ones(6)
    fixed = np.zeros(6)  # the moves of frozen joints: up to their limit, then no further
    limited = False
    dq = np.zeros(6)
    for _ in range(6):
        jf = jw * free
        dq = jf.T @ np.linalg.solve(jf @ jf.T + lam2 * _EYE6, ew - jw @ fixed) + fixed
        big = float(np.max(np.abs(dq)))
        if big > MAX_JOINT_STEP:
            dq *= MAX_JOINT_STEP / big
        q_new = q + dq
        push = ((q_new > JOINT_UPPER) & (dq > 0)) | ((q_new < JOINT_LOWER) & (dq < 0))
        push &= free > 0
        if not push.any():
            break
        limited = True
        free[push] = 0.0
        fixed[push] = np.where(dq[push] > 0, JOINT_UPPER[push], JOINT_LOWER[push]) - q[push]
    return np.clip(q + dq, JOINT_LOWER, JOINT_UPPER), limited, m


def reach_shortfall(target: np.ndarray, length: float) -> float:
    """How far (m) the 4x4 base-frame tip pose ``target`` lies beyond the arm's reach: 0 when
    the wrist geometry admits it, > 0 by how much the shoulder-to-wrist distance exceeds the
    stretched arm (or falls short of the folded one), ``inf`` inside the cylinder around the
    base axis that no UR can reach (radius d4).

    Closed-form UR wrist geometry: the wrist-3 centre ``p5`` sits ``length + d6`` up the tool
    axis; joint 1 has two solutions that put the arm plane ``d4`` beside it, the wrist-2 axis
    two signs; over those four branches the planar shoulder-elbow pair must span the distance
    from the shoulder to the wrist-1 centre.
    """
    z6 = target[:3, 2]
    p5 = target[:3, 3] - (length + DH_D[5]) * z6
    r5 = math.hypot(p5[0], p5[1])
    d4, d5 = DH_D[3], DH_D[4]
    if r5 < d4:
        return math.inf
    lo, hi = abs(abs(DH_A[1]) - abs(DH_A[2])), abs(DH_A[1]) + abs(DH_A[2])
    base = math.atan2(p5[1], p5[0])
    best = math.inf
    for q1 in (base + math.acos(d4 / r5) + math.pi / 2, base - math.acos(d4 / r5) + math.pi / 2):
        z1 = np.array([math.sin(q1), -math.cos(q1), 0.0])  # the shoulder, elbow, wrist-1 axes
        z4 = np.cross(z1, z6)
        n = float(np.linalg.norm(z4))
        if n < 1e-9:
            continue
        for sign in (1.0, -1.0):
            p3 = p5 - d5 * sign * z4 / n - d4 * z1  # the wrist-1 centre in the arm plane
            dist = float(np.linalg.norm(p3 - np.array([0.0, 0.0, DH_D[0]])))
            best = min(best, max(0.0, dist - hi, lo - dist))
    return best


def solve_ik_matrix(
    target: np.ndarray,
    q_seed: np.ndarray,
    length: float,
    max_iters: int = 100,
    pos_tol: float = POS_TOL,
    ang_tol: float = ANG_TOL,
) -> IKResult:
    """Iterate :func:`ik_step` from ``q_seed`` to the 4x4 base-frame tip pose ``target``."""
    q = np.clip(np.asarray(q_seed, dtype=np.float64), JOINT_LOWER, JOINT_UPPER)
    limited_recent = 0
    best = (math.inf, q, 0.0, 0.0, 0.0)
    stall = 0
    m = 1.0
    it = 0
    for it in range(max_iters + 1):
        frames = fk_frames(q)
        pos, yaw, tilt = _split_errors(frames, target, length)
        score = pos**2 + (YAW_WEIGHT * yaw) ** 2 + (TILT_WEIGHT * tilt) ** 2  # what DLS minimises
        if pos <= pos_tol and yaw <= ang_tol and tilt <= ang_tol:
            return IKResult(q, True, None, pos, yaw, tilt, it)
        if score < 0.999 * best[0]:  # still improving
            best, stall = (score, q, pos, yaw, tilt), 0
        else:
            stall += 1
            if stall >= 8:
                break
        if it == max_iters:
            break
        q, limited, m = ik_step(q, target, length, frames)
        limited_recent = limited_recent + 1 if limited else 0
    _, q, pos, yaw, tilt = best
    if reach_shortfall(target, length) > 0.0:
        reason = "out_of_reach"
    elif limited_recent >= 2:
        reason = "joint_limit"
    elif m < 0.2 * MANIP_THRESHOLD:
        reason = "singular"
    else:
        reason = "not_converged"
    return IKResult(q, False, reason, pos, yaw, tilt, it)


def solve_ik(
    target_table_pose: np.ndarray,
    q_seed: np.ndarray,
    tool: str | float,
    calib: TableCalibration = TWIN_CALIBRATION,
    max_iters: int = 100,
) -> IKResult:
    """Joint angles that put the tool tip at table ``(x, y, z, yaw)``, pointing straight down.

    Damped-least-squares differential IK from ``q_seed`` (it stays on the seed's elbow/wrist
    branch). The returned ``q`` is always within the joint limits; when the target cannot be
    reached, ``ok`` is False and ``reason`` says why, never a silently wrong ``q``.
    """
    target = target_matrix(np.asarray(target_table_pose, dtype=np.float64), calib)
    return solve_ik_matrix(target, q_seed, _tool_length(tool), max_iters)


def home_seed(calib: TableCalibration | None = None) -> np.ndarray:
    """An elbow-up, wrist-down joint configuration facing the workspace centre (an IK seed)."""
    calib = TWIN_CALIBRATION if calib is None else calib
    cx = 0.5 * (WORKSPACE_X[0] + WORKSPACE_X[1])
    cy = 0.5 * (WORKSPACE_Y[0] + WORKSPACE_Y[1])
    p = calib.rotation() @ np.array([cx, cy, 0.0]) + np.asarray(calib.origin)
    # joint 1 at 0 stretches the arm along base -x: face the workspace centre
    q1 = math.atan2(-p[1], -p[0])
    return np.array([q1, -1.9, 1.9, -1.57, -1.5708, 0.0])


def check_reachable(
    poses: list[tuple[float, float, float, float]] | np.ndarray,
    tool: str | float,
    calib: TableCalibration = TWIN_CALIBRATION,
    q_seed: np.ndarray | None = None,
) -> str | None:
    """None when every table-frame ``(x, y, z, yaw)`` is reachable with the tool pointing down.

    Otherwise a short human reason naming the first pose that is not, e.g.
    ``"pose (0.74, 0.49, 0.0) is out of the arm's reach (1.2 cm short)"``. The poses are solved
    in order, each from the previous solution (as the arm would move through them).
    """
    q = home_seed(calib) if q_seed is None else np.asarray(q_seed, dtype=np.float64)
    for pose in poses:
        pose = np.asarray(pose, dtype=np.float64)
        res = solve_ik(pose, q, tool, calib)
        if not res.ok:  # a different seed may be on a better branch before giving up
            alt = solve_ik(pose, home_seed(calib), tool, calib)
            if alt.ok or alt.pos_err < res.pos_err:
                res = alt
        if not res.ok:
            where = f"pose ({pose[0]:.2f}, {pose[1]:.2f}, {pose[2]:.2f})"
            if res.reason == "out_of_reach":
                short = reach_shortfall(target_matrix(pose, calib), _tool_length(tool))
                if math.isinf(short):
                    return f"{where} is too close to the arm's base axis"
                return f"{where} is out of the arm's reach ({100 * short:.1f} cm short)"
            if res.reason == "joint_limit":
                return f"{where} needs a joint beyond its limit ({100 * res.pos_err:.1f} cm off)"
            if res.reason == "singular":
                return f"{where} is at a singular configuration ({100 * res.pos_err:.1f} cm off)"
            return (
                f"{where} is not reachable with the tool pointing down "
                f"({100 * res.pos_err:.1f} cm, {math.degrees(res.yaw_err + res.tilt_err):.0f} deg off)"
            )
        q = res.q
    return None


def workspace_coverage(
    calib: TableCalibration,
    tool: str | float = "suction",
    n_xy: tuple[int, int] = (11, 21),
    heights: tuple[float, ...] = (0.0, 0.05, 0.1, 0.15),
    seed: int = 0,
) -> tuple[float, list[tuple[float, float, float, float]]]:
    """Fraction of a workspace grid (``n_xy`` points in x, y; ``heights``; a random yaw each)
    that :func:`solve_ik` reaches from the home seed, and the poses it does not reach."""
    rng = np.random.default_rng(seed)
    seed_q = home_seed(calib)
    missed: list[tuple[float, float, float, float]] = []
    total = 0
    for x in np.linspace(*WORKSPACE_X, n_xy[0]):
        for y in np.linspace(*WORKSPACE_Y, n_xy[1]):
            for z in heights:
                pose = (float(x), float(y), float(z), float(rng.uniform(-math.pi, math.pi)))
                total += 1
                if not solve_ik(np.array(pose), seed_q, tool, calib).ok:
                    missed.append(pose)
    return 1.0 - len(missed) / total, missed


__all__ = [
    "DH_A",
    "DH_ALPHA",
    "DH_D",
    "IKResult",
    "JOINT_LOWER",
    "JOINT_SPEED_MAX",
    "JOINT_TORQUE",
    "JOINT_UPPER",
    "LINK_COM",
    "LINK_INERTIA",
    "LINK_MASS",
    "TOOL_LENGTH",
    "TWIN_CALIBRATION",
    "base_pose_in_table",
    "calibration_for_base",
    "check_reachable",
    "fk",
    "fk_frames",
    "home_seed",
    "ik_step",
    "jacobian",
    "solve_ik",
    "target_matrix",
    "tool_tilt",
    "reach_shortfall",
    "solve_ik_matrix",
    "tcp_pose",
    "tcp_table_pose",
    "workspace_coverage",
]
