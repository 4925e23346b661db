"""A tiny real gymnasium env with the suite's contract, a privileged oracle, and synthetic episodes.

Used by the trajectory tests (and by spawned collector workers, which import this module by name:
conftest.py puts this folder on sys.path). Observations are a dict of two small RGB views and
proprio; the prompt at reset interleaves text and images, as the MuJoCo suite's does.
"""

from __future__ import annotations

import time
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from uio2_robot.envs.spaces import PROPRIO_NAMES, action_space
from uio2_robot.trajectories.episode import Episode

IMAGE = 16


class ToyTabletopEnv(gym.Env):
    """Reach a hidden target pose. Episode length 2-6 steps (seed dependent); seeds divisible by
    3 are unsolvable (the success flag stays False), so only_success has something to drop."""

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(
        self,
        task: str = "toy",
        level: str = "L1",
        action_mode: str = "primitive",
        image_size: int = IMAGE,
        step_delay: float = 0.0,
    ) -> None:
        self.task, self.level, self.action_mode = task, level, action_mode
        self.image_size = image_size
        self.step_delay = step_delay
        self.action_space = action_space(action_mode)
        img = spaces.Box(0, 255, (image_size, image_size, 3), dtype=np.uint8)
        self.observation_space = spaces.Dict(
            {
                "front": img,
                "top": img,
                "proprio": spaces.Box(-np.inf, np.inf, (len(PROPRIO_NAMES),), dtype=np.float32),
            }
        )
        self.control_hz = 10.0 if action_mode == "delta" else None
        self.render_mode = "rgb_array"

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._seed = 0 if seed is None else seed
        self.target = self.np_random.uniform(self.action_space.low, self.action_space.high).astype(
            np.float32
        )
        self.horizon = int(self.np_random.integers(2, 7))
        self.t = 0
        crop = self.np_random.integers(
            0, 256, (int(self.np_random.integers(3, 9)), 5, 3), dtype=np.uint8
        )
        scene = self.np_random.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        prompt = [f"{self.task}: put the", crop, "into the", scene, "."]
        return self._obs(), {"prompt": prompt, "is_success": False}

    def _obs(self) -> dict[str, np.ndarray]:
        rng = np.random.default_rng([self._seed, self.t])
        return {
            "front": rng.integers(0, 256, (self.image_size, self.image_size, 3), dtype=np.uint8),
            "top": np.full(
                (self.image_size, self.image_size, 3), self.t * 20 % 256, dtype=np.uint8
            ),
            "proprio": np.arange(len(PROPRIO_NAMES), dtype=np.float32) + self.t,
        }

    def step(self, action):
        if self.step_delay:
            time.sleep(self.step_delay)
        self.t += 1
        close = bool(np.allclose(action, self.target, atol=1e-5))
        terminated = self.t >= self.horizon
        success = terminated and close and self._seed % 3 != 0
        return self._obs(), float(close), terminated, False, {"is_success": success}

    def render(self) -> np.ndarray:
        return self._obs()["front"]


class ToyOracle:
    """Privileged policy (the Policy protocol): reads the target from the env at reset."""

    def __init__(self, noise: float = 0.0) -> None:
        self.noise = noise

    def reset(self, prompt: list, action_space: spaces.Box, env: Any | None = None) -> None:
        assert env is not None and isinstance(prompt[0], str)
        self.target = env.target.copy()

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        noise = np.random.normal(0, self.noise, self.target.shape) if self.noise else 0.0
        return (self.target + noise).astype(np.float32)


def make_toy_env(task: str, level: str, action_mode: str = "primitive", image_size: int = IMAGE):
    if task == "broken":
        raise RuntimeError("no such task: broken")
    return ToyTabletopEnv(
        task, level, action_mode, image_size, step_delay=0.05 if task == "slow" else 0.0
    )


def make_toy_policy(name: str, **kwargs: Any) -> ToyOracle:
    if name != "oracle":
        raise ValueError(f"unknown policy {name!r}")
    return ToyOracle(**kwargs)


def synthetic_episode(i: int, image: int = IMAGE) -> Episode:
    """Episode number i: content is a pure function of i, so another process can check it."""
    rng = np.random.default_rng(i)
    t = 1 + i % 5
    return Episode(
        steps={
            "front": rng.integers(0, 256, (t, image, image, 3), dtype=np.uint8),
            "proprio": rng.normal(size=(t, 6)).astype(np.float32),
            "action": rng.uniform(-0.5, 0.5, size=(t, 6)).astype(np.float32),
        },
        prompt=[f"episode {i} ✓", rng.integers(0, 256, (3 + i % 4, 4, 3), dtype=np.uint8)],
        task=["a", "b"][i % 2],
        level="L1",
        seed=i,
        success=i % 2 == 0,
        action_mode="primitive",
        extra={"i": i},
    )


def assert_episode_equal(a: Episode, b: Episode) -> None:
    assert a.steps.keys() == b.steps.keys()
    for k in a.steps:
        assert a.steps[k].dtype == b.steps[k].dtype, k
        np.testing.assert_array_equal(a.steps[k], b.steps[k], err_msg=k)
    assert len(a.prompt) == len(b.prompt)
    for x, y in zip(a.prompt, b.prompt, strict=True):
        if isinstance(x, str):
            assert x == y
        else:
            assert isinstance(y, np.ndarray) and x.dtype == y.dtype and x.shape == y.shape
            assert x.tobytes() == y.tobytes()
    for f in ("task", "level", "seed", "success", "action_mode", "control_hz", "extra"):
        assert getattr(a, f) == getattr(b, f), f
