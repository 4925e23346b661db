"""Structured configs: the typed schema every command's YAML is checked against.

Hydra composes the YAML in ``uio2_robot/configs``; merging the result into these dataclasses
turns a typo or a wrong type on the command line into a clear error before anything runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from uio2_robot.seeding import EVAL_SEED_BASE
from uio2_robot.train.config import TrainConfig

__all__ = ["TrainConfig"]

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
    execute_steps: int = 1  # actions executed from each predicted chunk before re-planning
    threads: int = 0
    providers: list[str] | None = None
    seed: int = 0
    # Scene-guided placement (runtime/guidance.py); null = what the checkpoint or bundle
    # recommends (its config's "inference" section), true/false to force it.
    guide_place: bool | None = None
    guide_margin: int = 1  # value bins of slack around the goal-scene patch
    store: str | None = None  # policy=replay: the trajectory store to replay from
    episode: int = 0  # policy=replay: which of its episodes
    tokenizer: str | None = None  # policy=uio2_official: LLaMA's tokenizer.model


@dataclass
class RolloutConfig:
    """`uio2-robot rollout`: closed-loop episodes with success statistics."""

    policy: PolicyConfig = field(default_factory=PolicyConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    tasks: list[str] = field(default_factory=list)  # empty: every task of each level (VIMA's)
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


@dataclass
class CollectConfig:
    """`uio2-robot collect`: run a policy over tasks x levels x seeds into a trajectory store."""

    out: str = "data/oracle.zarr"
    tasks: list[str] = field(default_factory=lambda: [t for t in ALL_TASKS if t != "same_texture"])
    levels: list[str] = field(default_factory=lambda: ["L1"])
    episodes: int = 100
    workers: int = 2
    seed: int = 0
    policy: str = "oracle"
    action_mode: str = "primitive"
    only_success: bool = True
    image_size: int = 128
    progress: bool = True


@dataclass
class DataConfig:
    """`uio2-robot data info|validate|video|merge STORE ...`."""

    episode: int = 0
    out: str | None = None
    deep: bool = False
    fps: float = 4.0
    overwrite: bool = False
