"""Camera images: observation views, segmentation, and the pictures that go into prompts.

One ``mujoco.Renderer`` per env, created lazily on first use (it costs ~0.3 s and must be created
in the process that renders: gymnasium's AsyncVectorEnv builds a throwaway env in the parent just
to read the spaces, and an EGL context made there would not survive the fork).

Views are near-orthographic as in VIMA: the top camera is truly orthographic, the front camera a
narrow-angle perspective from 2.7 m. Shadows and multisampling are off (software rendering is
~50x faster without them); the tool lives in a geom group the cameras do not draw.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import cv2
import mujoco
import numpy as np

from uio2_robot.gl_guard import load_triton_before_gl

from .scene import PARK_GROUP, STUDIO, STUDIO_GROUP
from .shapes import shape
from .sim import Placed, Sim
from .spaces import WORKSPACE_X, WORKSPACE_Y

PROMPT_OBJ_PX = 64  # side of an object's prompt image


@dataclass(frozen=True)
class Staged:
    """An object of a prompt shot: shape, texture and pose (z lifts it, e.g. onto a stack)."""

    shape: str
    texture: str
    x: float
    y: float
    yaw: float = 0.0
    z: float = 0.0005


# The process that made this process's first EGL context. EGL state does not survive fork(): a
# forked child that creates a renderer hangs forever, so it gets a clear error instead.
_RENDER_PID: int | None = None


def rendered_in_this_process() -> bool:
    """Whether this process (not a parent it was forked from) has created a renderer."""
    return os.getpid() == _RENDER_PID


def forked_after_rendering() -> bool:
    """Whether this process was forked from one that had already created an EGL renderer."""
    return _RENDER_PID is not None and os.getpid() != _RENDER_PID


VIEW_MARGIN = 0.03  # m of table shown around the workspace in the top view
FRONT_HALF_WIDTH = 0.56  # m of table width the front view spans at its target


def top_view_workspace_box(height: int, width: int) -> tuple[float, float, float, float]:
    """Where the workspace (plus ``VIEW_MARGIN``) lies in a ``height x width`` top view, as
    fractions (top, left, bottom, right) of the image.

    The top camera is orthographic and frames the whole workspace with the same rule as
    :class:`Views`, so a square view of the 0.5 m x 1 m workspace shows mostly floor above and
    below it; a policy's processor crops to this box to spend its pixels on the workspace.
    """
    aspect = width / height
    x_ext = WORKSPACE_X[1] - WORKSPACE_X[0] + 2 * VIEW_MARGIN  # image rows (vertical)
    y_ext = WORKSPACE_Y[1] - WORKSPACE_Y[0] + 2 * VIEW_MARGIN  # image columns
    fovy = max(x_ext, y_ext / aspect)  # metres spanned vertically
    fovx = fovy * aspect
    rows, cols = min(1.0, x_ext / fovy), min(1.0, y_ext / fovx)
    return (0.5 - rows / 2, 0.5 - cols / 2, 0.5 + rows / 2, 0.5 + cols / 2)


def top_view_point_map() -> tuple[float, float, float, float, float, float]:
    """The affine map from a table point (x, y) in metres to where it appears in the top view
    cropped to :func:`top_view_workspace_box`, as fractions (row, column) of the crop:
    ``row = a*x + b*y + c``, ``column = d*x + e*y + f``, returned as (a, b, c, d, e, f).

    The top camera looks down as VIMA's does, with image up = -x (towards the robot) and image
    right = +y (see ``scene.py``), so the workspace's near edge is the crop's first row and its
    -y edge the first column. A policy's processor keeps this to turn demonstrated pick and place
    points into image locations (the pointing objective, ``mixture.point_weight``).
    """
    x_top = WORKSPACE_X[0] - VIEW_MARGIN
    y_left = WORKSPACE_Y[0] - VIEW_MARGIN
    x_ext = WORKSPACE_X[1] - WORKSPACE_X[0] + 2 * VIEW_MARGIN
    y_ext = WORKSPACE_Y[1] - WORKSPACE_Y[0] + 2 * VIEW_MARGIN
    return (1.0 / x_ext, 0.0, -x_top / x_ext, 0.0, 1.0 / y_ext, -y_left / y_ext)


class Views:
    """Renders the configured cameras (and prompt images) of one :class:`Sim`."""

    def __init__(
        self, sim: Sim, height: int, width: int, cameras: tuple[str, ...], segmentation: bool
    ) -> None:
        self.sim = sim
        self.height, self.width = int(height), int(width)
        self.cameras = cameras
        self.segmentation = segmentation
        m = sim.model
        m.vis.global_.offwidth = max(m.vis.global_.offwidth, self.width)
        m.vis.global_.offheight = max(m.vis.global_.offheight, self.height)
        self._cam_id = {
            name: mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_CAMERA, name)
            for name in ("top", "front", "studio", "studio_side")
        }
        aspect = self.width / self.height
        # Orthographic fovy is the vertical extent in metres; the image's vertical axis is world x.
        x_ext = WORKSPACE_X[1] - WORKSPACE_X[0] + 2 * VIEW_MARGIN
        y_ext = WORKSPACE_Y[1] - WORKSPACE_Y[0] + 2 * VIEW_MARGIN
        m.cam_fovy[self._cam_id["top"]] = max(x_ext, y_ext / aspect)
        # Perspective fovy (degrees, vertical) chosen so the front view spans the table's width.
        cam_pos = m.cam_pos[self._cam_id["front"]]
        dist = math.hypot(cam_pos[0] - 0.48, cam_pos[2])
        half_h = math.atan(FRONT_HALF_WIDTH / dist / aspect)
        m.cam_fovy[self._cam_id["front"]] = math.degrees(2 * half_h)
        self._renderer: mujoco.Renderer | None = None
        # The cameras draw group 0 only (see scene.py for the groups); the studio adds its floor.
        self._option = mujoco.MjvOption()
        self._option.geomgroup[:] = 0
        self._option.geomgroup[0] = 1
        self._studio_option = mujoco.MjvOption()
        self._studio_option.geomgroup[:] = 0
        self._studio_option.geomgroup[0] = 1
        self._studio_option.geomgroup[STUDIO_GROUP] = 1
        self._seg_lut = np.zeros(m.ngeom + 1, dtype=np.int32)

    @property
    def renderer(self) -> mujoco.Renderer:
        """The lazily created renderer."""
        global _RENDER_PID
        if self._renderer is None:
            if forked_after_rendering() and os.environ.get("MUJOCO_GL", "egl") == "egl":
                raise RuntimeError(
                    "this process was forked from one that had already rendered with EGL, and EGL "
                    "contexts do not survive fork (rendering would hang). Start workers with "
                    "multiprocessing context 'spawn' or 'forkserver' (e.g. "
                    "gymnasium.vector.AsyncVectorEnv(fns, context='forkserver'), or "
                    "uio2_robot.envs.make_vector_env), or create the envs before rendering."
                )
            load_triton_before_gl()  # before the EGL context, or triton segfaults later
            self._renderer = mujoco.Renderer(self.sim.model, self.height, self.width)
            _RENDER_PID = os.getpid()
        return self._renderer

    def set_segmentation_ids(self, objects: list[Placed]) -> None:
        """Label object k of the episode as k + 1 in segmentation masks (0 = table/background)."""
        self._seg_lut[:] = 0
        for k, p in enumerate(objects):
            r = self.sim.geom_ranges[p.pool_index]
            self._seg_lut[r.start + 1 : r.stop + 1] = k + 1

    def render(self, camera: str) -> np.ndarray:
        """RGB (H, W, 3) uint8 from ``camera``."""
        r = self.renderer
        option = self._studio_option if camera.startswith("studio") else self._option
        r.update_scene(self.sim.data, self._cam_id[camera], option)
        return r.render()

    def render_segmentation(self, camera: str) -> np.ndarray:
        """Object ids (H, W) int32 from ``camera`` (see :meth:`set_segmentation_ids`)."""
        r = self.renderer
        r.enable_segmentation_rendering()
        try:
            r.update_scene(self.sim.data, self._cam_id[camera], self._option)
            seg = r.render()  # (H, W, 2): geom id (-1 background), object type
        finally:
            r.disable_segmentation_rendering()
        ids = np.where(seg[..., 1] == int(mujoco.mjtObj.mjOBJ_GEOM), seg[..., 0], -1)
        return self._seg_lut[ids + 1]

    def observe(self) -> dict[str, np.ndarray]:
        """One RGB image per configured camera, plus ``segm_<camera>`` masks when enabled."""
        out = {cam: self.render(cam) for cam in self.cameras}
        if self.segmentation:
            for cam in self.cameras:
                out[f"segm_{cam}"] = self.render_segmentation(cam)
        return out

    # ------------------------------------------------------------------ prompt images
    def render_staged(self, camera: str, objects: list[Staged]) -> np.ndarray:
        """``camera``'s image of a scene made of ``objects`` only (VIMA renders prompt scenes
        and object placeholders in a separate sim): every active object is hidden for the shot,
        and pool bodies of the right shapes (parked or active) are dressed and posed, then all of
        it is put back exactly, so the episode's physics is untouched."""
        sim, m, d = self.sim, self.sim.model, self.sim.data
        saved = (d.qpos.copy(), d.qvel.copy(), d.mocap_pos.copy(), d.mocap_quat.copy())
        groups, matids = m.geom_group.copy(), m.geom_matid.copy()
        visual = [r.start for r in sim.geom_ranges]  # each body's merged render mesh
        try:
            for p in sim.active:
                m.geom_group[visual[p.pool_index]] = PARK_GROUP
            used: set[int] = set()
            for o in objects:
                i = next(
                    (k for k, e in enumerate(sim.pool) if e.shape == o.shape and k not in used),
                    None,
                )
                if i is None:
                    raise ValueError(f"no pool body of shape {o.shape!r} left to stage a shot")
                used.add(i)
                m.geom_group[visual[i]] = 0
                m.geom_matid[visual[i]] = sim.material_id(o.texture)
                sim.set_pose(Placed(i, o.shape, o.texture, "staged"), o.x, o.y, o.yaw, o.z)
            mujoco.mj_kinematics(m, d)
            return self.render(camera)
        finally:
            m.geom_group[:], m.geom_matid[:] = groups, matids
            d.qpos[:], d.qvel[:], d.mocap_pos[:], d.mocap_quat[:] = saved
            mujoco.mj_forward(m, d)

    def object_image(
        self, shape_name: str, texture: str, yaw: float = 0.0, side: bool = False
    ) -> np.ndarray:
        """An object photographed alone in the studio, from above (or from 45 degrees, where a
        height must show): (64, 64, 3) uint8. The object need not be in the scene (novel_adj's
        demos, gray placeholders)."""
        camera = "studio_side" if side else "studio"
        self.sim.model.cam_fovy[self._cam_id[camera]] = 2.3 * shape(shape_name).radius
        img = self.render_staged(camera, [Staged(shape_name, texture, *STUDIO, yaw)])
        side = min(self.height, self.width)
        top, left = (self.height - side) // 2, (self.width - side) // 2
        crop = img[top : top + side, left : left + side]
        return cv2.resize(crop, (PROMPT_OBJ_PX, PROMPT_OBJ_PX), interpolation=cv2.INTER_AREA)

    def scene_image(self, objects: list[Staged]) -> np.ndarray:
        """The top view (H, W, 3) uint8 of a scene holding ``objects`` only."""
        return self.render_staged("top", objects)

    def close(self) -> None:
        """Free the GL context."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
