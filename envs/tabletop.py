"""``TabletopEnv``: a VIMA-Bench style task on the MuJoCo tabletop, gymnasium 1.x API.

One env instance = one task at one level in one action mode. It compiles its model once (a pool
of objects sized for the task and level) and each reset only re-dresses that pool, so resets cost
milliseconds and the renderer is created once.

Action modes (bounds and names: ``envs/spaces.py``):
- ``primitive``: one VIMA pick-and-place (suction) or push (spatula) per step,
  ``[x0, y0, yaw0, x1, y1, yaw1]``. The env runs the motion with the same low-level controller as
  delta mode (see ``motion.py``) and renders once at the end. Push primitives take the spatula's
  heading from the push line (pose1 - pose0); their yaws are ignored. Episodes last VIMA's max
  steps + 2.
- ``delta``: ``[dx, dy, dz, dyaw, tool]`` per control period (``control_hz``, 10 Hz by default).
  ``tool`` > 0.5 turns suction on. Episodes last ``primitive steps x DELTA_SECONDS_PER_PRIMITIVE``
  seconds of control (6 s per primitive step: an oracle pick-and-place takes ~4 s).

Out-of-bounds actions are clipped (``info["action_clipped"]``); a wrong shape, NaN or Inf raises
ValueError. Success terminates the episode, so does an early failure (``info["failure"]``).

Embodiments: ``"floating"`` (default, VIMA's hidden x/y/z/yaw tool) or ``"arm"`` (a visible UR5e
carrying the same tool, driven through IK; ``info["arm"]`` then counts the episode's IK failures,
joint-limit stops and self-collisions). Both take the same actions and report the same proprio.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from uio2_robot.motion.primitive import Primitive, PrimitiveFollower

from . import spaces as contract
from .levels import check_level
from .render import Views
from .scene import EMBODIMENTS, make_pool
from .sim import Sim
from .tasks import TASK_CLASSES, Episode, PromptImage, SetupContext, Task
from .tasks.base import REST_SPEED, LayoutError

DELTA_SECONDS_PER_PRIMITIVE = 6.0
PRIMITIVE_INTERNAL_STEP_LIMIT = 300  # control periods one primitive may take before it is cut off
SETTLE_S = 0.2  # physics time objects get to come to rest after a reset
LAYOUT_RETRIES = 50


def parse_image_size(image_size: int | tuple[int, int]) -> tuple[int, int]:
    """``128`` -> (128, 128); ``(128, 256)`` -> (128, 256) as (height, width)."""
    if isinstance(image_size, int | np.integer):
        h = w = int(image_size)
    else:
        try:
            h, w = (int(v) for v in image_size)
        except (TypeError, ValueError):
            raise ValueError(
                f"image_size must be an int or (height, width), got {image_size!r}"
            ) from None
    if not (16 <= h <= 1024 and 16 <= w <= 1024):
        raise ValueError(f"image_size must be within 16..1024 pixels per side, got {(h, w)}")
    return h, w


class TabletopEnv(gym.Env):
    """A VIMA-style tabletop task. Build it with :func:`uio2_robot.envs.make_env`."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self,
        task: str = "visual_manipulation",
        level: str = "L1",
        action_mode: str = "primitive",
        image_size: int | tuple[int, int] = 128,
        cameras: tuple[str, ...] = contract.CAMERAS,
        segmentation: bool = False,
        control_hz: float = contract.DEFAULT_CONTROL_HZ,
        max_steps: int | None = None,
        render_mode: str | None = None,
        embodiment: str = "floating",
    ) -> None:
        if task not in TASK_CLASSES:
            raise ValueError(f"unknown task {task!r}; expected one of {tuple(TASK_CLASSES)}")
        self.task: Task = TASK_CLASSES[task]()
        check_level(level)
        if level not in self.task.levels:
            raise ValueError(
                f"task {task!r} has no level {level!r}; expected one of {self.task.levels}"
            )
        if action_mode not in contract.ACTION_MODES:
            raise ValueError(
                f"unknown action mode {action_mode!r}; expected one of {contract.ACTION_MODES}"
            )
        cameras = tuple(cameras)
        bad = [c for c in cameras if c not in contract.CAMERAS]
        if not cameras or bad or len(set(cameras)) != len(cameras):
            raise ValueError(
                f"cameras must be distinct names from {contract.CAMERAS}, got {cameras!r}"
            )
        if not (
            isinstance(control_hz, int | float)
            and math.isfinite(control_hz)
            and 1.0 <= control_hz <= 100.0
        ):
            raise ValueError(f"control_hz must be a number in [1, 100], got {control_hz!r}")
        if embodiment not in EMBODIMENTS:
            raise ValueError(f"unknown embodiment {embodiment!r}; expected one of {EMBODIMENTS}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"unknown render_mode {render_mode!r}; expected None or 'rgb_array'")
        if max_steps is not None and (not isinstance(max_steps, int | np.integer) or max_steps < 1):
            raise ValueError(f"max_steps must be a positive int or None, got {max_steps!r}")
        self.level = level
        self.action_mode = action_mode
        self.control_hz = float(control_hz)
        self.cameras = cameras
        self.segmentation = bool(segmentation)
        self.render_mode = render_mode
        h, w = parse_image_size(image_size)
        self.image_size = (h, w)
        self.action_names = contract.action_names(action_mode)
        self.action_space = contract.action_space(action_mode)
        if max_steps is None:
            prim = self.task.primitive_max_steps
            max_steps = (
                prim
                if action_mode == "primitive"
                else math.ceil(prim * DELTA_SECONDS_PER_PRIMITIVE * self.control_hz)
            )
        self.max_steps = int(max_steps)
        obs: dict[str, spaces.Space] = {
            cam: spaces.Box(0, 255, (h, w, 3), dtype=np.uint8) for cam in cameras
        }
        obs["proprio"] = spaces.Box(
            -np.inf, np.inf, (len(contract.PROPRIO_NAMES),), dtype=np.float32
        )
        if self.segmentation:
            for cam in cameras:
                obs[f"segm_{cam}"] = spaces.Box(0, 255, (h, w), dtype=np.int32)
        self.observation_space = spaces.Dict(obs)
        self.embodiment = embodiment
        self.sim = Sim(
            make_pool(self.task.pool_copies(level)), self.task.tool, self.control_hz, embodiment
        )
        self.views = Views(self.sim, h, w, cameras, self.segmentation)
        self.episode: Episode | None = None
        self.steps = 0
        self._done = False
        self._released = None
        self._last_obs: dict[str, np.ndarray] | None = None

    # ------------------------------------------------------------------ gymnasium API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Sample a new episode; ``info`` carries the prompt (segments and plain text)."""
        super().reset(seed=seed)
        episode_seed = int(seed) if seed is not None else int(self.np_random.integers(2**31 - 1))
        rng = np.random.default_rng(episode_seed)
        segments = None
        for _ in range(LAYOUT_RETRIES):
            self.sim.reset_pool()
            self.episode = Episode(self.task.name, self.level, episode_seed)
            ctx = SetupContext(self.sim, self.episode, rng, self.views)
            try:
                self.task.setup(ctx)
            except LayoutError:
                continue
            self.sim.forward()
            self.sim.settle(SETTLE_S)
            self.episode.start = {p.pool_index: self.sim.pose(p) for p in self.episode.objects}
            segments = self.task.prompt(ctx)
            break
        if segments is None:
            raise RuntimeError(f"could not lay out {self.task.name} after {LAYOUT_RETRIES} tries")
        self.views.set_segmentation_ids(self.episode.objects)
        self.steps = 0
        self._done = False
        self._released: int | None = None
        prompt = [s.image if isinstance(s, PromptImage) else s for s in segments]
        prompt_text = "".join(
            f"{{{s.label}}}" if isinstance(s, PromptImage) else s for s in segments
        )
        info = {
            "prompt": prompt,
            "prompt_text": prompt_text,
            "task": self.task.name,
            "level": self.level,
            "seed": episode_seed,
            "action_mode": self.action_mode,
            "max_steps": self.max_steps,
            "is_success": False,
            "failure": None,
            "action_clipped": False,
        }
        return self._observe(), info

    def step(self, action):
        """Apply one action (a whole primitive, or one control period of deltas)."""
        if self.episode is None:
            raise RuntimeError("call reset() before step()")
        if self._done:
            raise RuntimeError("the episode has ended (terminated or truncated); call reset()")
        act, clipped = self._check_action(action)
        ep = self.episode
        if self.action_mode == "primitive":
            self._run_primitive(act)
            event = True
        else:
            held = self.sim.held
            self.sim.command(act[:4], bool(act[4] > 0.5))
            self.task.monitor(self.sim, ep)
            event = self._placement_event(held)
        self.steps += 1
        self.task.update(self.sim, ep, event)
        failure = self.task.failure(self.sim, ep)
        success = failure is None and self.task.success(self.sim, ep)
        terminated = success or failure is not None
        truncated = not terminated and self.steps >= self.max_steps
        self._done = terminated or truncated
        info = {"is_success": bool(success), "failure": failure, "action_clipped": clipped}
        if self.embodiment == "arm":
            info["arm"] = self.sim.arm_stats
        return self._observe(), float(success), terminated, truncated, info

    def render(self):
        """The configured views side by side (H, W * n_views, 3), for ``render_mode="rgb_array"``."""
        if self.render_mode != "rgb_array":
            return None
        obs = self._last_obs if self._last_obs is not None else self.views.observe()
        return np.concatenate([obs[c] for c in self.cameras], axis=1)

    def close(self) -> None:
        """Release the renderer."""
        self.views.close()

    # ------------------------------------------------------------------ helpers
    def _check_action(self, action) -> tuple[np.ndarray, bool]:
        try:
            arr = np.asarray(action, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(
                f"action must be a numeric array of shape {self.action_space.shape} "
                f"({', '.join(self.action_names)}), got {action!r}"
            ) from None
        if arr.shape != self.action_space.shape:
            raise ValueError(
                f"action has shape {arr.shape}, expected {self.action_space.shape} "
                f"({', '.join(self.action_names)}) for action_mode={self.action_mode!r}"
            )
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"action contains NaN or Inf: {arr.tolist()}")
        arr32 = arr.astype(np.float32)  # compare in the space's dtype: float32(pi) is the bound
        out = np.clip(arr32, self.action_space.low, self.action_space.high)
        return out, bool(np.any(out != arr32))

    def _run_primitive(self, act: np.ndarray) -> None:
        kind = "push" if self.task.tool == "spatula" else "pick_place"
        follower = PrimitiveFollower(
            Primitive.from_action(kind, act), self.control_hz, park=self.sim.park_pose
        )
        for _ in range(PRIMITIVE_INTERNAL_STEP_LIMIT):
            if follower.done:
                break
            a = follower.act(self.sim.proprio())
            self.sim.command(a[:4], bool(a[4] > 0.5))
            self.task.monitor(self.sim, self.episode)
        if self.sim.held is not None:  # a cut-off primitive never leaves an object hanging
            self.sim.set_tool(False)
        self.sim.settle(0.1)

    def _placement_event(self, held_before: int | None) -> bool:
        """Delta mode's stand-in for VIMA's step boundary: an object the tool released (this
        period or earlier) has come to rest. Spatula tasks never hold, so they have no events."""
        if held_before is not None and self.sim.held is None:
            self._released = held_before
        if self._released is not None and self.sim.speed(self._released) < REST_SPEED:
            self._released = None
            return True
        return False

    def _observe(self) -> dict[str, np.ndarray]:
        obs = self.views.observe()
        obs["proprio"] = self.sim.proprio()
        self._last_obs = obs
        return obs
