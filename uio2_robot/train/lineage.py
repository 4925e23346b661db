"""A fine-tune continues the run it starts from: the parent's recipe, unless the user changed it.

``uio2-robot train init_from=CKPT`` loads the parent's weights and processor; this module gives it
the rest of the parent: its training recipe (the objective mix, bins, cameras, crop, action mode
and horizon, optimizer settings: every key of its recorded ``train`` config except the run's own,
:data:`RUN_KEYS`) and its ``inference`` section (guide_place, action_mode). A key the user *set*
keeps the user's value. Without this, a fine-tune silently trains with the dataclass defaults
(another objective mix) and drops the shipped policy's inference settings.

Which keys the user set: the CLI passes the keys of its command-line overrides
(:func:`override_keys`), because Hydra composes the dataclass defaults into the config and a value
alone cannot tell "left at its default" from "set to the default" (``mixture.r_image=0.25`` on a
parent trained with 0 must win). A library caller passes the keys it means; passing None falls
back to "every key whose value differs from the dataclass default" (:func:`non_default_keys`).

The new checkpoint records its parent (``config.json``'s ``parent``: path, content digest, step)
and :func:`changes_table` lists what differs from it, which the CLI prints before training.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from uio2_robot.train.config import LORA_LR, MixtureConfig, TrainConfig, check_inference

DEFAULT_NAME = "default"
"""``init_from=default``: the shipped policy (``uio2_robot.policies.factory.DEFAULT_POLICY_DIR``)."""

RUN_KEYS = frozenset(
    {
        # the run's data and where it goes
        "stores",
        "weights",
        "task_weights",
        "replay_from",
        "replay_share",
        "out",
        "init_from",
        "refit_proprio_stats",
        "model_overrides",
        "resume",
        # how this fine-tune trains (its own budget and schedule)
        "finetune",
        "lora_rank",
        "lora_alpha",
        "lora_targets",
        "steps",
        "time_limit_s",
        "batch_size",
        "grad_accum",
        "lr",
        "warmup_steps",
        "ema_decay",
        "seed",
        "val_fraction",
        # the machine and the bookkeeping
        "num_workers",
        "device",
        "threads",
        "progress",
        "log_every",
        "val_every",
        "save_every",
        "eval_every",
        "eval_episodes",
        "eval_tasks",
        "eval_levels",
        "eval_seed",
        "inference",  # merged key by key below, not as one value
    }
)
"""Keys that describe this run, not the recipe: never inherited. The parent's stores, budget and
learning rate are its own (a from-scratch lr is not a fine-tuning lr); everything else recorded
in the parent's ``train`` config is the recipe and is inherited."""

PROCESSOR_KEYS = ("cameras", "crop_workspace", "n_bins", "action_bins")
"""Recipe keys baked into the parent's processor (views, crop, value bins): a fine-tune uses that
processor, so setting one of these to another value is an error rather than silently ignored."""

QUIET_KEYS = frozenset(
    {"out", "init_from", "resume", "progress", "threads", "device", "num_workers", "log_every"}
    | {"val_every", "save_every", "eval_every", "eval_episodes", "eval_tasks", "eval_levels"}
    | {"eval_seed"}
)
"""Bookkeeping keys left out of the changes table (they differ in every run and change nothing
about what is learnt)."""


@dataclass(frozen=True)
class Change:
    """One row of the changes table: a key whose value differs from the parent's."""

    key: str
    parent: Any
    value: Any


@dataclass(frozen=True)
class Lineage:
    """What a fine-tune takes from its parent: the resolved config, the inference section its
    checkpoint will carry, the parent's record and what differs from it."""

    cfg: TrainConfig
    inference: dict[str, Any]
    parent: dict[str, Any]
    changes: tuple[Change, ...]
    ignored: tuple[str, ...]  # parent recipe keys this version of TrainConfig does not have


def parent_dir(init_from: str) -> Path:
    """The checkpoint folder ``init_from`` names: ``default`` is the shipped policy."""
    if init_from == DEFAULT_NAME:
        from uio2_robot.policies.factory import DEFAULT_POLICY_DIR

        return DEFAULT_POLICY_DIR
    path = Path(init_from)
    if not path.is_dir():
        raise FileNotFoundError(
            f"init_from={init_from}: no such checkpoint folder (expected a folder written by "
            f"`uio2-robot train`, e.g. OUT/checkpoints/policy, or '{DEFAULT_NAME}' for the "
            "shipped policy)"
        )
    return path


def override_keys(overrides: Iterable[str]) -> set[str]:
    """The dotted config keys a list of Hydra command-line overrides sets (``key=v``,
    ``+key=v``, ``++key=v``; ``~key`` deletes, which also counts as setting it)."""
    keys: set[str] = set()
    for item in overrides:
        key = item.split("=", 1)[0].lstrip("+~").strip()
        if key:
            keys.add(key)
    return keys


def non_default_keys(cfg: TrainConfig) -> set[str]:
    """The keys of ``cfg`` whose values differ from TrainConfig's defaults: the set keys of a
    library caller that did not say which it set."""
    mine, default = flatten(cfg), flatten(TrainConfig())
    return {k for k, v in mine.items() if default.get(k, _MISSING) != v}


def flatten(cfg: TrainConfig | dict[str, Any]) -> dict[str, Any]:
    """``{dotted key: value}`` of a train config (dataclass or its recorded dict); mixture keys
    are ``mixture.NAME``, other mappings (task_weights, inference) stay one value."""
    plain = dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else dict(cfg)
    out: dict[str, Any] = {}
    for key, value in plain.items():
        if key == "mixture" and isinstance(value, dict):
            out.update({f"mixture.{k}": v for k, v in value.items()})
        else:
            out[key] = value
    return out


def _is_set(key: str, explicit: Collection[str]) -> bool:
    """Whether ``key`` or a node above it (``mixture`` for ``mixture.r_image``) was set."""
    parts = key.split(".")
    return any(".".join(parts[: i + 1]) in explicit for i in range(len(parts)))


def inherit(
    cfg: TrainConfig, explicit: Collection[str] | None, parent_config: dict[str, Any] | None = None
) -> Lineage:
    """``cfg`` with the recipe and inference settings of its ``init_from`` checkpoint filled in
    wherever the user did not set them (``explicit``: the dotted keys set; None = the keys that
    differ from the defaults). Raises ValueError when a set key contradicts the parent's
    processor (:data:`PROCESSOR_KEYS`)."""
    if not cfg.init_from:
        raise ValueError("inherit() needs a config with init_from set")
    folder = parent_dir(cfg.init_from)
    if parent_config is None:  # only the config: the trainer loads (and checks) the weights
        parent_config = json.loads((folder / "config.json").read_text())
    explicit = non_default_keys(cfg) if explicit is None else set(explicit)
    recorded = parent_config.get("train") if isinstance(parent_config.get("train"), dict) else {}
    parent_flat = flatten(recorded)
    mine = flatten(cfg)

    resolved = dict(mine)
    ignored = []
    for key, value in parent_flat.items():
        if key.split(".")[0] in RUN_KEYS:
            continue
        if key not in mine:
            ignored.append(key)
            continue
        if key in PROCESSOR_KEYS and _is_set(key, explicit) and mine[key] != value:
            raise ValueError(
                f"{key}={mine[key]!r}: the parent {cfg.init_from} was trained with "
                f"{key}={value!r}, which its processor fixes; a fine-tune keeps it (drop the "
                "override, or train from scratch without init_from)"
            )
        if not _is_set(key, explicit):
            resolved[key] = value

    parent_inference = parent_config.get("inference") or {}
    if not isinstance(parent_inference, dict):
        raise ValueError(f"{folder}: config.json's 'inference' is not a mapping")
    inference = {**parent_inference, **cfg.inference}
    if "action_mode" in inference and "inference.action_mode" not in explicit:
        inference["action_mode"] = resolved["action_mode"]  # a mode changed by action_mode=
    check_inference(inference)

    if resolved["finetune"] == "lora" and not _is_set("lr", explicit):
        resolved["lr"] = LORA_LR
    new_cfg = unflatten(resolved)
    changes = [
        Change(key, parent_flat.get(key, _MISSING), value)
        for key, value in flatten(new_cfg).items()
        if key not in QUIET_KEYS
        and key != "inference"
        and (key in parent_flat or _is_set(key, explicit))
        and parent_flat.get(key, _MISSING) != value
    ]
    changes += [
        Change(f"inference.{key}", parent_inference.get(key, _MISSING), value)
        for key, value in inference.items()
        if parent_inference.get(key, _MISSING) != value
    ]
    parent = {
        "init_from": cfg.init_from,
        "path": str(folder.resolve()),
        "digest": checkpoint_digest(folder),
        "step": parent_config.get("step"),
    }
    return Lineage(new_cfg, inference, parent, tuple(changes), tuple(ignored))


def unflatten(flat: dict[str, Any]) -> TrainConfig:
    """The TrainConfig of a :func:`flatten` dict (building it re-runs every check)."""
    mixture = {k.split(".", 1)[1]: v for k, v in flat.items() if k.startswith("mixture.")}
    top = {k: v for k, v in flat.items() if not k.startswith("mixture.")}
    return TrainConfig(**top, mixture=MixtureConfig(**mixture))


def checkpoint_digest(folder: Path) -> str:
    """The parent's content digest, the one the export cache keys bundles by."""
    from uio2_robot.export.cache import checkpoint_digest as digest

    return digest(folder)


def changes_table(lineage: Lineage, width: int = 44) -> str:
    """A plain-text table of what this run changes from its parent (key, parent, this run)."""
    rows = [(c.key, _short(c.parent, width), _short(c.value, width)) for c in lineage.changes]
    head = f"fine-tuning from {lineage.parent['path']} (step {lineage.parent['step']})"
    if not rows:
        return head + ": the parent's recipe, unchanged"
    w0 = max(len("key"), *(len(r[0]) for r in rows))
    w1 = max(len("parent"), *(len(r[1]) for r in rows))
    lines = [head + "; changed from the parent:", f"  {'key':<{w0}}  {'parent':<{w1}}  this run"]
    lines += [f"  {k:<{w0}}  {p:<{w1}}  {v}" for k, p, v in rows]
    if lineage.ignored:
        lines.append(
            f"  (parent keys this version does not know, ignored: {list(lineage.ignored)})"
        )
    return "\n".join(lines)


def _short(value: Any, width: int) -> str:
    text = "(unset)" if value is _MISSING else json.dumps(value, default=str)
    return text if len(text) <= width else text[: width - 3] + "..."


class _Missing:
    def __repr__(self) -> str:
        return "(unset)"


_MISSING: Any = _Missing()


def resumed_parent_matches(saved: dict[str, Any], lineage: Lineage) -> None:
    """Refuse to resume a fine-tune whose parent changed since the run started (the saved
    ``parent.digest`` differs): the resumed steps would continue another lineage."""
    recorded = (saved.get("parent") or {}).get("digest")
    if recorded is not None and recorded != lineage.parent["digest"]:
        raise ValueError(
            f"{lineage.cfg.out}: this run was started from a parent with digest {recorded[:12]}, "
            f"but {lineage.parent['path']} now has {lineage.parent['digest'][:12]}; start a new "
            "run (another out=, or resume=false)"
        )
