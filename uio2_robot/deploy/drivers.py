"""The robot driver contract, and the ``sim`` driver: the MuJoCo suite as the robot's digital twin.

A driver is deliberately small (connect, read state, send one end-effector delta, stop) so that
a new arm is one class. Commands are the delta action of ``uio2_robot.contracts``:
``[dx, dy, dz, dyaw, tool]`` per control period in the table frame; the state is the proprio
vector ``PROPRIO_NAMES`` in the same frame. Safety limits are not the driver's job: the loop's
:class:`~uio2_robot.deploy.safety.SafetyEnvelope` has already filtered every command.

For primitive-mode policies a driver also says which ``tool`` is mounted (``suction`` or
``spatula``) and may offer ``check_reachable(waypoints) -> reason | None`` (an arm's reach; the
arm twin and the UR driver share :mod:`uio2_robot.motion.ur5e`), ``max_primitives`` (a
simulator's episode budget) and ``arm_stats()`` (IK failures, joint-limit stops,
self-collisions), all read with ``getattr`` so a minimal driver stays minimal.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from uio2_robot.deploy.cameras import CameraError, Frame
from uio2_robot.policies.base import PromptSegment


@dataclass
class RobotState:
    """Measured state; ``done`` / ``success`` only come from a simulator."""

    proprio: np.ndarray  # (P,) float32, envs.spaces.PROPRIO_NAMES
    t: float  # monotonic time of the measurement
    done: bool = False
    success: bool | None = None


@dataclass
class EpisodeStart:
    """What a driver knows at the start of an episode (a sim knows the task; a real arm not)."""

    prompt: list[PromptSegment] | None = None
    meta: dict[str, Any] = field(default_factory=dict)  # task, level, seed


class RobotDriver(Protocol):
    name: str
    control_hz: float
    realtime: bool  # False for simulators: the loop may run them faster than real time
    tool: str | None  # "suction" | "spatula": what primitive-mode motions use

    def connect(self) -> None: ...

    def start_episode(self) -> EpisodeStart: ...

    def read_state(self) -> RobotState: ...

    def send(self, command: np.ndarray) -> None:
        """Apply one control period's delta ``[dx, dy, dz, dyaw, tool]`` (already safe)."""
        ...

    def stop(self) -> None:
        """Bring the arm to rest now (tool state unchanged, so a held part is not dropped)."""
        ...

    def close(self) -> None: ...


class SimDriver:
    """Drives a delta-mode suite env; ``seeds`` gives one env seed per episode.

    ``embodiment``: ``arm`` (a simulated UR5e with the task's tool on its flange, driven by
    joint servos through differential IK; what `uio2-robot robot` uses) or ``floating`` (the
    suite's floating tool).
    """

    name = "sim"
    realtime = False

    def __init__(
        self,
        task: str = "visual_manipulation",
        level: str = "L1",
        seeds: Iterable[int] = (0,),
        *,
        image_size: int | tuple[int, int] = 128,
        cameras: tuple[str, ...] = ("front", "top"),
        control_hz: float = 10.0,
        max_steps: int | None = None,
        embodiment: str = "floating",
    ) -> None:
        from uio2_robot.envs.tasks import TASK_CLASSES

        if task not in TASK_CLASSES:
            raise ValueError(f"unknown task {task!r}; expected one of {tuple(TASK_CLASSES)}")
        if embodiment not in EMBODIMENTS:
            raise ValueError(f"embodiment must be one of {EMBODIMENTS}, got {embodiment!r}")
        self.task, self.level = task, level
        self.embodiment = embodiment
        self.tool = TASK_CLASSES[task].tool
        self.park_pose: tuple[float, float, float, float] | None = None
        self._seeds: Iterator[int] = iter(seeds)
        self.image_size = image_size
        self.cameras = tuple(cameras)
        self.control_hz = float(control_hz)
        self.max_steps = max_steps
        self.env: Any = None
        self._obs: dict[str, np.ndarray] | None = None
        self._obs_t = 0.0
        self._done = False
        self._success: bool | None = None
        self.steps = 0
        self.stops = 0

    def connect(self) -> None:
        from uio2_robot.envs import make_env

        self.env = make_env(
            self.task,
            self.level,
            action_mode="delta",
            image_size=self.image_size,
            cameras=self.cameras,
            control_hz=self.control_hz,
            max_steps=self.max_steps,
            embodiment=self.embodiment,
        )
        # the env's own primitive budget (VIMA's max steps + 2): a deployed episode gets as many
        # primitives as `uio2-robot rollout` gives the same policy
        self.max_primitives = self.env.unwrapped.task.primitive_max_steps
        # a visible arm ends each primitive out of the cameras' view (None: the hidden tool)
        self.park_pose = self.env.unwrapped.sim.park_pose

    def check_reachable(self, waypoints: Any) -> str | None:
        """Why the tool cannot reach every waypoint (None: it can); the arm's IK decides."""
        if self.embodiment != "arm":
            return None
        from uio2_robot.motion import ur5e

        sim = self.env.unwrapped.sim
        q_now = np.asarray(sim.data.qpos[sim.arm.qadr], dtype=np.float64)  # the arm's joints
        return ur5e.check_reachable(list(waypoints), self.tool, ur5e.TWIN_CALIBRATION, q_seed=q_now)

    def arm_stats(self) -> dict[str, int]:
        """The arm's IK failures, joint-limit stops and self-collisions this episode."""
        if self.env is None or self.embodiment != "arm":
            return {}
        return dict(self.env.unwrapped.sim.arm_stats)  # noqa: C416 (a property's copy)

    def start_episode(self) -> EpisodeStart:
        if self.env is None:
            raise RuntimeError("SimDriver.start_episode before connect()")
        seed = next(self._seeds, None)
        if seed is None:
            raise StopIteration("the sim driver has no seeds left")
        obs, info = self.env.reset(seed=int(seed))
        self._set_obs(obs)
        self._done, self._success, self.steps = False, None, 0
        meta = {
            "task": self.task,
            "level": self.level,
            "seed": int(seed),
            "embodiment": self.embodiment,
        }
        return EpisodeStart(prompt=list(info["prompt"]), meta=meta)

    def _set_obs(self, obs: dict[str, np.ndarray]) -> None:
        self._obs = obs
        self._obs_t = time.monotonic()

    def frame(self, view: str) -> Frame:
        if self._obs is None or view not in self._obs:
            raise CameraError(f"sim camera {view!r} has no frame; the env renders {self.cameras}")
        return Frame(self._obs[view], self._obs_t)

    def read_state(self) -> RobotState:
        if self._obs is None:
            raise RuntimeError("SimDriver.read_state before start_episode()")
        return RobotState(self._obs["proprio"].copy(), self._obs_t, self._done, self._success)

    def send(self, command: np.ndarray) -> None:
        if self._done:
            raise RuntimeError("the sim episode has ended; start a new one")
        obs, _r, terminated, truncated, info = self.env.step(np.asarray(command, dtype=np.float32))
        self._set_obs(obs)
        self.steps += 1
        self._done = bool(terminated or truncated)
        self._success = bool(info.get("is_success", False))

    def stop(self) -> None:
        # The sim tool is a position servo: with no new command it stays where it is.
        self.stops += 1

    def close(self) -> None:
        if self.env is not None:
            self.env.close()
            self.env = None


EMBODIMENTS = ("arm", "floating")


def seed_stream(first: int, count: int | None) -> Iterator[int]:
    """Episode seeds ``first, first + 1, ...`` (``count`` of them, or endless)."""
    it = itertools.count(first)
    return it if count is None else itertools.islice(it, count)
