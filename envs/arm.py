"""The UR5e arm embodiment of the tabletop: its MJCF (generated, no meshes loaded) and its control.

**Model.** One body per link, built from the published DH parameters in
:mod:`uio2_robot.motion.ur5e`: body ``ur_link{i}`` is DH frame ``i - 1`` turned by joint ``i``
(a hinge about its z axis) and its child sits at the fixed DH offset ``Tz(d_i) Tx(a_i)
Rx(alpha_i)``, so the MuJoCo chain and the numpy FK are the same numbers (tested). Links are
cylinders and capsules matching the DH geometry and the UR5e's housings (upper arm offset
0.138 m along the shoulder axis as in UR's description), with UR's masses, centres of mass and
inertias, gravity compensated (``gravcomp``) as the real controller does. Each joint has a
position servo (a UR's ``servoj``) whose torque is limited to the UR5e's joint torques
(150/150/150/28/28/28 N m).

**Looks.** Light grey links and dark blue joint caps, drawn in the cameras (geom group 0), so the
arm occludes objects as a real one does. Each link is drawn as one low-poly merged mesh per
colour (software rendering pays per draw call and per triangle: the primitives at MuJoCo's
default tessellation cost ~3 ms per 128 px view); its collision primitives are not drawn.

**Tool.** The suction cup or spatula (the same ``tool_tip`` geom as the floating tool) hangs
``TOOL_LENGTH`` below the flange on a compliance stage: a 6 cm slide along the tool axis held at
rest by a stiff servo that presses with at most ``STAGE_FORCE`` (5 N). A stiff
position-controlled arm pressing on an object would push with hundreds of newtons (joint
stiffness times target lead) and punch light objects into the table; real suction set-ups use a
spring-loaded level compensator or a bellows cup for the same reason. With it, "descend until
contact" works as with the floating tool: the tip stops, the stage gives, the tip no longer
follows the commanded descent. The stroke covers the largest overtravel the controller can
command (``TARGET_LEAD`` plus one maximal delta, 6 cm). The tool body is named ``tool`` so the
suction welds (``suck_*``) attach to it unchanged.

**Collisions.** Link geoms collide with the table and objects, not with adjacent links (MuJoCo's
parent filter); contacts between non-adjacent links (or the tool and a non-adjacent link) are
self-collisions, counted per episode by :class:`ArmControl`.

**Control** (:class:`ArmControl`, called by ``Sim.command`` once per control period):
1. The Cartesian servo target of the tool tip (table frame ``x, y, z, yaw``, tool pointing
   down; moved by the action's delta with the floating tool's lead clamp) is solved by the DLS
   IK of :mod:`uio2_robot.motion.ur5e`, warm-started from the last solution. A target it cannot
   reach (reach, joint limit, singularity) is approached as far as it converges and counted.
2. Every physics sub-step a Cartesian reference chases that solved target with bounded speed
   and acceleration (0.6 m/s, 8 m/s^2; the wrist at 180 deg/s), its IK is the joint reference,
   and the joint servo targets carry velocity and inverse-dynamics (``M(q) qdd + C(q, v) v``,
   computed afresh each sub-step) feedforward, so the joints follow the reference exactly
   unless something pushes on the arm. The stage's servo gets the same feedforward, so the tip
   keeps still relative to the flange while the arm accelerates.
Why not the floating tool's ramp-then-hold: a 20 kg arm cannot stop and start a 4 cm move
within half a period (~100 m/s^2, far beyond its joint torques); a reference that ramps, holds
and is tracked with torque-limited, lagging servos moves the tip off its path by 0.1-1 mm
whenever the arm accelerates, and the primitive follower's "descend until contact" reads an
upward drift of micrometres after a near-zero commanded descent as "blocked" (the earlier
designs skipped a pick in 2-7 of 280 oracle episodes). With the chasing reference the tool reaches a stopped
target at rest, keeps pace with a moving one, and its height does not move while it travels in
x-y.
"""

from __future__ import annotations

import functools
import math

import mujoco
import numpy as np

from uio2_robot.contracts import wrap_angle
from uio2_robot.motion import ur5e

# Contact bits (see scene.py): table 1, objects 1|2. Arm links are bit 4 and collide with all.
BIT_ARM = 4
ARM_CONTYPE, ARM_CONAFFINITY = BIT_ARM, 1 | 2 | BIT_ARM
ARM_COLLISION_GROUP = 4  # scene.COLLISION_GROUP: collision primitives are not drawn
COLOURS = {
    "link": "0.78 0.79 0.8 1",  # UR light grey
    "cap": "0.1 0.17 0.35 1",  # dark blue joint caps
    "dark": "0.15 0.15 0.16 1",  # base plate, flange, tool adapter
}
MESH_SIDES = 16  # polygon sides of the drawn cylinders

# Housing radii (m): size-3 drives (base, shoulder, elbow) and size-1 wrist drives.
R_BIG, R_ELBOW, R_WRIST = 0.06, 0.05, 0.045
R_UPPER, R_FORE = 0.045, 0.038  # link tubes
SHOULDER_OFFSET, ELBOW_OFFSET = 0.138, 0.015  # link tube planes along the joint axes
BASE_HEIGHT = 0.086
BASE_RADIUS = 0.075

# Joint servos: SERVO_OMEGA for the joint-space inertia at home (diagonal, armature included),
# stiff enough that pressing with the stage's force deflects the tip by well under a millimetre
# (a soft wrist springs back on release and drags what it pressed on). Armature ~ a UR drive's
# reflected rotor inertia (rotor inertia x gear ratio 101 squared).
SERVO_OMEGA = 60.0  # rad/s; omega * PHYSICS_DT stays below 1 for the explicit spring term
# Under-critical damping: MuJoCo applies a position actuator's force limit to kp (ctrl - q) -
# kv v before its implicit damping, so tracking an acceleration a costs (M + kv dt) a of the
# limit; a critically damped servo would spend well over half of each joint's torque on that.
SERVO_ZETA = 0.6
ARMATURE = (0.3, 0.3, 0.3, 0.15, 0.15, 0.15)
_HOME_INERTIA = (1.37, 2.20, 1.21, 0.178, 0.159, 0.150)  # kg m^2, measured with this armature
JOINT_KP = np.array([round(i * SERVO_OMEGA**2, 1) for i in _HOME_INERTIA])
JOINT_KV = np.array([round(2.0 * SERVO_ZETA * i * SERVO_OMEGA, 2) for i in _HOME_INERTIA])
JOINT_DAMPING = 0.5  # passive joint damping, N m s/rad

# Compliance stage between the flange and the tool tip: a slide held at 0 by a stiff,
# critically damped servo that presses down with at most STAGE_FORCE (so a blocked tip gives way)
# and carries a held object with up to STAGE_CARRY. The floating tool's 15 N press limit was
# tried first: the stiff arm keeps the stage compressed until the tool lifts, and 6-15 N let go
# within one physics step makes light objects hop and slide by a centimetre (rotate's oracle
# then failed 2 in 20 episodes). A stage resting on its (soft) end stop rings at ~8 Hz under
# the arm's 10 Hz moves; so it rests on its servo, which the arm's feedforward includes (see
# ArmControl.run_period): the tip then keeps still relative to the flange while the arm moves.
STAGE_STROKE = 0.06
STAGE_SAG = 0.01  # how far a heavy held object may pull the tip out
STAGE_MASS = 0.3
STAGE_KP = 2000.0
STAGE_KV = 2.0 * math.sqrt(STAGE_KP * STAGE_MASS)
STAGE_FORCE = 5.0  # N, pressing
STAGE_CARRY = 25.0  # N, holding

N_JOINTS = 6
# The reference the tool follows (see ArmControl.run_period): a UR5e's TCP moves up to 1 m/s;
# these keep its joints within 180 deg/s and far inside their torques over the workspace.
CART_SPEED = 0.6  # m/s (the follower asks for at most 0.4)
CART_ACCEL = 8.0  # m/s^2
YAW_SPEED = math.radians(180.0)  # rad/s: the wrist's speed limit
YAW_ACCEL = 40.0  # rad/s^2
IK_ITERS = 8  # DLS iterations per solve (warm-started: 1-3 usually suffice)
# A control step whose IK misses its Cartesian target by more than this counts as an IK failure.
IK_POS_TOL = 0.002
IK_ANG_TOL = 0.02
# A solve whose joint move is larger than SMALL_JOINT_STEP (rad) must keep the tip within
# PATH_TOL (m) of the straight Cartesian segment at its midpoint (see ArmControl._straight).
SMALL_JOINT_STEP = 0.03
PATH_TOL = 0.004


# ---------------------------------------------------------------------- geometry
def _f(*vals: float) -> str:
    return " ".join(f"{v:.6g}" for v in vals)


def _quat_of(r: np.ndarray) -> np.ndarray:
    q = np.zeros(4)
    mujoco.mju_mat2Quat(q, np.ascontiguousarray(r, dtype=np.float64).ravel())
    return q


def _rx(alpha: float) -> np.ndarray:
    c, s = math.cos(alpha), math.sin(alpha)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _rz(yaw: float) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


# A part: (kind "cyl" | "capsule", end 0, end 1, radius, colour, collides). Ends in the body frame.
Part = tuple[str, tuple[float, float, float], tuple[float, float, float], float, str, bool]


def _along(axis: str, lo: float, hi: float, at=(0.0, 0.0)) -> tuple[tuple, tuple]:
    """The two ends of a segment along ``axis`` from ``lo`` to ``hi`` through ``at`` (the other
    two coordinates in x, y, z order)."""
    if axis == "x":
        return (lo, *at), (hi, *at)
    if axis == "y":
        return (at[0], lo, at[1]), (at[0], hi, at[1])
    return (*at, lo), (*at, hi)


def _cyl(axis, lo, hi, at, r, colour="link", collides=True) -> Part:
    p0, p1 = _along(axis, lo, hi, at)
    return ("cyl", p0, p1, r, colour, collides)


def _cap(axis, at_axis, at, r) -> Part:
    """A dark blue joint cap: a thin disc, drawn only."""
    p0, p1 = _along(axis, at_axis - 0.003, at_axis + 0.003, at)
    return ("cyl", p0, p1, 0.92 * r, "cap", False)


def link_parts() -> list[list[Part]]:
    """The parts of the base (index 0) and links 1..6, each in its body frame."""
    d1, a2, a3 = ur5e.DH_D[0], ur5e.DH_A[1], ur5e.DH_A[2]
    d4, d5, d6 = ur5e.DH_D[3], ur5e.DH_D[4], ur5e.DH_D[5]
    so, eo, o = SHOULDER_OFFSET, ELBOW_OFFSET, (0.0, 0.0)
    return [
        [  # 0 base, fixed to the table
            _cyl("z", 0.0, BASE_HEIGHT - 0.004, o, BASE_RADIUS),
            ("cyl", (0, 0, BASE_HEIGHT - 0.004), (0, 0, BASE_HEIGHT), 0.9 * BASE_RADIUS, "cap", 0),
        ],
        [  # 1 shoulder: the joint-1 column and the joint-2 drive (its axis is this body's -y)
            _cyl("z", BASE_HEIGHT + 0.001, d1, o, R_BIG),
            _cyl("y", -0.065, 0.065, (0.0, d1), R_BIG),
            _cap("y", 0.068, (0.0, d1), R_BIG),
        ],
        [  # 2 upper arm (z = shoulder axis): shoulder-side housing, tube, elbow housing
            _cyl("z", 0.068, so + 0.05, o, R_BIG),
            _cap("z", so + 0.053, o, R_BIG),
            ("capsule", (0.0, 0.0, so), (a2, 0.0, so), R_UPPER, "link", True),
            _cyl("z", eo + 0.045, so + 0.05, (a2, 0.0), R_ELBOW),
            _cap("z", so + 0.053, (a2, 0.0), R_ELBOW),
        ],
        [  # 3 forearm (z = elbow axis): elbow housing, tube, wrist-1 drive
            _cyl("z", -0.045, eo + 0.043, o, R_ELBOW),
            _cap("z", -0.048, o, R_ELBOW),
            ("capsule", (0.0, 0.0, eo), (a3, 0.0, eo), R_FORE, "link", True),
            _cyl("z", -0.04, 0.07, (a3, 0.0), R_WRIST),
            _cap("z", -0.043, (a3, 0.0), R_WRIST),
        ],
        [  # 4 wrist 1 (z = wrist-1 axis): the wrist-2 drive, its axis along -y at height d4
            _cyl("z", 0.072, d4 + R_WRIST, o, R_WRIST),
            _cap("y", R_WRIST + 0.003, (0.0, d4), 0.9 * R_WRIST),
        ],
        [  # 5 wrist 2 (z = wrist-2 axis): the wrist-3 drive, the tool axis along +y at height d5
            _cyl("z", R_WRIST + 0.002, d5 + R_WRIST, o, R_WRIST),
            _cap("y", -R_WRIST - 0.003, (0.0, d5), 0.9 * R_WRIST),
        ],
        [  # 6 wrist 3 (z = tool axis): the flange and a tool adapter
            _cyl("z", R_WRIST + 0.002, d6 - 0.006, o, R_WRIST),
            _cyl("z", d6 - 0.006, d6, o, 0.032, "cap", False),
            _cyl("z", d6, d6 + 0.012, o, 0.02, "dark"),
        ],
    ]


def _prism(p0, p1, r: float, sides: int = MESH_SIDES) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (2n, 3) and outward-wound triangles of an n-sided prism from p0 to p1."""
    p0, p1 = np.asarray(p0, dtype=np.float64), np.asarray(p1, dtype=np.float64)
    axis = p1 - p0
    axis /= np.linalg.norm(axis)
    u = np.cross(axis, [1.0, 0.0, 0.0] if abs(axis[0]) < 0.9 else [0.0, 1.0, 0.0])
    u /= np.linalg.norm(u)
    v = np.cross(axis, u)
    ang = 2 * np.pi * np.arange(sides) / sides
    ring = r * (np.cos(ang)[:, None] * u + np.sin(ang)[:, None] * v)  # counter-clockwise
    verts = np.concatenate([p0 + ring, p1 + ring])
    n = sides
    faces = []
    for k in range(n):
        a, b = k, (k + 1) % n
        faces += [(a, b, n + b), (a, n + b, n + a)]
    for k in range(1, n - 1):
        faces += [(n, n + k, n + k + 1), (0, k + 1, k)]
    return verts, np.array(faces)


# The links' two colours as one 2 x 2 checker texture: each part's vertices sample the texel
# of its colour, so a link is ONE drawn mesh (each draw call costs ~40 us of software rendering
# per view; a mesh per colour made the arm cost 1.3 ms per step more than this).
_TEXEL_U = {"link": 0.25, "cap": 0.75, "dark": 0.75}
ARM_MATERIAL = (
    f'<texture name="ur_colours" type="2d" builtin="checker" width="2" height="2" '
    f'rgb1="{COLOURS["link"][:-2]}" rgb2="{COLOURS["cap"][:-2]}"/>'
    '<material name="ur_paint" texture="ur_colours" texuniform="false" texrepeat="1 1"/>'
)


def _mesh_xml(name: str, parts: list[Part]) -> str:
    vs, fs, uv, base = [], [], [], 0
    for _, p0, p1, r, colour, _ in parts:
        v, f = _prism(p0, p1, r)
        vs.append(v)
        fs.append(f + base)
        uv += [_TEXEL_U[colour], 0.25] * len(v)
        base += len(v)
    verts, faces = np.concatenate(vs), np.concatenate(fs)
    return (
        f'<mesh name="{name}" vertex="{_f(*verts.ravel())}" texcoord="{_f(*uv)}" '
        f'face="{" ".join(str(int(i)) for i in faces.ravel())}"/>'
    )


def _body_geoms(index: int, parts: list[Part], assets: list[str]) -> str:
    """One drawn mesh (both colours) plus undrawn collision primitives for the parts that
    collide."""
    name = f"ur_vis{index}"
    assets.append(_mesh_xml(name, parts))
    out = [
        f'<geom type="mesh" mesh="{name}" material="ur_paint" contype="0" conaffinity="0" '
        'group="0" density="0"/>'
    ]
    for kind, p0, p1, r, _, collides in parts:
        if collides:
            out.append(
                f'<geom type="{"cylinder" if kind == "cyl" else "capsule"}" '
                f'fromto="{_f(*p0, *p1)}" size="{r:.6g}" contype="{ARM_CONTYPE}" '
                f'conaffinity="{ARM_CONAFFINITY}" group="{ARM_COLLISION_GROUP}" density="0"/>'
            )
    return "".join(out)


def arm_xml(tool: str, tool_geom: str, calib=None) -> tuple[str, str, str, str]:
    """(asset XML, worldbody XML, actuator XML, contact XML) of the UR5e carrying ``tool``.

    ``tool_geom`` is the ``tool_tip`` geom (built by ``scene.py``, as for the floating tool);
    ``calib`` the mounting (default :data:`ur5e.TWIN_CALIBRATION`).
    """
    calib = ur5e.TWIN_CALIBRATION if calib is None else calib
    bx, by, bz, byaw = ur5e.base_pose_in_table(calib)
    parts = link_parts()
    assets: list[str] = [ARM_MATERIAL]
    length = ur5e.TOOL_LENGTH[tool]
    tip_h = 0.02 if tool == "suction" else 0.03  # height of the tool_tip geom above the tip
    tool_body = (
        f'<body name="tool" pos="{_f(0, 0, ur5e.DH_D[5] + length)}" quat="0 1 0 0" gravcomp="1">'
        f'<joint name="tool_stage" type="slide" axis="0 0 1" '
        f'range="{_f(-STAGE_SAG, STAGE_STROKE)}"/>'
        f'<inertial pos="0 0 0.02" mass="{STAGE_MASS}" diaginertia="2e-4 2e-4 1e-4"/>'
        f"{tool_geom}"
        f'<geom type="cylinder" fromto="{_f(0, 0, tip_h, 0, 0, length)}" size="0.007" '
        f'rgba="{COLOURS["dark"]}" contype="0" conaffinity="0" group="0" density="0"/>'
        "</body>"
    )
    content = ""  # the inside of body ur_link{i + 1}, built from the wrist outwards
    for i in reversed(range(N_JOINTS)):
        d, a, alpha = ur5e.DH_D[i], ur5e.DH_A[i], ur5e.DH_ALPHA[i]
        rx = _rx(alpha)
        off = np.array([a, 0.0, d])  # Tz(d) Tx(a): the next DH frame's origin in this body
        com = off + rx @ ur5e.LINK_COM[i]  # UR gives the CoM in DH frame i
        inertia = rx @ ur5e.LINK_INERTIA[i] @ rx.T
        full = _f(
            inertia[0, 0], inertia[1, 1], inertia[2, 2], inertia[0, 1], inertia[0, 2], inertia[1, 2]
        )
        if i == N_JOINTS - 1:  # the flange (DH frame 6) and the tool below it
            child = f'<site name="flange" pos="{_f(*off)}"/>' + tool_body
        else:
            child = (
                f'<body name="ur_link{i + 2}" pos="{_f(*off)}" quat="{_f(*_quat_of(rx))}" '
                f'gravcomp="1">{content}</body>'
            )
        content = (
            f'<joint name="ur_joint{i + 1}" type="hinge" axis="0 0 1" '
            f'range="{_f(ur5e.JOINT_LOWER[i], ur5e.JOINT_UPPER[i])}" '
            f'armature="{ARMATURE[i]:.6g}" damping="{JOINT_DAMPING:.6g}"/>'
            f'<inertial pos="{_f(*com)}" mass="{ur5e.LINK_MASS[i]:.6g}" fullinertia="{full}"/>'
            f"{_body_geoms(i + 1, parts[i + 1], assets)}{child}"
        )
    plate = ""
    if bz > 1e-6:  # a pedestal under a raised base
        plate = _body_geoms(7, [("cyl", (0, 0, -bz), (0, 0, 0), 0.09, "dark", True)], assets)
    # The base is welded to the world and its geoms are massless (density 0). MuJoCo 4.x compiles
    # that; 3.x rejects it ("body mass is too small"), so there the base gets UR's 4 kg (static:
    # it moves nothing) and the model MuJoCo 4.x compiles is unchanged (issue #23).
    base_inertial = ""
    if int(mujoco.__version__.split(".")[0]) < 4:
        base_inertial = '<inertial pos="0 0 0.05" mass="4" diaginertia="0.0044 0.0044 0.0072"/>'
    base = (
        f'<body name="ur_base" pos="{_f(bx, by, bz)}" quat="{_f(*_quat_of(_rz(byaw)))}">'
        f"{base_inertial}{plate}{_body_geoms(0, parts[0], assets)}"
        f'<body name="ur_link1" gravcomp="1">{content}</body>'
        "</body>"
    )
    actuators = "".join(
        f'<position name="act_ur{i + 1}" joint="ur_joint{i + 1}" kp="{JOINT_KP[i]:.6g}" '
        f'kv="{JOINT_KV[i]:.6g}" forcerange="{_f(-ur5e.JOINT_TORQUE[i], ur5e.JOINT_TORQUE[i])}"/>'
        for i in range(N_JOINTS)
    ) + (
        f'<position name="act_stage" joint="tool_stage" kp="{STAGE_KP:.6g}" kv="{STAGE_KV:.6g}" '
        f'forcerange="{_f(-STAGE_FORCE, STAGE_CARRY)}"/>'
    )
    contacts = '<exclude body1="ur_base" body2="ur_link1"/>'
    return "".join(assets), base, actuators, contacts


# ---------------------------------------------------------------------- control
# Where the visible arm waits: the tool high above the robot's edge of the table (x 0.15 m, the
# servo's limit, 0.1 m short of the workspace; y 0.15 m off the base's axis). From there the arm
# stays out of the part of the top view a policy reads (the shipped policy's workspace crop:
# measured, not one pixel of it changes; parked at x 0.2 m the wrist reached 5 rows into it and
# the shipped policy's visual_manipulation success on the arm fell from 43/50 to 28/50), and the
# wrist is well off the shoulder axis (parked at y 0 it was near the inner singularity and missed
# its IK target on the first ticks out of the park in a quarter of the episodes). Episodes start
# here and every primitive ends here (PrimitiveFollower(park=...)).
ARM_PARK = (0.15, 0.15, 0.3, 0.0)


@functools.lru_cache(maxsize=8)
def home_joints(tool: str, home: tuple[float, float, float]) -> np.ndarray:
    """Joint angles that put the tool tip at ``home`` pointing down with yaw 0 (solved once)."""
    target = ur5e.target_matrix(np.array([*home, 0.0]), ur5e.TWIN_CALIBRATION)
    res = ur5e.solve_ik_matrix(
        target, ur5e.home_seed(ur5e.TWIN_CALIBRATION), ur5e.TOOL_LENGTH[tool], 200, 1e-7, 1e-7
    )
    if res.pos_err > 1e-5 or res.yaw_err > 1e-4 or res.tilt_err > 1e-4:
        raise RuntimeError(f"the arm's home pose {home} is not reachable: {res.reason}")
    res.q.setflags(write=False)
    return res.q


def _chase(
    c: np.ndarray, v: np.ndarray, goal: np.ndarray, dt: float
) -> tuple[np.ndarray, np.ndarray]:
    """One sub-step of the reference (x, y, z, yaw) chasing ``goal``, time-optimally under the
    speed and acceleration bounds (``CART_*`` along the line to the goal, ``YAW_*``), landing on
    the goal exactly when it can."""
    c, v = c.copy(), v.copy()
    for lo, hi, vmax, amax in ((0, 3, CART_SPEED, CART_ACCEL), (3, 4, YAW_SPEED, YAW_ACCEL)):
        e = goal[lo:hi] - c[lo:hi]
        dist = math.sqrt(float(e @ e))
        speed = min(vmax, math.sqrt(2.0 * amax * dist), dist / dt)
        dv = (e * (speed / dist) if dist > 1e-12 else 0.0 * e) - v[lo:hi]
        n = math.sqrt(float(dv @ dv))
        if n > amax * dt:
            dv *= amax * dt / n
        v[lo:hi] += dv
        c[lo:hi] += v[lo:hi] * dt
    return c, v


class ArmControl:
    """Joint-level side of the arm: IK from the Cartesian target, joint trajectory, counters."""

    def __init__(self, model: mujoco.MjModel, tool: str, home: tuple[float, float, float]) -> None:
        m = model
        self.model = model
        self.tool = tool
        self.length = ur5e.TOOL_LENGTH[tool]
        self.calib = ur5e.TWIN_CALIBRATION
        jid = [
            mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, f"ur_joint{i + 1}") for i in range(6)
        ]
        self.qadr = np.array([m.jnt_qposadr[j] for j in jid])
        self.dadr = np.array([m.jnt_dofadr[j] for j in jid])
        stage = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, "tool_stage")
        self.stage_qadr = m.jnt_qposadr[stage]
        self.stage_dadr = m.jnt_dofadr[stage]
        self.act = np.array(
            [mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_ACTUATOR, f"act_ur{i + 1}") for i in range(6)]
        )
        self.stage_act = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_ACTUATOR, "act_stage")
        self.tool_body = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, "tool")
        arm_bodies = {mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, "ur_base"), self.tool_body}
        arm_bodies |= {
            mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, f"ur_link{i + 1}") for i in range(6)
        }
        self.arm_geom = np.isin(m.geom_bodyid, sorted(arm_bodies)) & (m.geom_contype > 0)
        self._kv_total = JOINT_KV + JOINT_DAMPING  # servo and passive damping, both implicit
        self._ff_dofs = np.append(self.dadr, self.stage_dadr)
        self._armature = m.dof_armature[self.dadr].copy()
        self._rne = np.zeros(m.nv)
        self.home_q = home_joints(tool, tuple(float(v) for v in home))
        self.home_pose = np.array([*home, 0.0], dtype=np.float64)
        self.stats = {"ik_failures": 0, "joint_limit_stops": 0, "self_collisions": 0}
        self.q_goal = self.home_q.copy()  # IK solution of the latest Cartesian target
        self.reached = self.home_pose.copy()  # the Cartesian target q_goal reaches
        # the reference the joints track: joint angles and velocities, Cartesian pose, velocity
        self.q_ref, self.qvel_ref = self.home_q.copy(), np.zeros(N_JOINTS)
        self.ref_pose, self.ref_vel = self.home_pose.copy(), np.zeros(4)
        self._self_contact = False

    # ------------------------------------------------------------------ episode
    def reset(self, data: mujoco.MjData) -> None:
        """Arm at home, stage at rest, counters zeroed (call after ``mj_resetData``)."""
        data.qpos[self.qadr] = self.home_q
        data.qvel[self.dadr] = 0.0
        data.qpos[self.stage_qadr] = 0.0
        data.ctrl[self.act] = self.home_q
        data.ctrl[self.stage_act] = 0.0
        self.q_goal = self.home_q.copy()
        self.reached = self.home_pose.copy()
        self.q_ref, self.qvel_ref = self.home_q.copy(), np.zeros(N_JOINTS)
        self.ref_pose, self.ref_vel = self.home_pose.copy(), np.zeros(4)
        self._self_contact = False
        for k in self.stats:
            self.stats[k] = 0

    def halt(self) -> None:
        """Stop the reference where it is (the servos hold it there, e.g. while objects settle):
        the next period starts from rest, aiming at what has been reached."""
        self.qvel_ref = np.zeros(N_JOINTS)
        self.ref_vel = np.zeros(4)
        self.reached = self.ref_pose.copy()
        self.q_goal = self.q_ref.copy()

    # ------------------------------------------------------------------ state
    def tool_pose(self, data: mujoco.MjData) -> np.ndarray:
        """Measured tool tip (x, y, z, yaw), table frame; yaw wrapped to [-pi, pi)."""
        p = data.xpos[self.tool_body]
        r = data.xmat[self.tool_body]  # row-major 3x3: the tool frame is rot_z(yaw) when down
        return np.array([p[0], p[1], p[2], wrap_angle(math.atan2(r[3], r[0]))])

    # ------------------------------------------------------------------ IK
    def _iterate(self, q: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, bool, bool]:
        """Up to ``IK_ITERS`` DLS steps from ``q``: (q, converged, a joint limit froze a joint)."""
        t = ur5e.target_matrix(target, self.calib)
        limited_any = False
        for _ in range(IK_ITERS):
            frames = ur5e.fk_frames(q)
            pos, yaw, tilt = ur5e._split_errors(frames, t, self.length)
            if pos <= 0.05 * IK_POS_TOL and yaw <= 0.05 * IK_ANG_TOL and tilt <= 0.05 * IK_ANG_TOL:
                return q, True, limited_any
            q, limited, _ = ur5e.ik_step(q, t, self.length, frames)
            limited_any |= limited
        pos, yaw, tilt = ur5e._split_errors(ur5e.fk_frames(q), t, self.length)
        return q, pos <= IK_POS_TOL and yaw <= IK_ANG_TOL and tilt <= IK_ANG_TOL, limited_any

    def solve(self, target: np.ndarray) -> tuple[bool, bool]:
        """Move ``q_goal`` to the table-frame tip ``target``: (reached, stopped by a joint limit).

        A target the IK cannot reach (out of reach, a joint at its limit, a singularity) is not
        approximated by a least-squares compromise (which would sag the tool towards the table):
        the arm goes as far along the way as still converges (halving the step up to 3 times)
        and otherwise holds, and the step is counted.
        """
        target = np.asarray(target, dtype=np.float64)
        q, ok, limited = self._iterate(self.q_goal, target)
        if ok and self._straight(q, target):
            self.q_goal, self.reached = q, target.copy()
            return True, False
        for frac in (0.5, 0.25, 0.125):
            part = self.reached + frac * (target - self.reached)
            qp, okp, _ = self._iterate(self.q_goal, part)
            if okp and self._straight(qp, part):
                self.q_goal, self.reached = qp, part
                break
        return False, limited

    def _straight(self, q: np.ndarray, target: np.ndarray) -> bool:
        """Whether the joint-space move from ``q_goal`` to ``q`` keeps the tip near the straight
        Cartesian segment (checked at its midpoint). Near a singularity a small Cartesian step
        needs a large joint swing whose joint-space interpolation sweeps the tip far off the
        path (a UR stops there too): such a step is refused like an unreachable one."""
        if float(np.max(np.abs(q - self.q_goal))) < SMALL_JOINT_STEP:
            return True
        mid = ur5e.tcp_table_pose(0.5 * (q + self.q_goal), self.length, self.calib)
        want = 0.5 * (self.reached[:3] + target[:3])
        return float(np.linalg.norm(mid[:3] - want)) <= PATH_TOL

    # ------------------------------------------------------------------ trajectory
    def _inverse_dynamics(self, data: mujoco.MjData, acc: np.ndarray) -> np.ndarray:
        """Joint torques (arm joints, then the stage) for joint accelerations ``acc`` with the
        stage held still, at the current state: ``M(q) qdd + C(q, v) v`` without gravity (the
        links are gravity compensated). Computed afresh: ``data.qM`` and ``qfrc_bias`` are one
        physics step old, and that lag alone leaves ~0.1 mrad of tracking error at full speed."""
        m = self.model
        mujoco.mj_kinematics(m, data)
        mujoco.mj_comPos(m, data)
        mujoco.mj_comVel(m, data)
        data.qacc[:] = 0.0
        data.qacc[self.dadr] = acc
        flags = m.opt.disableflags
        m.opt.disableflags = flags | mujoco.mjtDisableBit.mjDSBL_GRAVITY
        try:
            mujoco.mj_rne(m, data, 1, self._rne)
        finally:
            m.opt.disableflags = flags
        out = self._rne[self._ff_dofs]
        out[:N_JOINTS] += self._armature * acc  # RNE leaves out the rotors
        return out

    def _track(self, q: np.ndarray, target: np.ndarray) -> np.ndarray:
        """DLS steps from ``q`` until the tip is within 10 nm of ``target``: 1-2 steps for a
        sub-step's motion (one alone leaves a curvature error ~(dq)^2, tens of micrometres at
        full speed; the follower compares sub-millimetre height changes)."""
        for _ in range(3):
            frames = ur5e.fk_frames(q)
            pos, yaw, tilt = ur5e._split_errors(frames, target, self.length)
            if pos < 1e-8 and yaw < 1e-7 and tilt < 1e-7:
                break
            q = ur5e.ik_step(q, target, self.length, frames)[0]
        return q

    def run_period(self, data: mujoco.MjData, n_sub: int, dt: float, after_substep) -> None:
        """Step the physics ``n_sub`` times while the tool moves towards the solved target.

        A Cartesian reference chases the target with bounded speed and acceleration (``CART_*``,
        ``YAW_*``: time-optimal, so it arrives at rest when the target stops, and keeps a steady
        pace while the target keeps moving). Its IK is the joint reference, and the servo
        targets carry the velocity and ``M(q) qdd``
        feedforward that make the joints track it exactly under MuJoCo's implicit integration:
        ``(M + dt kv) qdd = kp (ctrl - q) - kv v`` with ``q``, ``v`` on the reference gives
        ``qdd`` = the reference's. The tip therefore stays on its Cartesian path: an x-y move
        does not disturb its height.
        """
        m = self.model
        goal = self.reached
        c, cv = self.ref_pose, self.ref_vel
        q_prev, v_prev = self.q_ref, self.qvel_ref
        # The joint reference: the IK of the chasing Cartesian reference at every sub-step,
        # warm-started (joint-linear interpolation between IK points would leave the tip off its
        # path by the chord's sagitta, tens of micrometres, which the stage feels as vibration).
        refs = np.empty((n_sub + 1, N_JOINTS))
        refs[0] = q_prev
        for j in range(1, n_sub + 1):
            c, cv = _chase(c, cv, goal, dt)
            guess = refs[j - 1] + (refs[j - 1] - refs[j - 2] if j > 1 else v_prev * dt)
            refs[j] = self._track(guess, ur5e.target_matrix(c, self.calib))
        for j in range(1, n_sub + 1):
            qv = (refs[j] - refs[j - 1]) / dt
            ff = self._inverse_dynamics(data, (qv - v_prev) / dt)
            data.ctrl[self.act] = refs[j - 1] + (ff[:N_JOINTS] + self._kv_total * qv) / JOINT_KP
            data.ctrl[self.stage_act] = ff[N_JOINTS] / STAGE_KP
            mujoco.mj_step(m, data)
            if j % 2 == 0 or j == n_sub:
                self._note_contacts(data)
            after_substep()
            v_prev = qv
        data.ctrl[self.act] = refs[-1]
        data.ctrl[self.stage_act] = 0.0
        self.q_ref, self.qvel_ref = refs[-1].copy(), v_prev
        self.ref_pose, self.ref_vel = c, cv

    # ------------------------------------------------------------------ counters
    def _note_contacts(self, data: mujoco.MjData) -> None:
        """Remember whether two non-adjacent arm parts touch (MuJoCo filters adjacent ones)."""
        if self._self_contact or data.ncon == 0:
            return
        g = data.contact.geom[: data.ncon]
        if np.any(self.arm_geom[g[:, 0]] & self.arm_geom[g[:, 1]]):
            self._self_contact = True

    def end_step(self, ik_ok: bool, limit_stop: bool) -> None:
        """Count one control step's IK failure, joint-limit stop and self-collision."""
        if not ik_ok:
            self.stats["ik_failures"] += 1
        if limit_stop:
            self.stats["joint_limit_stops"] += 1
        if self._self_contact:
            self.stats["self_collisions"] += 1
        self._self_contact = False
