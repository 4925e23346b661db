"""`uio2-robot`: one console script, one subcommand per job, Hydra-composed configs.

Each subcommand has a YAML file in ``uio2_robot/configs`` (``rollout.yaml``, ...) checked
against a structured-config dataclass, and takes Hydra overrides (``key=value``,
``group=option``) on the command line. The CLI stays thin: it composes the config, checks it,
and calls one library function. Heavy imports (torch, mujoco) happen inside the handlers so
``--help`` is instant.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf


class CLIError(Exception):
    """A user error on the command line: printed without a traceback, exit status 2."""


@dataclass(frozen=True)
class Command:
    summary: str
    usage: str
    handler: Callable[[DictConfig, list[str]], int]
    schema: Callable[[], Any] | None = None
    config_name: str | None = None


# ---------------------------------------------------------------- config composition


def compose(
    config_name: str, overrides: Sequence[str], schema: Callable[[], Any] | None
) -> DictConfig:
    """Compose ``configs/<config_name>.yaml`` with overrides and check it against ``schema``."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        with initialize_config_module(config_module="uio2_robot.configs", version_base="1.3"):
            cfg = hydra_compose(config_name=config_name, overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as exc:
        raise CLIError(f"bad configuration for '{config_name}': {exc}") from None
    if schema is not None:
        try:
            merged = OmegaConf.merge(OmegaConf.structured(schema()), cfg)
        except OmegaConfBaseException as exc:
            raise CLIError(f"bad configuration for '{config_name}': {exc}") from None
        assert isinstance(merged, DictConfig)
        cfg = merged
    return cfg


# ---------------------------------------------------------------- handlers


def _rollout(cfg: DictConfig, _extra: list[str]) -> int:
    from uio2_robot.eval.runner import run_rollout_command

    return run_rollout_command(cfg)


def _info(cfg: DictConfig, _extra: list[str]) -> int:
    from uio2_robot.model import model_info

    try:
        info = model_info(str(cfg.model))
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    print(json.dumps(info, indent=2))
    return 0


def _commands() -> dict[str, Command]:
    from uio2_robot.config_schema import InfoConfig, RolloutConfig

    return {
        "rollout": Command(
            "closed-loop sim episodes of a policy; success per task and level with 95% CIs",
            "uio2-robot rollout [policy=default|oracle|random|uio2|onnx] [checkpoint=DIR] "
            "[bundle=DIR] [tasks=[..]] [levels=[L1,..]] [episodes=N] [seed=N] [out=DIR] "
            "[env=primitive|delta] [videos=N]",
            _rollout,
            RolloutConfig,
            "rollout",
        ),
        "info": Command(
            "a model preset's configuration and parameter counts as JSON",
            "uio2-robot info [model=tiny|small|base|large|xl|xxl]",
            _info,
            InfoConfig,
            "info",
        ),
    }


# ---------------------------------------------------------------- entry point


def _print_help(commands: dict[str, Command]) -> None:
    print("uio2-robot: Unified-IO 2 as a robot policy\n")
    print("usage: uio2-robot <command> [key=value ...]   (Hydra overrides)\n")
    print("commands:")
    for name, cmd in commands.items():
        print(f"  {name:<10} {cmd.summary}")
        print(f"  {'':<10}   {cmd.usage}")
    print("\n`uio2-robot <command> --help` prints the command's full default configuration.")


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    commands = _commands()
    if not args or args[0] in ("-h", "--help", "help"):
        _print_help(commands)
        return 0
    name, rest = args[0], args[1:]
    if name not in commands:
        print(
            f"error: unknown command {name!r}; expected one of {sorted(commands)}", file=sys.stderr
        )
        return 2
    cmd = commands[name]
    try:
        if any(a in ("-h", "--help") for a in rest):
            print(f"usage: {cmd.usage}\n\n{cmd.summary}\n\ndefault configuration:")
            if cmd.config_name is not None:
                print(OmegaConf.to_yaml(compose(cmd.config_name, [], cmd.schema)))
            return 0
        positional = [a for a in rest if "=" not in a]
        overrides = [a for a in rest if "=" in a]
        cfg = compose(cmd.config_name, overrides, cmd.schema) if cmd.config_name else DictConfig({})
        return cmd.handler(cfg, positional)
    except CLIError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
