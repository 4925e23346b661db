"""Defaults live in one place: each command's dataclass. The YAML files only pick config groups
and set what differs from the dataclass, and `--help` documents every key from the dataclass."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from omegaconf import DictConfig, OmegaConf

from uio2_robot.cli import _commands, compose, main
from uio2_robot.config_schema import describe, field_docs

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
COMMANDS = {n: c for n, c in _commands().items() if c.config_name is not None}


def _schema(name: str) -> Any:
    return COMMANDS[name].schema()


def _repeats(yaml_node: Any, default: Any, prefix: str = "") -> list[str]:
    """Keys of ``yaml_node`` whose value equals the default at the same place."""
    out = []
    for key, value in yaml_node.items():
        if key == "defaults":
            continue
        dotted = f"{prefix}{key}"
        if isinstance(value, DictConfig) and isinstance(default.get(key), DictConfig):
            out += _repeats(value, default[key], dotted + ".")
        elif key in default and OmegaConf.to_container(
            OmegaConf.create({"v": value})
        ) == OmegaConf.to_container(OmegaConf.create({"v": default[key]})):
            out.append(dotted)
    return out


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_a_command_yaml_repeats_no_default(name: str) -> None:
    yaml_cfg = OmegaConf.load(CONFIGS / f"{COMMANDS[name].config_name}.yaml")
    assert "schema" in list(yaml_cfg.defaults), "the dataclass must be the base of the config"
    structured = OmegaConf.structured(_schema(name))
    assert _repeats(yaml_cfg, structured) == []


def test_group_options_set_only_what_differs() -> None:
    """configs/policy/*.yaml and configs/env/*.yaml against the dataclass they fill."""
    rollout = OmegaConf.structured(_schema("rollout"))
    for group in ("policy", "env"):
        for path in sorted((CONFIGS / group).glob("*.yaml")):
            option = OmegaConf.load(path)
            repeats = _repeats(option, rollout[group])
            assert repeats in ([], ["name"]), path.name  # a policy option names its policy
    robot = OmegaConf.structured(_schema("robot"))
    for path in sorted((CONFIGS / "deploy").glob("*.yaml")):
        assert _repeats(OmegaConf.load(path), robot) == [], path.name


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_the_composed_defaults_are_the_dataclass_plus_its_groups(name: str) -> None:
    """Keys no group sets keep the dataclass default exactly; overrides of them still work."""
    cfg = compose(COMMANDS[name].config_name, [], COMMANDS[name].schema)
    structured = OmegaConf.structured(_schema(name))
    for key in structured:
        if key in ("policy", "env"):  # set by config groups
            continue
        assert OmegaConf.to_container(OmegaConf.create({"v": cfg[key]})) == (
            OmegaConf.to_container(OmegaConf.create({"v": structured[key]}))
        ), key


def test_help_documents_every_key_with_its_default(capsys) -> None:
    assert main(["train", "--help"]) == 0
    out = capsys.readouterr().out
    assert "init_from: null  # " in out  # documented from TrainConfig's field comment
    assert "  action_bin_sigma: 0.0  # HL-Gauss" in out  # a nested dataclass (MixtureConfig)
    cfg = compose("rollout", [], COMMANDS["rollout"].schema)
    text = describe(cfg, COMMANDS["rollout"].schema)
    assert "seed: 1000000000000  # evaluation seeds start here" in text
    assert set(field_docs(COMMANDS["rollout"].schema)) >= {"seed", "tasks", "checkpoint"}
