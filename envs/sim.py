"""The physics side of the tabletop: one MuJoCo model, the tool servo, suction and the object pool.

Everything here is privileged simulator state; the env turns it into observations and the tasks
and oracle read it through :class:`Sim`. Two embodiments carry the tool:
- "floating" (default, VIMA's): a hidden end effector on x/y/z/yaw joints driven by
  force-limited position servos, so its motion is physical: it is stopped by contacts, pushes
  objects and carries welded ones (suction), exactly as a compliant arm's flange would;
- "arm": a visible UR5e (``arm.py``) whose joint servos follow the same Cartesian tool target
  through damped-least-squares IK, with the tool on a force-limited compliance stage.
Both expose the same tool pose, proprio, contacts and suction, so the motion code above them
(``uio2_robot.motion.primitive``, the oracle) runs unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import mujoco
import numpy as np

from uio2_robot.contracts import TOOL_XY_MARGIN, TOOL_Z_RANGE, WORKSPACE_X, WORKSPACE_Y, wrap_angle

from .arm import ARM_PARK, ArmControl
from .scene import (
    COLLISION_GROUP,
    EMBODIMENTS,
    PARK_GROUP,
    PHYSICS_DT,
    TOOL_HOME,
    PoolEntry,
    build_scene,
    park_position,
    yaw_of_quat,
)

# Anti wind-up: how far the servo target may run ahead of the measured pose (m, rad).
TARGET_LEAD = 0.02
YAW_LEAD = 0.2
RAMP_FRACTION = 0.5  # the target ramps over this fraction of a control period, then holds


@dataclass
class Placed:
    """An object in the current episode: its pool body, texture and role in the task."""

    pool_index: int
    shape: str
    texture: str
    role: str  # "dragged" | "base" | "distractor" | "bounds" | "constraint" | ...


class Sim:
    """One compiled tabletop with its pool; ``reset_pool`` + ``place`` set up an episode."""

    def __init__(
        self,
        pool: tuple[PoolEntry, ...],
        tool: str,
        control_hz: float,
        embodiment: str = "floating",
    ) -> None:
        if embodiment not in EMBODIMENTS:
            raise ValueError(f"unknown embodiment {embodiment!r}; expected one of {EMBODIMENTS}")
        xml, assets = build_scene(pool, tool, embodiment)
        self.model = mujoco.MjModel.from_xml_string(xml, assets)
        self.data = mujoco.MjData(self.model)
        self.pool = pool
        self.tool = tool
        self.embodiment = embodiment
        self.control_hz = float(control_hz)
        m = self.model
        # One control period is n_sub physics steps (10 at 10 Hz); the actual period is
        # n_sub * PHYSICS_DT when 1 / control_hz is not a multiple of the physics step.
        self.n_sub = max(1, round(1.0 / (control_hz * PHYSICS_DT)))
        self.control_period = self.n_sub * PHYSICS_DT
        ramp = max(1, round(self.n_sub * RAMP_FRACTION))
        chunks = min(3, ramp)
        self._ramp_chunks = [
            ramp // chunks + (1 if k < ramp % chunks else 0) for k in range(chunks)
        ]
        self._hold_sub = self.n_sub - ramp
        self.arm: ArmControl | None = None
        # where a primitive ends and an episode starts: out of the cameras' view for the visible
        # arm; the hidden floating tool needs no such place (None)
        self.park_pose: tuple[float, float, float, float] | None = None
        self.home = TOOL_HOME
        if embodiment == "arm":
            self.park_pose = ARM_PARK
            self.home = ARM_PARK[:3]
            self.arm = ArmControl(m, tool, self.home)
        else:
            tool_joints = ("tool_x", "tool_y", "tool_z", "tool_yaw")
            self._tool_qadr = np.array(
                [
                    m.jnt_qposadr[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, j)]
                    for j in tool_joints
                ]
            )
        self.tool_body = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, "tool")
        self.tool_geom = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, "tool_tip")
        self.body_ids = np.array(
            [mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, e.name) for e in pool], dtype=np.int64
        )
        self.qadr = np.full(len(pool), -1, dtype=np.int64)
        self.dadr = np.full(len(pool), -1, dtype=np.int64)
        self.mocap_ids = np.full(len(pool), -1, dtype=np.int64)
        self.weld_ids = np.full(len(pool), -1, dtype=np.int64)
        self.geom_ranges: list[range] = []
        for i, (e, b) in enumerate(zip(pool, self.body_ids, strict=True)):
            adr = m.body_geomadr[b]
            self.geom_ranges.append(range(adr, adr + m.body_geomnum[b]))
            if e.is_marker:
                self.mocap_ids[i] = m.body_mocapid[b]
            else:
                jnt = m.body_jntadr[b]
                self.qadr[i] = m.jnt_qposadr[jnt]
                self.dadr[i] = m.jnt_dofadr[jnt]
                self.weld_ids[i] = mujoco.mj_name2id(
                    m, mujoco.mjtObj.mjOBJ_EQUALITY, f"suck_{e.name}"
                )
        # geom id -> pool index (or -1): contact sensing and segmentation both need it
        self.geom_to_pool = np.full(m.ngeom, -1, dtype=np.int64)
        for i, r in enumerate(self.geom_ranges):
            self.geom_to_pool[list(r)] = i
        self._matid = {
            name[4:]: k
            for k in range(m.nmat)
            if (name := mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_MATERIAL, k)).startswith("mat_")
        }
        # compiled contact bits of every geom: parked bodies get 0, placed ones these back
        self._contype0 = m.geom_contype.copy()
        self._conaffinity0 = m.geom_conaffinity.copy()
        # group a placed geom returns to: its visual mesh is drawn, its collision parts are not
        self._group_placed = np.where(self._contype0 == 0, 0, COLLISION_GROUP).astype(
            m.geom_group.dtype
        )
        self.active: list[Placed] = []
        self.held: int | None = None  # pool index welded to the tool
        self.tool_on = False
        self.target = np.zeros(4)  # servo target x, y, z, yaw
        self.reset_pool()

    # ------------------------------------------------------------------ episode set-up
    def reset_pool(self) -> None:
        """Park every pool body and put the tool home: the state before an episode is placed."""
        m, d = self.model, self.data
        mujoco.mj_resetData(m, d)
        for i in range(len(self.pool)):
            self._park(i)
        self.active = []
        self.held = None
        self.tool_on = False
        d.eq_active[:] = 0
        self.target[:] = (*self.home, 0.0)
        if self.arm is None:
            d.qpos[self._tool_qadr] = self.target
            d.ctrl[:4] = self.target
        else:
            self.arm.reset(d)  # home joints (IK solved once per tool), counters zeroed
        mujoco.mj_forward(m, d)

    def _park(self, i: int) -> None:
        m, d = self.model, self.data
        r = self.geom_ranges[i]
        m.geom_group[r.start : r.stop] = PARK_GROUP
        pos = park_position(i)
        if self.pool[i].is_marker:
            d.mocap_pos[self.mocap_ids[i]] = pos
            d.mocap_quat[self.mocap_ids[i]] = (1, 0, 0, 0)
            return
        m.geom_contype[r.start : r.stop] = 0
        m.geom_conaffinity[r.start : r.stop] = 0
        m.body_gravcomp[self.body_ids[i]] = 1.0
        q = self.qadr[i]
        d.qpos[q : q + 7] = (*pos, 1.0, 0.0, 0.0, 0.0)
        d.qvel[self.dadr[i] : self.dadr[i] + 6] = 0.0

    def free_pool_index(self, shape_name: str) -> int:
        """An unused pool body of ``shape_name``; raises if the pool has no copy left."""
        used = {p.pool_index for p in self.active}
        for i, e in enumerate(self.pool):
            if e.shape == shape_name and i not in used:
                return i
        raise ValueError(f"no free pool body of shape {shape_name!r} (pool was built too small)")

    def place(
        self,
        shape_name: str,
        texture: str,
        role: str,
        x: float,
        y: float,
        yaw: float,
        z: float = 0.0005,
    ) -> Placed:
        """Take a free pool body of ``shape_name`` and put it on the table with ``texture``."""
        i = self.free_pool_index(shape_name)
        m, d = self.model, self.data
        r = self.geom_ranges[i]
        m.geom_group[r.start : r.stop] = self._group_placed[r.start : r.stop]
        m.geom_matid[r.start : r.stop] = self.material_id(texture)
        quat = (math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2))
        if self.pool[i].is_marker:
            d.mocap_pos[self.mocap_ids[i]] = (x, y, 0.0002)
            d.mocap_quat[self.mocap_ids[i]] = quat
        else:
            m.geom_contype[r.start : r.stop] = self._contype0[r.start : r.stop]
            m.geom_conaffinity[r.start : r.stop] = self._conaffinity0[r.start : r.stop]
            m.body_gravcomp[self.body_ids[i]] = 0.0
            q = self.qadr[i]
            d.qpos[q : q + 7] = (x, y, z, *quat)
            d.qvel[self.dadr[i] : self.dadr[i] + 6] = 0.0
        placed = Placed(i, shape_name, texture, role)
        self.active.append(placed)
        return placed

    def material_id(self, texture: str) -> int:
        """The compiled material of ``texture`` (every texture has one)."""
        try:
            return self._matid[texture]
        except KeyError:
            raise ValueError(f"texture {texture!r} has no material in this model") from None

    def set_pose(self, placed: Placed, x: float, y: float, yaw: float, z: float = 0.0005) -> None:
        """Teleport an active object (used to stage goal images and studio shots, never mid-episode)."""
        i, d = placed.pool_index, self.data
        quat = (math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2))
        if self.pool[i].is_marker:
            d.mocap_pos[self.mocap_ids[i]] = (x, y, 0.0002 + z)
            d.mocap_quat[self.mocap_ids[i]] = quat
        else:
            q = self.qadr[i]
            d.qpos[q : q + 7] = (x, y, z, *quat)
            d.qvel[self.dadr[i] : self.dadr[i] + 6] = 0.0

    def forward(self) -> None:
        """Recompute derived quantities (positions, contacts) after teleporting."""
        mujoco.mj_forward(self.model, self.data)

    def settle(self, seconds: float = 0.2) -> None:
        """Let freshly placed objects come to rest, with the tool holding still."""
        if self.arm is not None:
            self.arm.halt()  # the joint servos hold where the reference is; it stops there too
        mujoco.mj_step(self.model, self.data, nstep=max(1, round(seconds / PHYSICS_DT)))

    # ------------------------------------------------------------------ state
    def pose(self, placed: Placed | int) -> np.ndarray:
        """(x, y, z, yaw) of an object; z is its bottom (body origin) height."""
        i = placed if isinstance(placed, int) else placed.pool_index
        b = self.body_ids[i]
        p = self.data.xpos[b]
        return np.array([p[0], p[1], p[2], yaw_of_quat(self.data.xquat[b])])

    def speed(self, placed: Placed | int) -> float:
        """Linear speed (m/s) of an object; markers never move."""
        i = placed if isinstance(placed, int) else placed.pool_index
        if self.pool[i].is_marker:
            return 0.0
        a = self.dadr[i]
        return float(np.linalg.norm(self.data.qvel[a : a + 3]))

    @property
    def arm_stats(self) -> dict[str, int]:
        """This episode's arm counters (``ik_failures``, ``joint_limit_stops``,
        ``self_collisions``: control steps with each); empty for the floating tool."""
        return dict(self.arm.stats) if self.arm is not None else {}

    def tool_pose(self) -> np.ndarray:
        """Measured tool (x, y, z, yaw); z is the tip height above the table."""
        if self.arm is not None:
            return self.arm.tool_pose(self.data)
        q = self.data.qpos[self._tool_qadr].copy()
        q[3] = wrap_angle(q[3])
        return q

    def tool_contacts(self) -> list[int]:
        """Pool indices of objects the tool tip touches right now."""
        d = self.data
        if d.ncon == 0:
            return []
        g = d.contact.geom[: d.ncon]
        mask = (g[:, 0] == self.tool_geom) | (g[:, 1] == self.tool_geom)
        if not mask.any():
            return []
        other = np.where(g[mask, 0] == self.tool_geom, g[mask, 1], g[mask, 0])
        idx = self.geom_to_pool[other]
        return sorted(set(int(i) for i in idx if i >= 0))

    def in_contact(self, placed: Placed) -> list[int]:
        """Geoms (any, including the table) that an object touches, excluding the tool."""
        d = self.data
        if d.ncon == 0:
            return []
        g = d.contact.geom[: d.ncon]
        r = self.geom_ranges[placed.pool_index]
        mine = (g >= r.start) & (g < r.stop)
        rows = mine.any(axis=1)
        other = np.where(mine[rows, 0], g[rows, 1], g[rows, 0])
        return [int(o) for o in other if o != self.tool_geom and not (r.start <= o < r.stop)]

    def proprio(self) -> np.ndarray:
        """float32 per spaces.PROPRIO_NAMES: tool pose, tool command, holding/contact flag."""
        x, y, z, yaw = self.tool_pose()
        contact = self.held is not None or bool(self.tool_contacts())
        return np.array([x, y, z, yaw, float(self.tool_on), float(contact)], dtype=np.float32)

    # ------------------------------------------------------------------ control
    def command(self, delta: np.ndarray, tool_on: bool) -> None:
        """Advance one control period: move the servo target by ``delta`` (dx, dy, dz, dyaw).

        The target first snaps back to within ``TARGET_LEAD`` of the measured pose (so a tool that
        is blocked by a contact presses with a bounded force rather than winding up), then ramps
        to its new value over the first half of the period and holds, so the tool has settled by
        the time the next observation is taken.
        """
        m, d = self.model, self.data
        if self.arm is not None:
            self._command_arm(delta, tool_on)
            return
        meas = d.qpos[self._tool_qadr]
        start = self.target.copy()
        start[:3] = np.clip(start[:3], meas[:3] - TARGET_LEAD, meas[:3] + TARGET_LEAD)
        start[3] = np.clip(start[3], meas[3] - YAW_LEAD, meas[3] + YAW_LEAD)
        goal = start + np.asarray(delta, dtype=np.float64)
        goal[0] = np.clip(goal[0], WORKSPACE_X[0] - TOOL_XY_MARGIN, WORKSPACE_X[1] + TOOL_XY_MARGIN)
        goal[1] = np.clip(goal[1], WORKSPACE_Y[0] - TOOL_XY_MARGIN, WORKSPACE_Y[1] + TOOL_XY_MARGIN)
        goal[2] = np.clip(goal[2], *TOOL_Z_RANGE)
        self.set_tool(tool_on)
        n = len(self._ramp_chunks)
        for k, nstep in enumerate(self._ramp_chunks, start=1):
            d.ctrl[:4] = start + (goal - start) * (k / n)
            mujoco.mj_step(m, d, nstep=nstep)
            self._suction_update()
        if self._hold_sub:
            mujoco.mj_step(m, d, nstep=self._hold_sub)
            self._suction_update()
        self.target = goal

    def _command_arm(self, delta: np.ndarray, tool_on: bool) -> None:
        """:meth:`command` for the arm: the same Cartesian target and lead clamp; the target is
        turned into joint angles by the DLS IK and the joints ramp there over the period (see
        ``arm.py``)."""
        d, arm = self.data, self.arm
        assert arm is not None
        meas = arm.tool_pose(d)
        meas[3] = self.target[3] + wrap_angle(meas[3] - self.target[3])  # unwrapped like the target
        start = self.target.copy()
        start[:3] = np.clip(start[:3], meas[:3] - TARGET_LEAD, meas[:3] + TARGET_LEAD)
        start[3] = np.clip(start[3], meas[3] - YAW_LEAD, meas[3] + YAW_LEAD)
        goal = start + np.asarray(delta, dtype=np.float64)
        goal[0] = np.clip(goal[0], WORKSPACE_X[0] - TOOL_XY_MARGIN, WORKSPACE_X[1] + TOOL_XY_MARGIN)
        goal[1] = np.clip(goal[1], WORKSPACE_Y[0] - TOOL_XY_MARGIN, WORKSPACE_Y[1] + TOOL_XY_MARGIN)
        goal[2] = np.clip(goal[2], *TOOL_Z_RANGE)
        self.set_tool(tool_on)
        ok, limit_stop = arm.solve(goal)
        arm.run_period(d, self.n_sub, PHYSICS_DT, self._suction_update)
        arm.end_step(ok, limit_stop)
        self.target = goal

    def set_tool(self, on: bool) -> None:
        """Switch suction on or off (the spatula ignores it); releasing drops what is held."""
        self.tool_on = bool(on) and self.tool == "suction"
        if not self.tool_on and self.held is not None:
            self.data.eq_active[self.weld_ids[self.held]] = 0
            self.held = None
        self._suction_update()

    def _suction_update(self) -> None:
        """A suction cup that is on seals onto the first object it touches (a weld at that pose)."""
        if not self.tool_on or self.held is not None:
            return
        touching = [i for i in self.tool_contacts() if not self.pool[i].is_marker]
        if not touching:
            return
        i = touching[0]
        m, d = self.model, self.data
        b1, b2 = self.tool_body, self.body_ids[i]
        q1_inv = np.zeros(4)
        mujoco.mju_negQuat(q1_inv, d.xquat[b1])
        rel_pos = np.zeros(3)
        mujoco.mju_rotVecQuat(rel_pos, d.xpos[b2] - d.xpos[b1], q1_inv)
        rel_quat = np.zeros(4)
        mujoco.mju_mulQuat(rel_quat, q1_inv, d.xquat[b2])
        eq = self.weld_ids[i]
        m.eq_data[eq, 0:3] = 0.0
        m.eq_data[eq, 3:6] = rel_pos  # pose of the object in the tool frame
        m.eq_data[eq, 6:10] = rel_quat
        m.eq_data[eq, 10] = 1.0
        d.eq_active[eq] = 1
        self.held = i
