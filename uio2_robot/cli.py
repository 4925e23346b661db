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

from uio2_robot.errors import UsageError

CLIError = UsageError
"""A user error on the command line (:class:`uio2_robot.errors.UsageError`): printed without a
traceback, exit status 2."""


@dataclass(frozen=True)
class Command:
    summary: str
    usage: str
    # (composed config, positional arguments, the key=value overrides as typed)
    handler: Callable[[DictConfig, list[str], list[str]], int]
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

    if schema is not None:
        from hydra.core.config_store import ConfigStore

        # the dataclass is the base of every command's config (its YAML lists `- schema` first):
        # defaults live only there, and overrides are checked against it as they are applied
        ConfigStore.instance().store(name="schema", node=_open_mappings(schema()))
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


def _open_mappings(schema: Any) -> DictConfig:
    """The structured config with its free-form mappings (``Dict[str, X]`` fields such as
    ``task_weights``) open to new keys, so ``key={a: 1}`` on the command line fills them; every
    dataclass node stays closed, so a misspelt key is still an error."""
    cfg = OmegaConf.structured(schema)

    def walk(node: DictConfig) -> None:
        for key in node:
            child = node._get_node(key)
            if isinstance(child, DictConfig):
                if OmegaConf.get_type(child) is dict:
                    OmegaConf.set_struct(child, False)
                else:
                    walk(child)

    walk(cfg)
    return cfg


# ---------------------------------------------------------------- handlers


def _rollout(cfg: DictConfig, _extra: list[str], _overrides: list[str]) -> int:
    from uio2_robot.eval.runner import run_rollout_command

    return _library_call(run_rollout_command, cfg)


def _official(cfg: DictConfig, extra: list[str], _overrides: list[str]) -> int:
    from uio2_robot.official.command import OfficialCommandConfig, run_official_command

    try:
        return run_official_command(OfficialCommandConfig(**cfg), extra)
    except (ValueError, FileNotFoundError) as exc:
        raise CLIError(str(exc)) from None


def _info(cfg: DictConfig, _extra: list[str], _overrides: list[str]) -> int:
    from uio2_robot.model import model_info

    try:
        info = model_info(str(cfg.model))
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    print(json.dumps(info, indent=2))
    return 0


def _collect(cfg: DictConfig, _extra: list[str], _overrides: list[str]) -> int:
    from uio2_robot.envs.levels import resolve_levels
    from uio2_robot.eval.runner import policy_kwargs
    from uio2_robot.policies.factory import make_policy
    from uio2_robot.trajectories.collect import collect
    from uio2_robot.trajectories.errors import StoreError

    kwargs = policy_kwargs(cfg)  # as rollout: checkpoint=DIR picks uio2, bundle=DIR onnx
    name = str(kwargs.pop("name"))
    try:
        # as rollout: each task at the requested levels it has (VIMA's partitions), not an
        # error per episode for the levels it lacks
        levels_by_task = resolve_levels(list(cfg.tasks), list(cfg.levels))
        summary = collect(
            list(levels_by_task),
            list(cfg.levels),
            int(cfg.episodes),
            int(cfg.workers),
            str(cfg.out),
            seed=int(cfg.seed),
            policy=name,
            action_mode=str(cfg.action_mode),
            only_success=bool(cfg.only_success),
            image_size=int(cfg.image_size),
            progress=bool(cfg.progress),
            levels_by_task=levels_by_task,
            policy_kwargs=kwargs,
            make_policy_fn=make_policy,
        )
    except (StoreError, ValueError, RuntimeError) as exc:
        raise CLIError(str(exc)) from None
    print(json.dumps(summary, indent=2, default=str))
    return 0 if not summary.get("errors") else 1


def _train(cfg: DictConfig, _extra: list[str], overrides: list[str]) -> int:
    from omegaconf.errors import OmegaConfBaseException

    from uio2_robot.train.config import TrainConfig
    from uio2_robot.train.lineage import changes_table, override_keys
    from uio2_robot.train.loop import Trainer

    try:  # building the dataclasses checks them (MixtureConfig's weights, ranges)
        plain = OmegaConf.to_object(cfg)
    except (ValueError, OmegaConfBaseException) as exc:
        raise CLIError(f"bad configuration for 'train': {exc}") from None
    assert isinstance(plain, TrainConfig)
    try:
        # a fine-tune keeps its parent's recipe except the keys set here (train/lineage.py)
        trainer = Trainer(plain, explicit=override_keys(overrides))
        if trainer.lineage is not None:
            print(changes_table(trainer.lineage), flush=True)
        metrics = trainer.train()
    except (ValueError, FileNotFoundError) as exc:
        raise CLIError(str(exc)) from None
    print(json.dumps(metrics, indent=2))
    print(
        f"checkpoint: {plain.out}/checkpoints/policy (resume state in {plain.out}/checkpoints/last)"
    )
    return 0


def _library_call(fn: Callable[[DictConfig], int], cfg: DictConfig) -> int:
    """Run a library command; user errors (bad paths, values) become CLI errors."""
    try:
        return fn(cfg)
    except (ValueError, FileNotFoundError) as exc:
        raise CLIError(str(exc)) from None


def _export(cfg: DictConfig, _extra: list[str], _overrides: list[str]) -> int:
    from uio2_robot.export.command import run_export_command

    return _library_call(run_export_command, cfg)


def _serve(cfg: DictConfig, _extra: list[str], _overrides: list[str]) -> int:
    from uio2_robot.deploy.commands import run_serve_command

    return _library_call(run_serve_command, cfg)


def _robot(cfg: DictConfig, _extra: list[str], _overrides: list[str]) -> int:
    from uio2_robot.deploy.commands import run_robot_command

    return _library_call(run_robot_command, cfg)


DATA_ACTIONS = ("info", "validate", "video", "merge", "repair", "import-lerobot", "export-lerobot")


def _data(cfg: DictConfig, extra: list[str], _overrides: list[str]) -> int:
    from uio2_robot.trajectories.errors import StoreError
    from uio2_robot.trajectories.repair import repair_store
    from uio2_robot.trajectories.tools import merge_stores, store_info, validate_store

    if not extra or extra[0] not in DATA_ACTIONS:
        raise CLIError(f"usage: uio2-robot data {{{','.join(DATA_ACTIONS)}}} STORE [...]")
    action, paths = extra[0], extra[1:]
    if not paths:
        raise CLIError(f"data {action} needs a STORE path")
    try:
        if action == "info":
            print(json.dumps(store_info(paths[0]), indent=2, default=str))
        elif action == "validate":
            notes: list[str] = []
            problems = validate_store(paths[0], deep=bool(cfg.deep), notes=notes)
            for problem in problems:
                print(f"problem: {problem}")
            for note in notes:
                print(f"note: {note}")
            print("ok" if not problems else f"{len(problems)} problem(s)")
            return 0 if not problems else 1
        elif action == "video":
            # PyAV (profiles sim, lerobot) only here: `data info` runs on a runtime-only install
            from uio2_robot.trajectories.video import episode_video

            out = cfg.out or f"{paths[0].rstrip('/')}.episode{int(cfg.episode)}.mp4"
            print(json.dumps(episode_video(paths[0], int(cfg.episode), out, fps=float(cfg.fps))))
        elif action == "repair":
            print(json.dumps(repair_store(paths[0]), indent=2))
        elif action in ("import-lerobot", "export-lerobot"):
            if cfg.out is None:
                target = "STORE" if action == "import-lerobot" else "DIR"
                raise CLIError(f"data {action} needs out={target}")
            print(json.dumps(_lerobot(action, paths[0], cfg), indent=2))
        else:
            if cfg.out is None:
                raise CLIError("data merge needs out=NEW_STORE")
            print(
                json.dumps(merge_stores(paths, cfg.out, overwrite=bool(cfg.overwrite)), default=str)
            )
    except (StoreError, FileNotFoundError) as exc:
        raise CLIError(str(exc)) from None
    return 0


def _lerobot(action: str, path: str, cfg: DictConfig) -> dict[str, Any]:
    """LeRobot v3 datasets in and out (pyarrow + PyAV; lerobot itself is not needed)."""
    if action == "import-lerobot":
        from uio2_robot.trajectories.lerobot_import import import_lerobot

        return import_lerobot(path, cfg.out, overwrite=bool(cfg.overwrite))
    from uio2_robot.trajectories.lerobot_export import export_lerobot

    crf = None if cfg.crf is None else int(cfg.crf)
    return export_lerobot(
        path, cfg.out, codec=str(cfg.codec), crf=crf, overwrite=bool(cfg.overwrite)
    )


def _commands() -> dict[str, Command]:
    from uio2_robot.config_schema import (
        CollectConfig,
        DataConfig,
        InfoConfig,
        RolloutConfig,
        TrainConfig,
    )
    from uio2_robot.deploy.config import RobotConfig, ServeConfig
    from uio2_robot.export.config import ExportConfig

    return {
        "rollout": Command(
            "closed-loop sim episodes of a policy; success per task and level with 95% CIs",
            "uio2-robot rollout [policy=default|oracle|random|uio2|onnx] [checkpoint=DIR] "
            "[bundle=DIR] [tasks=[..]] [levels=[L1,..]] [episodes=N] [seed=N] [out=DIR] "
            "[env=primitive|delta|gym:ID] [videos=N]",
            _rollout,
            RolloutConfig,
            "rollout",
        ),
        "collect": Command(
            "run a policy over tasks x levels x seeds into a zarr trajectory store (resumable)",
            "uio2-robot collect tasks=[..] levels=[..] episodes=N workers=K out=STORE "
            "[policy=oracle|default|random|uio2|onnx] [checkpoint=DIR] [bundle=DIR] "
            "[action_mode=primitive|delta] "
            "[only_success=true] [seed=N]",
            _collect,
            CollectConfig,
            "collect",
        ),
        "train": Command(
            "train or fine-tune a UIO2 policy on trajectory stores (resumes from OUT)",
            "uio2-robot train stores=[STORE,..] out=DIR [model=small] [steps=N] [batch_size=N] "
            "[init_from=CKPT finetune=full|frozen_encoder|lora] [eval_episodes=N]",
            _train,
            TrainConfig,
            "train",
        ),
        "export": Command(
            "turn a checkpoint into an ONNX deploy bundle (fp32 | int8 | fp16), optional parity check",
            "uio2-robot export checkpoint=DIR out=BUNDLE [variant=fp32|int8|fp16] [check=true]",
            _export,
            ExportConfig,
            "export",
        ),
        "serve": Command(
            "serve a policy to robot clients over websockets + msgpack (docs/deploy.md); with no "
            "arguments the shipped policy through onnxruntime (exported once, cached)",
            "uio2-robot serve [bundle=DIR | checkpoint=DIR [runtime=onnx|torch] | policy=oracle] "
            "[action_mode=primitive|delta] [host=127.0.0.1] [port=8765] [max_clients=8]",
            _serve,
            ServeConfig,
            "serve",
        ),
        "robot": Command(
            "fixed-rate control loop: cameras -> policy (served or in-process) -> safety -> arm",
            "uio2-robot robot [server=ws://HOST:PORT | server=null policy=NAME] "
            "[driver.name=sim|ur] [driver.sim.embodiment=arm|floating] [driver.sim.task=T] "
            "[control_hz=10] [episodes=N] [record.out=STORE] [report=FILE] [+deploy=ur5e]",
            _robot,
            RobotConfig,
            "robot",
        ),
        "data": Command(
            "inspect trajectory stores: info, validate, repair (drop damaged episodes), video, "
            "merge, LeRobot v3 datasets in and out",
            "uio2-robot data info STORE | data validate STORE [deep=true] | data repair STORE | "
            "data video STORE episode=K [out=FILE.mp4] | data merge STORE1 STORE2 .. out=NEW | "
            "data import-lerobot DATASET_DIR out=STORE | "
            "data export-lerobot STORE out=DATASET_DIR [codec=h264|av1] [crf=N]",
            _data,
            DataConfig,
            "data",
        ),
        "info": Command(
            "a model preset's configuration and parameter counts as JSON",
            "uio2-robot info [model=tiny|small|base|large|xl|xxl]",
            _info,
            InfoConfig,
            "info",
        ),
        "official": Command(
            "released Unified-IO 2 checkpoints (uio2-large/xl/xxl): import, check stage by "
            "stage against the official code, fine-tune, export to ONNX (docs/official.md)",
            "uio2-robot official import src=DIR out=CKPT [dtype=float32|bfloat16|float16] | "
            "official check src=DIR fixture=FILE | official export src=CKPT out=DIR fixture=FILE "
            "| official finetune src=CKPT out=CKPT stores=[..] tokenizer=PATH "
            "[mode=full|frozen_vit|lora]",
            _official,
            _official_schema,
            "official",
        ),
    }


def _official_schema() -> type:
    from uio2_robot.official.command import OfficialCommandConfig

    return OfficialCommandConfig


# ---------------------------------------------------------------- entry point


def expand_gym_env(overrides: list[str]) -> list[str]:
    """``env=gym:ID`` -> ``env=gym env.id=ID``: Hydra reads ``env=`` as a config group option,
    and a gymnasium id (``Reacher-v5``, ``metaworld:Meta-World/MT1``) is not one."""
    out = []
    for arg in overrides:
        key, _, value = arg.partition("=")
        if key == "env" and value.startswith("gym:"):
            env_id = value[len("gym:") :]
            if not env_id:
                raise CLIError(
                    "env=gym:ID needs a registered gymnasium env id, e.g. env=gym:Reacher-v5"
                )
            out += ["env=gym", f"env.id='{env_id}'"]
        else:
            out.append(arg)
    return out


def _print_help(commands: dict[str, Command]) -> None:
    from uio2_robot.extras import COMMAND_EXTRAS

    print("uio2-robot: Unified-IO 2 as a robot policy\n")
    print("usage: uio2-robot <command> [key=value ...]   (Hydra overrides)\n")
    print("commands:")
    for name, cmd in commands.items():
        print(f"  {name:<10} {cmd.summary}")
        print(f"  {'':<10}   {cmd.usage}")
        needs = ",".join(COMMAND_EXTRAS.get(name, ())) or "the base install"
        print(f"  {'':<10}   needs: {needs}")
    print("\n`uio2-robot <command> --help` prints the command's full default configuration.")
    print(
        "Install profiles (docs/install.md): runtime (robot PC: serve bundle=, robot), sim, train, "
        'gpu, lerobot, ur; cpu = runtime+sim+train. e.g. pip install "uio2-robot[sim]"'
    )


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
                from uio2_robot.config_schema import describe

                print(describe(compose(cmd.config_name, [], cmd.schema), cmd.schema))
            return 0
        positional = [a for a in rest if "=" not in a]
        overrides = expand_gym_env([a for a in rest if "=" in a])
        cfg = compose(cmd.config_name, overrides, cmd.schema) if cmd.config_name else DictConfig({})
        return cmd.handler(cfg, positional, overrides)
    except CLIError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:  # an install profile without this command's extra
        from uio2_robot.extras import missing_extra_message

        print(f"error: {missing_extra_message(exc, name)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # collect and train keep what they finished (stored episodes, the last checkpoint);
        # running the same command again resumes from there.
        print(f"\n{name}: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
