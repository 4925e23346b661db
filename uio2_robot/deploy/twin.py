"""Serve a privileged sim policy (the scripted oracle) to a robot whose physics is a sim twin.

The oracle reads true object poses, which no camera frame carries, so a server cannot run it
from observations alone. It can run it on a *twin*: its own copy of the robot's simulated
episode (same task, level and seed), kept in lockstep by replaying exactly the actions the robot
applied (the ``applied`` field of ``infer``, after the robot's safety envelope and holds).
MuJoCo is deterministic for the same model and inputs, so the twin's tool pose must equal the
proprio the robot reports, and it is checked at every step: a divergence (a dropped action, a
different model version) is an error, never a silently wrong oracle.

This makes the loopback tests honest: the robot's images, proprio, prompt and actions all cross
the socket, and the only thing the server knows beyond them is the episode's seed. With a
learned or ONNX policy none of this is used.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # annotations only: the robot PC (runtime profile) has no gymnasium
    from gymnasium import spaces

from uio2_robot.policies.base import Observation, Policy, PromptSegment

TWIN_IMAGE_SIZE = 16  # the twin's own renders are never used; keep them cheap
SYNC_TOLERANCE = 1e-5  # max |twin proprio - robot proprio|; the sim is bit-exact in practice


def make_twin_env(task: str, level: str, control_hz: float, embodiment: str = "floating") -> Any:
    """A delta-mode env for the twin: one tiny camera, since only its physics matters."""
    from uio2_robot.envs import make_env

    return make_env(
        task,
        level,
        action_mode="delta",
        image_size=TWIN_IMAGE_SIZE,
        cameras=("top",),
        control_hz=control_hz,
        embodiment=embodiment,
    )


class SimTwinPolicy:
    """Wraps a privileged `Policy` (given ``env=`` at reset) around a lockstep sim twin.

    Server hooks (duck-typed, called by :class:`~uio2_robot.deploy.server.PolicyServer`):
    ``set_episode(episode)`` before ``reset`` and ``observe_applied(applied, applied_from,
    step)`` before each ``act``; ``close()`` when the client goes away.
    """

    def __init__(
        self,
        inner: Policy,
        control_hz: float,
        make_env: Callable[..., Any] = make_twin_env,
        tolerance: float = SYNC_TOLERANCE,
    ) -> None:
        self.inner = inner
        self.control_hz = float(control_hz)
        self._make_env = make_env
        self.tolerance = tolerance
        self._env: Any = None
        self._env_key: tuple[str, str, str] | None = None
        self._episode: dict[str, Any] = {}
        self._space: spaces.Box | None = None
        self._prompt: list[PromptSegment] = []
        self._steps = 0
        self._history: list[np.ndarray] = []  # actions replayed this episode
        self._inner_ready = False
        self._done = False

    @property
    def steps(self) -> int:
        """Actions the twin has replayed in this episode."""
        return self._steps

    def set_episode(self, episode: dict[str, Any]) -> None:
        missing = [k for k in ("task", "level", "seed") if episode.get(k) is None]
        if missing:
            raise ValueError(
                f"a sim-twin policy needs the robot's episode {{task, level, seed}} in reset; "
                f"missing {missing}"
            )
        self._episode = dict(episode)

    def reset(
        self, prompt: list[PromptSegment], action_space: spaces.Box, env: Any | None = None
    ) -> None:
        if not self._episode:
            raise ValueError("set_episode({task, level, seed}) must come before reset")
        key = (
            str(self._episode["task"]),
            str(self._episode["level"]),
            str(self._episode.get("embodiment") or "floating"),
        )
        if self._env is None or self._env_key != key:
            self.close()
            self._env = self._make_env(key[0], key[1], self.control_hz, embodiment=key[2])
            self._env_key = key
        _obs, info = self._env.reset(seed=int(self._episode["seed"]))
        ours = [s for s in info["prompt"] if isinstance(s, str)]
        theirs = [s for s in prompt if isinstance(s, str)]
        if ours != theirs:
            raise ValueError(
                f"the twin's episode has prompt text {ours} but the robot sent {theirs}: "
                "different task, seed or suite version"
            )
        self._space = action_space
        self._prompt = list(info["prompt"])
        self._steps = 0
        self._history = []
        self._inner_ready = False  # the inner policy attaches at the first act, once synced
        self._done = False

    def observe_applied(self, applied: np.ndarray, applied_from: int, step: int) -> None:
        """Replay the robot's applied actions so the twin reaches the robot's ``step``."""
        if self._env is None:
            raise ValueError("observe_applied before reset")
        if applied_from > self._steps:
            raise ValueError(
                f"applied actions start at step {applied_from} but the twin is at step "
                f"{self._steps}: the robot skipped actions"
            )
        # A re-sent prefix (the reply to an earlier request was lost) must match what was replayed.
        overlap = min(len(applied), self._steps - applied_from)
        if overlap and not np.array_equal(
            np.stack(self._history[applied_from : applied_from + overlap]), applied[:overlap]
        ):
            raise ValueError(
                f"applied actions for steps {applied_from}..{applied_from + overlap - 1} differ "
                "from those the twin already replayed"
            )
        for action in applied[overlap:]:
            if self._done:
                raise ValueError(
                    f"the twin's episode ended at step {self._steps}; got more actions"
                )
            _obs, _r, terminated, truncated, _info = self._env.step(action)
            self._done = bool(terminated or truncated)
            self._history.append(np.array(action, dtype=np.float32))
            self._steps += 1
        if step != self._steps:
            raise ValueError(
                f"the observation is from step {step} but the applied actions reach step "
                f"{self._steps}; send every applied action"
            )

    def act(self, obs: Observation) -> np.ndarray:
        if self._env is None or self._space is None:
            raise RuntimeError("SimTwinPolicy.act called before reset")
        twin = self._env.unwrapped.sim.proprio()
        diff = float(np.max(np.abs(twin - np.asarray(obs["proprio"], dtype=np.float32))))
        if diff > self.tolerance:
            raise ValueError(
                f"the sim twin is out of sync at step {self._steps}: proprio differs by {diff:.3g} "
                f"(twin {np.round(twin, 4).tolist()}, robot "
                f"{np.round(np.asarray(obs['proprio']), 4).tolist()})"
            )
        if not self._inner_ready:
            self.inner.reset(self._prompt, self._space, env=self._env)
            self._inner_ready = True
        return self.inner.act(obs)

    def close(self) -> None:
        if self._env is not None:
            self._env.close()
            self._env = None
            self._env_key = None
