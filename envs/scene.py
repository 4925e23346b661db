"""Build the MuJoCo model of the tabletop: table, cameras, the hidden tool and a pool of objects.

Compiling a model and creating a renderer costs ~0.3 s, so an env builds ONE model for its task and
level and never recompiles: every object an episode might need exists up front as a *pool* body
(free joint, parked below the floor with contacts off and gravity compensated while unused), and a
reset only moves bodies, flips contact bits and swaps materials (all predefined here). Nothing is
loaded from disk: meshes are written inline and pattern textures travel as in-memory PNG assets.

Frames: the table top is z = 0; x points away from the robot (workspace x in [0.25, 0.75]) and
y to the robot's left (y in [-0.5, 0.5]), as in VIMA-Bench. The top (and studio) camera is
oriented as VIMA's: image up = -x (towards the robot), image right = +y, so VIMA's direction
words (north = image up) mean the same here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import mujoco
import numpy as np

from uio2_robot.contracts import TOOL_HOME  # noqa: F401  (re-exported)

from .arm import arm_xml
from .shapes import Box, Cyl, Prism, Shape, shape
from .spaces import WORKSPACE_X, WORKSPACE_Y
from .textures import TEX_TILE_M, TEXTURES, pattern_image

PHYSICS_DT = 0.01  # s; 10 sub-steps per 10 Hz control step (resting drift < 0.01 mm over 10 s)
# Contact bits: the table is bit 1, objects 1|2, object parts that must not touch the table
# (container walls) bit 2 only, the tool both. A pair collides if c1 & a2 or c2 & a1.
BIT_TABLE, BIT_OBJECT = 1, 2
# Geom groups. The cameras draw group 0 only; each object is drawn as ONE merged visual mesh
# (software rendering costs ~35 us per draw call, and a bowl has 17 collision parts).
STUDIO_GROUP = 1  # the studio floor: drawn only for prompt photos
TOOL_GROUP = 3  # the tool is hidden in RGB as in VIMA, but it collides
COLLISION_GROUP = 4  # collision-only parts of objects and the table plane
PARK_GROUP = 5  # every geom of a parked (unused) pool object
STUDIO = (-5.0, 5.0)  # where single objects are photographed for prompt images
# An orthographic camera is spelt `projection="orthographic"` in MuJoCo 4.x (model field
# cam_projection) and `orthographic="true"` in 3.3 (cam_orthographic); each rejects the other
# spelling, so the installed MuJoCo's model fields choose (issue #23: 3.3 for metaworld).
ORTHOGRAPHIC = (
    'projection="orthographic"'
    if hasattr(mujoco.MjModel, "cam_projection")
    else 'orthographic="true"'
)
EMBODIMENTS = ("floating", "arm")

# Tool servo: a stiff, critically damped position loop with force limits, so a blocked tool
# presses with a bounded force (like a compliant arm) instead of tunnelling through objects.
TOOL_MASS = 0.5
TOOL_KP = 2000.0
TOOL_KV = 2.0 * math.sqrt(TOOL_KP * TOOL_MASS)
TOOL_FORCE_XY = 30.0
TOOL_FORCE_Z = 15.0
YAW_ARMATURE = 0.002
YAW_KP = 2.0
YAW_KV = 2.0 * math.sqrt(YAW_KP * YAW_ARMATURE)

CUP_RADIUS = 0.012
SPATULA_HALF = (0.004, 0.03, 0.015)  # thickness (push axis), half width, half height


@dataclass(frozen=True)
class PoolEntry:
    """One pool body: which shape it is, and its copy number among bodies of that shape."""

    name: str  # body name, e.g. "obj_block_1"
    shape: str
    copy: int

    @property
    def is_marker(self) -> bool:
        """Markers (sweep bounds and lines) are flat mocap bodies with no contacts."""
        return shape(self.shape).kind == "marker"


def make_pool(copies: dict[str, int]) -> tuple[PoolEntry, ...]:
    """The pool bodies for ``{shape name: number of copies}`` in a stable order."""
    out = []
    for name in sorted(copies):
        shape(name)  # validates the name
        for k in range(copies[name]):
            out.append(PoolEntry(f"obj_{name}_{k}", name, k))
    return tuple(out)


def _f(*vals: float) -> str:
    return " ".join(f"{v:.6g}" for v in vals)


def _yaw_quat(yaw: float) -> str:
    return _f(math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2))


def _prism_mesh(name: str, part: Prism) -> str:
    """An inline mesh for an extruded convex polygon, with texture coordinates on its faces."""
    verts = list(part.verts)
    # counter-clockwise order so face normals point outwards
    area = sum(
        x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(verts, verts[1:] + verts[:1], strict=True)
    )
    if area < 0:
        verts.reverse()
    n = len(verts)
    vx, tc, faces = [], [], []
    for z in (part.z0, part.z1):
        for x, y in verts:
            vx += [x, y, z]
            tc += [x / TEX_TILE_M, y / TEX_TILE_M]  # one texture tile per TEX_TILE_M
    for k in range(1, n - 1):
        faces += [n, n + k, n + k + 1]  # top
        faces += [0, k + 1, k]  # bottom
    for k in range(n):
        a, b = k, (k + 1) % n
        faces += [a, b, n + b, a, n + b, n + a]
    return (
        f'<mesh name="{name}" vertex="{_f(*vx)}" texcoord="{_f(*tc)}" '
        f'face="{" ".join(map(str, faces))}"/>'
    )


def _part_polygon(part) -> tuple[list[tuple[float, float]], float, float]:
    """A part's footprint polygon (counter-clockwise) and its z range."""
    if isinstance(part, Box):
        c, s = math.cos(part.yaw), math.sin(part.yaw)
        pts = [(sx * part.hx, sy * part.hy) for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1))]
        return (
            [(part.cx + c * x - s * y, part.cy + s * x + c * y) for x, y in pts],
            part.z0,
            part.z1,
        )
    if isinstance(part, Cyl):
        n = 20
        pts = [
            (
                part.cx + part.r * math.cos(2 * math.pi * k / n),
                part.cy + part.r * math.sin(2 * math.pi * k / n),
            )
            for k in range(n)
        ]
        return pts, part.z0, part.z1
    return list(part.verts), part.z0, part.z1


def _visual_mesh(name: str, shp: Shape) -> str:
    """All of a shape's parts merged into one render mesh (one draw call per object)."""
    vx: list[float] = []
    tc: list[float] = []
    faces: list[int] = []
    for part in shp.parts:
        verts, z0, z1 = _part_polygon(part)
        area = sum(
            x0 * y1 - x1 * y0
            for (x0, y0), (x1, y1) in zip(verts, verts[1:] + verts[:1], strict=True)
        )
        if area < 0:
            verts.reverse()
        n, base = len(verts), len(vx) // 3
        for z in (z0, z1):
            for x, y in verts:
                vx += [x, y, z]
                tc += [x / TEX_TILE_M, y / TEX_TILE_M]  # one texture tile per TEX_TILE_M
        for k in range(1, n - 1):
            faces += [base + n, base + n + k, base + n + k + 1, base, base + k + 1, base + k]
        for k in range(n):
            a, b = base + k, base + (k + 1) % n
            faces += [a, b, n + b, a, n + b, n + a]
    return (
        f'<mesh name="{name}" vertex="{_f(*vx)}" texcoord="{_f(*tc)}" '
        f'face="{" ".join(map(str, faces))}"/>'
    )


def _part_geom(part, mesh_name: str, extra: str) -> str:
    zc, hz = 0.5 * (part.z0 + part.z1), 0.5 * (part.z1 - part.z0)
    if isinstance(part, Box):
        return (
            f'<geom type="box" pos="{_f(part.cx, part.cy, zc)}" size="{_f(part.hx, part.hy, hz)}" '
            f'quat="{_yaw_quat(part.yaw)}" {extra}/>'
        )
    if isinstance(part, Cyl):
        return f'<geom type="cylinder" pos="{_f(part.cx, part.cy, zc)}" size="{_f(part.r, hz)}" {extra}/>'
    return f'<geom type="mesh" mesh="{mesh_name}" {extra}/>'


def park_position(index: int) -> tuple[float, float, float]:
    """Where pool body ``index`` waits while unused: under the floor, out of every camera."""
    return (-3.0 - 0.4 * (index % 10), -3.0 - 0.4 * (index // 10), -1.0)


def tool_tip_geom(tool: str, group: int) -> str:
    """The ``tool_tip`` geom in its tool frame (z up, origin at the tip), for either embodiment."""
    if tool == "suction":
        return (
            f'<geom name="tool_tip" type="cylinder" size="{_f(CUP_RADIUS, 0.01)}" pos="0 0 0.01" '
            f'group="{group}" friction="1 0.005 0.0001" rgba="0.2 0.2 0.2 1" contype="3" '
            'conaffinity="3"/>'
        )
    sx, sy, sz = SPATULA_HALF
    return (
        f'<geom name="tool_tip" type="box" size="{_f(sx, sy, sz)}" pos="{_f(0, 0, sz)}" '
        f'group="{group}" friction="0.3 0.005 0.0001" rgba="0.2 0.2 0.2 1" contype="3" '
        'conaffinity="3"/>'
    )


def _floating_tool(tool: str) -> tuple[str, str]:
    """(body XML, actuator XML) of the hidden floating x/y/z/yaw tool on force-limited servos."""
    body = f"""<body name="tool" pos="0 0 0" gravcomp="1">
      <joint name="tool_x" type="slide" axis="1 0 0" ref="0"/>
      <joint name="tool_y" type="slide" axis="0 1 0"/>
      <joint name="tool_z" type="slide" axis="0 0 1"/>
      <joint name="tool_yaw" type="hinge" axis="0 0 1" armature="{YAW_ARMATURE}"/>
      <inertial pos="0 0 0.05" mass="{TOOL_MASS}" diaginertia="0.001 0.001 0.001"/>
      {tool_tip_geom(tool, TOOL_GROUP)}
    </body>"""
    actuators = f"""<position name="act_x" joint="tool_x" kp="{TOOL_KP}" kv="{TOOL_KV}"
              forcerange="{_f(-TOOL_FORCE_XY, TOOL_FORCE_XY)}"/>
    <position name="act_y" joint="tool_y" kp="{TOOL_KP}" kv="{TOOL_KV}"
              forcerange="{_f(-TOOL_FORCE_XY, TOOL_FORCE_XY)}"/>
    <position name="act_z" joint="tool_z" kp="{TOOL_KP}" kv="{TOOL_KV}"
              forcerange="{_f(-TOOL_FORCE_Z, TOOL_FORCE_Z)}"/>
    <position name="act_yaw" joint="tool_yaw" kp="{YAW_KP}" kv="{YAW_KV}" forcerange="-2 2"/>"""
    return body, actuators


def build_scene(
    pool: tuple[PoolEntry, ...], tool: str, embodiment: str = "floating"
) -> tuple[str, dict[str, bytes]]:
    """The MJCF text and in-memory assets of a tabletop with ``pool`` objects and ``tool``.

    ``tool`` is "suction" (a cup that welds to what it touches) or "spatula" (a thin pusher).
    ``embodiment`` is "floating" (the hidden x/y/z/yaw tool, as in VIMA) or "arm" (a visible
    UR5e carrying the tool, see ``arm.py``).
    """
    if tool not in ("suction", "spatula"):
        raise ValueError(f"unknown tool {tool!r}; expected 'suction' or 'spatula'")
    if embodiment not in EMBODIMENTS:
        raise ValueError(f"unknown embodiment {embodiment!r}; expected one of {EMBODIMENTS}")
    assets: dict[str, bytes] = {}
    asset_xml: list[str] = []
    for tex in TEXTURES.values():
        if tex.kind == "solid":
            asset_xml.append(f'<material name="mat_{tex.name}" rgba="{_f(*tex.colors[0], 1.0)}"/>')
        else:
            fname = f"tex_{tex.name}.png"
            ok, png = cv2.imencode(".png", pattern_image(tex)[:, :, ::-1])
            assert ok, "PNG encoding of a generated texture failed"
            assets[fname] = png.tobytes()
            asset_xml.append(f'<texture name="tex_{tex.name}" type="2d" file="{fname}"/>')
            asset_xml.append(
                # Textured geoms are all meshes, whose texcoords already scale the pattern
                # (MuJoCo ignores texrepeat on meshes, and texuniform would skew it).
                f'<material name="mat_{tex.name}" texture="tex_{tex.name}" texuniform="false" '
                'texrepeat="1 1"/>'
            )
    meshes_done: set[str] = set()
    bodies: list[str] = []
    for i, entry in enumerate(pool):
        shp: Shape = shape(entry.shape)
        vis_name = f"vis_{shp.name}"
        if vis_name not in meshes_done:
            asset_xml.append(_visual_mesh(vis_name, shp))
            meshes_done.add(vis_name)
        geoms = [
            f'<geom type="mesh" mesh="{vis_name}" contype="0" conaffinity="0" density="0" '
            f'group="{PARK_GROUP}" material="mat_red"/>'
        ]
        for j, part in enumerate(shp.parts):
            if shp.kind == "marker":
                break  # markers are flat marks: the visual mesh is all there is
            mesh_name = f"m_{shp.name}_{j}"
            if isinstance(part, Prism) and mesh_name not in meshes_done:
                asset_xml.append(_prism_mesh(mesh_name, part))
                meshes_done.add(mesh_name)
            bits = BIT_OBJECT
            if shp.table_parts is None or j in shp.table_parts:
                bits |= BIT_TABLE
            extra = (
                f'contype="{bits}" conaffinity="{bits}" group="{PARK_GROUP}" '
                f'density="{shp.density}" friction="0.6 0.005 0.0001"'
            )
            geoms.append(_part_geom(part, mesh_name, extra))
        px, py, pz = park_position(i)
        if shp.kind == "marker":
            bodies.append(
                f'<body name="{entry.name}" mocap="true" pos="{_f(px, py, pz)}">{"".join(geoms)}</body>'
            )
        else:
            bodies.append(
                f'<body name="{entry.name}" pos="{_f(px, py, pz)}" gravcomp="1">'
                f'<freejoint name="{entry.name}_free"/>{"".join(geoms)}</body>'
            )
    welds = "".join(
        f'<weld name="suck_{e.name}" body1="tool" body2="{e.name}" active="false" solref="0.02 1"/>'
        for e in pool
        if not e.is_marker
    )
    if embodiment == "arm":
        arm_assets, tool_xml, actuator_xml, contact_xml = arm_xml(tool, tool_tip_geom(tool, 0))
        asset_xml.append(arm_assets)
    else:
        (tool_xml, actuator_xml), contact_xml = _floating_tool(tool), ""
    wx0, wx1 = WORKSPACE_X
    wy0, wy1 = WORKSPACE_Y
    wcx, wcy = 0.5 * (wx0 + wx1), 0.5 * (wy0 + wy1)
    xml = f"""
<mujoco model="uio2_tabletop">
  <compiler angle="radian" autolimits="true"/>
  <option timestep="{PHYSICS_DT}" integrator="implicitfast" cone="elliptic">
    <flag multiccd="enable"/>
  </option>
  <visual>
    <quality shadowsize="0" offsamples="0"/>
    <headlight ambient="0.4 0.4 0.4" diffuse="0.3 0.3 0.3" specular="0 0 0"/>
    <map znear="0.01" zfar="30"/>
    <global offwidth="512" offheight="512"/>
  </visual>
  <asset>
    {"".join(asset_xml)}
  </asset>
  <worldbody>
    <light name="sun" directional="true" pos="0.5 0 2" dir="0 0 -1" castshadow="false"
           diffuse="0.35 0.35 0.35" specular="0 0 0"/>
    <geom name="table" type="plane" pos="{_f(wcx, wcy, 0)}" size="3 3 0.05" group="{COLLISION_GROUP}"
          friction="0.6 0.005 0.0001" contype="1" conaffinity="1"/>
    <geom name="table_top" type="box" pos="{_f(wcx, wcy, -0.0015)}" size="2 2 0.001"
          rgba="0.55 0.47 0.38 1" contype="0" conaffinity="0"/>
    <geom name="workspace" type="box" pos="{_f(wcx, wcy, -0.0004)}"
          size="{_f(0.5 * (wx1 - wx0), 0.5 * (wy1 - wy0), 0.0005)}"
          rgba="0.78 0.76 0.72 1" contype="0" conaffinity="0"/>
    <geom name="studio_floor" type="box" pos="{_f(*STUDIO, -0.001)}" size="0.5 0.5 0.001"
          rgba="0.78 0.76 0.72 1" contype="0" conaffinity="0" group="{STUDIO_GROUP}"/>
    <camera name="top" pos="{_f(wcx, wcy, 1.5)}" xyaxes="0 1 0 -1 0 0"
            {ORTHOGRAPHIC} fovy="1.1"/>
    <camera name="front" pos="{_f(wcx - 0.02 + 1.75, wcy, 2.05)}" mode="targetbody" target="look_at"
            fovy="25"/>
    <camera name="studio" pos="{_f(*STUDIO, 1.0)}" xyaxes="0 1 0 -1 0 0"
            {ORTHOGRAPHIC} fovy="0.2"/>
    <camera name="studio_side" pos="{_f(STUDIO[0] + 1.0, STUDIO[1], 1.0)}"
            xyaxes="0 1 0 -0.7071 0 0.7071" {ORTHOGRAPHIC} fovy="0.2"/>
    <body name="look_at" pos="{_f(wcx - 0.02, wcy, 0)}"/>
    {tool_xml}
    {"".join(bodies)}
  </worldbody>
  <equality>{welds}</equality>
  <contact>{contact_xml}</contact>
  <actuator>
    {actuator_xml}
  </actuator>
</mujoco>
"""
    return xml, assets


def yaw_of_quat(q: np.ndarray) -> float:
    """Yaw (rotation about z) of a unit quaternion (w, x, y, z); objects stay nearly flat."""
    w, x, y, z = (float(v) for v in q)
    return math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))
