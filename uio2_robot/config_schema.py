"""Structured configs: the typed schema every command's YAML is checked against.

Hydra composes the YAML in ``uio2_robot/configs``; merging the result into these dataclasses
turns a typo or a wrong type on the command line into a clear error before anything runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from uio2_robot.seeding import EVAL_SEED_BASE

ALL_TASKS = [
    "visual_manipulation",
    "scene_understanding",
    "rotate",
    "rearrange",
    "same_shape",
    "sweep_without_exceeding",
    "same_texture",
]


@dataclass
class EnvConfig:
    """How the sim suite is built (`uio2_robot.envs.make_env` arguments)."""

    action_mode: str = "primitive"
    image_size: int = 128
    cameras: list[str] = field(default_factory=lambda: ["front", "top"])
    control_hz: float = 10.0


@dataclass
class PolicyConfig:
    """Which policy acts and how it is loaded (`uio2_robot.policies.factory.make_policy`)."""

    name: str = "oracle"
    checkpoint: str | None = None
    bundle: str | None = None
    device: str = "cpu"
    greedy: bool = True
    temperature: float = 1.0
    temporal_ensemble: bool = False
    threads: int = 0
    providers: list[str] | None = None
    seed: int = 0


@dataclass
class RolloutConfig:
    """`uio2-robot rollout`: closed-loop episodes with success statistics."""

    policy: PolicyConfig = field(default_factory=PolicyConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    tasks: list[str] = field(default_factory=lambda: list(ALL_TASKS))
    levels: list[str] = field(default_factory=lambda: ["L1", "L2", "L3", "L4"])
    episodes: int = 20
    seed: int = EVAL_SEED_BASE
    out: str | None = "outputs/rollout"
    videos: int = 3
    progress: bool = True
    checkpoint: str | None = None
    bundle: str | None = None


@dataclass
class InfoConfig:
    """`uio2-robot info`: a model preset's configuration and parameter counts."""

    model: str = "small"
