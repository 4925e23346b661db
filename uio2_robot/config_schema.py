"""Structured configs: the typed schema every command's YAML is checked against.

Hydra composes the YAML in ``uio2_robot/configs``; merging the result into these dataclasses
turns a typo or a wrong type on the command line into a clear error before anything runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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
    """How the sim suite is built (`uio2_robot.envs.make_env` arguments), or which gymnasium
    env runs instead (``env=gym:ID``, `uio2_robot.eval.gym_env.make_gym_env`)."""

    action_mode: str = "primitive"
    image_size: int = 128
    cameras: list[str] = field(default_factory=lambda: ["front", "top"])
    control_hz: float = 10.0
    # a registered gymnasium env to evaluate on instead of the suite ("module:ID" imports the
    # module that registers it first, e.g. metaworld:Meta-World/MT1); env=gym:ID sets it
    id: str | None = None
    # gym.make keyword arguments, e.g. {env_name: reach-v3, width: 64, height: 64}
    kwargs: dict[str, Any] = field(default_factory=dict)
    max_episode_steps: int | None = None  # gym.make's episode cap (null: the env's own)
    # the info key that reports success; null = is_success or success, whichever the env reports
    success_key: str | None = None


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
    episodes: int = 10  # per task and level: 420 episodes over the 17-task suite
    seed: int = EVAL_SEED_BASE  # evaluation seeds start here (uio2_robot.seeding.EVAL_SEED_BASE)
    out: str | None = "outputs/rollout"
    videos: int = 3
    progress: bool = True
    checkpoint: str | None = None  # shorthand for policy.checkpoint
    bundle: str | None = None  # shorthand for policy.bundle


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
    # collection seed base (< seeding.EVAL_SEED_BASE); new layouts need a multiple of 100000 not
    # used before
    seed: int = 0
    # who acts: the scripted oracle (demonstrations), or a trained policy (checkpoint=DIR or
    # bundle=DIR): with only_success its successful episodes, the data of a self-improvement
    # round (docs/finetuning.md)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    action_mode: str = "primitive"
    only_success: bool = True
    image_size: int = 128
    progress: bool = True
    checkpoint: str | None = None  # shorthand for policy.checkpoint (policy=uio2)
    bundle: str | None = None  # shorthand for policy.bundle (policy=onnx)


@dataclass
class DataConfig:
    """`uio2-robot data info|validate|video|merge|import-lerobot|export-lerobot STORE ...`."""

    episode: int = 0  # data video: which episode
    # data video: mp4 path; data merge / import-lerobot: output store; export-lerobot: dataset folder
    out: str | None = None
    deep: bool = False  # data validate: also read every chunk
    fps: float = 4.0
    overwrite: bool = False
    # data export-lerobot: video codec of the camera views, h264 (plays in browsers) or av1
    codec: str = "h264"
    crf: int | None = None  # data export-lerobot: video quality, lower is better (h264 23, av1 30)


# ---------------------------------------------------------------- documentation of the keys
# Defaults live only in these dataclasses (and the few others a command's schema nests); the
# YAML files in configs/ hold the groups and what a command deliberately sets differently.
# A key's documentation is the comment on (or the comment block just above) its field, so
# `uio2-robot CMD --help` can print every key with its default and what it means.


def field_docs(schema: Any) -> dict[str, str]:
    """Dotted key -> the comment of its field, for ``schema`` (a config dataclass or an
    instance of one) and the dataclasses it nests."""
    import ast
    import dataclasses
    import inspect
    import typing

    out: dict[str, str] = {}

    def comments_of(cls: type) -> dict[str, str]:
        lines, start = inspect.getsourcelines(cls)
        docs: dict[str, str] = {}
        tree = ast.parse(inspect.cleandoc("\n".join(x.rstrip("\n") for x in lines)))
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node in body:
            if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
                continue
            first, last = node.lineno - 1, (node.end_lineno or node.lineno) - 1
            trailing = [ln.split("#", 1)[1].strip() for ln in lines[first : last + 1] if "#" in ln]
            above, i = [], first - 1
            while i >= 0 and lines[i].strip().startswith("#"):
                above.insert(0, lines[i].strip().lstrip("#").strip())
                i -= 1
            text = " ".join(above + trailing).strip()
            if text:
                docs[node.target.id] = text
        return docs

    def walk(cls: type, prefix: str) -> None:
        docs = comments_of(cls)
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            key = prefix + f.name
            if f.name in docs:
                out[key] = docs[f.name]
            kind = hints.get(f.name)
            if dataclasses.is_dataclass(kind):
                walk(kind, key + ".")  # type: ignore[arg-type]

    walk(schema if isinstance(schema, type) else type(schema), "")
    return out


def describe(cfg: Any, schema: Any | None) -> str:
    """A command's configuration as YAML, each key followed by its documentation comment."""
    import json

    from omegaconf import DictConfig, ListConfig, OmegaConf

    docs = field_docs(schema) if schema is not None else {}
    lines: list[str] = []

    def leaf(value: Any) -> str:
        if isinstance(value, DictConfig | ListConfig):
            value = OmegaConf.to_container(value, resolve=False)
        return json.dumps(value) if value is not None else "null"

    def walk(node: DictConfig, prefix: str, indent: str) -> None:
        for key in node:
            value = node._get_node(key)
            dotted = f"{prefix}{key}"
            note = f"  # {docs[dotted]}" if dotted in docs else ""
            if isinstance(value, DictConfig) and len(value) and not dotted.endswith("overrides"):
                lines.append(f"{indent}{key}:{note}")
                walk(value, dotted + ".", indent + "  ")
            else:
                lines.append(f"{indent}{key}: {leaf(node[key])}{note}")

    walk(cfg, "", "")
    return "\n".join(lines)
