"""`uio2-robot serve` and `uio2-robot robot`: turn a composed config into a running server or loop.

Both take the Hydra-composed DictConfig (checked against :class:`ServeConfig` /
:class:`RobotConfig`) and return a process exit status. User errors (a missing bundle, a bad
camera source, an unknown driver) raise ValueError / FileNotFoundError with a message that says
what to change; the CLI prints those without a traceback.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf

from uio2_robot.deploy.config import CameraConfig, PolicySpec, RobotConfig, ServeConfig

os.environ.setdefault("MUJOCO_GL", "egl")  # before anything imports mujoco: deploy is headless

log = logging.getLogger("uio2_robot.deploy")
T = TypeVar("T")


def _as(cfg: DictConfig | Any, cls: type[T]) -> T:
    """The config as a ``cls`` instance, whether or not it was already merged with the schema."""
    if isinstance(cfg, cls):
        return cfg
    merged = OmegaConf.merge(OmegaConf.structured(cls), cfg)
    obj = OmegaConf.to_object(merged)
    assert isinstance(obj, cls)
    return obj


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def resolve_policy(spec: PolicySpec, bundle: str | None, checkpoint: str | None) -> PolicySpec:
    """Apply the ``bundle=`` / ``checkpoint=`` shorthands (they pick the policy kind too)."""
    spec = PolicySpec(**asdict(spec))
    if bundle is not None:
        spec.name, spec.bundle = "onnx", bundle
    elif checkpoint is not None:
        spec.name, spec.checkpoint = "uio2", checkpoint
    folder = policy_folder(spec)
    if folder is not None and not Path(folder).is_dir():
        raise FileNotFoundError(
            f"policy folder not found: {folder} (serve a bundle=DIR, a checkpoint=DIR, or a "
            "scripted policy=NAME)"
        )
    return spec


def _policy_kwargs(spec: PolicySpec) -> dict[str, Any]:
    kwargs = asdict(spec)
    kwargs.pop("name")
    return kwargs


def policy_folder(spec: PolicySpec) -> str | None:
    """The bundle or checkpoint folder a policy is loaded from (None for scripted ones)."""
    if spec.name == "onnx":
        return spec.bundle
    if spec.name == "default" and spec.checkpoint is None:
        from uio2_robot.policies.factory import DEFAULT_POLICY_DIR

        return str(DEFAULT_POLICY_DIR)
    return spec.checkpoint if spec.name in ("uio2", "default") else None


def _chunk_size(spec: PolicySpec, serve_mode: str) -> int:
    if serve_mode != "chunk":
        return 1
    from uio2_robot.deploy.metadata import read_processor_json

    folder = policy_folder(spec)
    proc = read_processor_json(folder) if folder else None
    if proc is None:
        raise ValueError(
            f"serve_mode=chunk needs a policy with a processor.json (its action_horizon); "
            f"policy {spec.name!r} has none: use serve_mode=action"
        )
    return int(proc.get("action_horizon", 1))


def build_metadata(
    spec: PolicySpec,
    *,
    cameras: list[str],
    image_size: int,
    control_hz: float,
    serve_mode: str = "action",
    max_message_bytes: int | None = None,
    action_mode: str | None = None,
) -> Any:
    """The metadata a policy is served (or run in-process) under."""
    from uio2_robot.deploy.factory import is_privileged
    from uio2_robot.deploy.metadata import DEFAULT_MAX_MESSAGE_BYTES, metadata_for

    folder = policy_folder(spec)
    return metadata_for(
        spec.name,
        folder,
        cameras=tuple(cameras),
        image_size=image_size,
        control_hz=control_hz,
        chunk_size=_chunk_size(spec, serve_mode),
        privileged_sim=is_privileged(spec.name),
        max_message_bytes=max_message_bytes or DEFAULT_MAX_MESSAGE_BYTES,
        action_mode=action_mode,
    )


RUNTIMES = ("onnx", "torch")


def onnx_runtime_spec(spec: PolicySpec, runtime: str, cache_dir: str | None) -> PolicySpec:
    """Serve a checkpoint through onnxruntime: its bundle from the export cache (exported on
    the first start, re-verified against the checkpoint's hash on every start)."""
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {RUNTIMES}, got {runtime!r}")
    if runtime != "onnx" or spec.name not in ("default", "uio2"):
        return spec
    from uio2_robot.export.cache import cached_bundle

    folder = policy_folder(spec)
    assert folder is not None
    out = PolicySpec(**asdict(spec))
    out.name, out.bundle, out.checkpoint = "onnx", str(cached_bundle(folder, cache_dir)), None
    return out


# ---------------------------------------------------------------------------------- serve


def run_serve_command(cfg: DictConfig) -> int:
    """Serve the configured policy until SIGINT/SIGTERM (or ``duration_s``)."""
    sc = _as(cfg, ServeConfig)
    _setup_logging(sc.log_level)
    from uio2_robot.deploy.auth import ServerAuth, read_token
    from uio2_robot.deploy.factory import policy_factory
    from uio2_robot.deploy.server import PolicyServer

    spec = resolve_policy(sc.policy, sc.bundle, sc.checkpoint)
    spec = onnx_runtime_spec(spec, sc.runtime, sc.bundle_cache)
    if spec.name == "onnx" and spec.bundle:
        from uio2_robot.runtime.manifest import load_bundle

        # verified before anything is advertised: an edited manifest is refused, naming the field
        bundle = load_bundle(spec.bundle)
        if sc.public_key:
            from uio2_robot.runtime.signing import verify_bundle_signature

            verify_bundle_signature(bundle, sc.public_key)
    elif sc.public_key:
        raise ValueError(
            f"public_key= verifies signed bundles, but {spec.name!r} is not served from one: "
            "serve bundle=DIR (or runtime=onnx for a checkpoint)"
        )
    meta = build_metadata(
        spec,
        cameras=sc.cameras,
        image_size=sc.image_size,
        control_hz=sc.control_hz,
        serve_mode=sc.serve_mode,
        max_message_bytes=sc.max_message_bytes,
        action_mode=sc.action_mode,
    )
    log.info(
        "serving %s in %s mode (%s %s, model %s, bundle hash %s)",
        spec.name,
        meta.action_mode,
        "bundle" if spec.bundle else "checkpoint",
        spec.bundle or policy_folder(spec) or "-",
        meta.extra.get("model_hash", "-"),
        meta.extra.get("bundle_hash", "-"),
    )
    meta = dataclasses.replace(
        meta, idle_timeout_s=sc.idle_timeout_s, proprio_abs_max=sc.proprio_abs_max
    )
    auth = ServerAuth(
        token=read_token(sc.token_file),
        allow_unauthenticated=sc.allow_unauthenticated,
        tls_cert=sc.tls_cert,
        tls_key=sc.tls_key,
    )
    factory = policy_factory(spec.name, meta.control_hz, **_policy_kwargs(spec))
    server = PolicyServer(
        factory,
        meta,
        host=sc.host,
        port=sc.port,
        max_clients=sc.max_clients,
        serve_mode=sc.serve_mode,
        ping_interval_s=sc.ping_interval_s,
        max_queued_bytes=sc.max_queued_bytes,
        auth=auth,
    )
    try:
        server.run(duration_s=sc.duration_s)
    except OSError as exc:  # port taken, address not on this machine, ...
        raise ValueError(f"cannot listen on {sc.host}:{sc.port}: {exc}") from None
    log.info("server stopped: %s", json.dumps(server.stats.to_dict()))
    return 0


# ---------------------------------------------------------------------------------- robot


def build_driver(rc: RobotConfig) -> Any:
    """The configured robot driver (not yet connected)."""
    d = rc.driver
    if d.name == "sim":
        from uio2_robot.deploy.drivers import SimDriver
        from uio2_robot.seeding import episode_seed

        seeds = [episode_seed(d.sim.seed, d.sim.task, d.sim.level, i) for i in range(rc.episodes)]
        return SimDriver(
            d.sim.task,
            d.sim.level,
            seeds,
            image_size=d.sim.image_size,
            cameras=tuple(d.sim.cameras),
            control_hz=rc.control_hz,
            embodiment=d.sim.embodiment,
        )
    if d.name == "ur":
        from uio2_robot.deploy.ur_driver import TableCalibration, URDriver

        if not d.ur.host:
            raise ValueError("driver=ur needs driver.ur.host=<the arm's IP address>")
        if len(d.ur.table_origin) != 3:
            raise ValueError(f"driver.ur.table_origin must be [x, y, z], got {d.ur.table_origin}")
        return URDriver(
            d.ur.host,
            control_hz=rc.control_hz,
            calibration=TableCalibration(tuple(d.ur.table_origin), d.ur.table_yaw),  # type: ignore[arg-type]
            rtde_frequency=d.ur.rtde_frequency,
            lookahead_time=d.ur.lookahead_time,
            gain=d.ur.gain,
            stop_deceleration=d.ur.stop_deceleration,
            tool_output=d.ur.tool_output,
            contact_input=d.ur.contact_input,
            max_lead_m=d.ur.max_lead_m,
            prompt=rc.prompt,
            tool=d.ur.tool,
        )
    raise ValueError(f"unknown driver {d.name!r}; expected 'sim' or 'ur'")


def build_cameras(configs: list[CameraConfig], driver: Any) -> list[Any]:
    """Camera sources; with none configured, the sim driver's own views."""
    from uio2_robot.deploy.cameras import OpenCVCamera, SimCamera

    if not configs:
        if getattr(driver, "name", "") != "sim":
            raise ValueError(
                "a real arm needs cameras=[{name: front, source: '0'}, ...] (device indexes or "
                "stream URLs)"
            )
        return [SimCamera(name, driver) for name in driver.cameras]
    cams: list[Any] = []
    for c in configs:
        if c.source == "sim":
            if getattr(driver, "name", "") != "sim":
                raise ValueError(
                    f"camera {c.name!r} has source 'sim' but the driver is not the sim"
                )
            cams.append(SimCamera(c.name, driver))
        else:
            source: int | str = int(c.source) if c.source.isdigit() else c.source
            cams.append(
                OpenCVCamera(c.name, source, width=c.width, height=c.height, threaded=c.threaded)
            )
    return cams


def build_client(rc: RobotConfig) -> Any:
    """A remote client for ``server``, or the policy in-process when ``server`` is null."""
    from uio2_robot.deploy.auth import ClientAuth, read_token
    from uio2_robot.deploy.client import LocalPolicyClient, RemotePolicyClient

    if rc.server:
        return RemotePolicyClient(
            rc.server,
            connect_timeout_s=min(rc.connect_timeout_s, 5.0),
            request_timeout_s=rc.request_timeout_s,
            reconnect_interval_s=rc.reconnect_interval_s,
            auth=ClientAuth(token=read_token(rc.token_file), tls_ca=rc.tls_ca),
        )
    from uio2_robot.deploy.factory import policy_factory

    spec = resolve_policy(rc.policy, None, None)
    cams = rc.driver.sim.cameras if rc.driver.name == "sim" else [c.name for c in rc.cameras]
    meta = build_metadata(
        spec, cameras=cams, image_size=rc.driver.sim.image_size, control_hz=rc.control_hz
    )
    return LocalPolicyClient(policy_factory(spec.name, rc.control_hz, **_policy_kwargs(spec)), meta)


def run_robot_command(cfg: DictConfig) -> int:
    """Run ``episodes`` episodes of the control loop; 0 when all ran, 1 on e-stop, failure, or
    an episode that ended with the policy server unreachable."""
    rc = _as(cfg, RobotConfig)
    _setup_logging(rc.log_level)
    from uio2_robot.deploy.client import ClientError
    from uio2_robot.deploy.estop import EmergencyStop
    from uio2_robot.deploy.loop import ControlLoop, LoopSettings
    from uio2_robot.deploy.recording import DeployRecorder
    from uio2_robot.deploy.safety import SafetyLimits

    s = rc.safety
    limits = SafetyLimits(
        enabled=s.enabled,
        workspace_low=tuple(s.workspace_low),  # type: ignore[arg-type]
        workspace_high=tuple(s.workspace_high),  # type: ignore[arg-type]
        max_step_m=s.max_step_m,
        max_speed_mps=s.max_speed_mps,
        max_yaw_step=s.max_yaw_step,
        min_tool_interval_s=s.min_tool_interval_s,
    )
    settings = LoopSettings(
        control_hz=rc.control_hz,
        speedup=rc.speedup,
        max_steps=rc.max_steps,
        max_seconds=rc.max_seconds,
        watchdog_s=s.watchdog_s,
        reply_wait_fraction=rc.reply_wait_fraction,
        request_ahead=rc.request_ahead,
        settle_s=rc.settle_s,
    )
    if rc.episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {rc.episodes}")
    driver = build_driver(rc)
    cameras = build_cameras(rc.cameras, driver)
    estop = EmergencyStop(rc.stop_file)
    estop.install_signal_handlers()
    if rc.stop_key:
        estop.watch_keys()
    recorder = DeployRecorder(rc.record.out, rc.record.only_success) if rc.record.out else None
    client = build_client(rc)
    loop = ControlLoop(
        driver,
        cameras,
        client,
        settings,
        limits,
        estop=estop,
        recorder=recorder,
        prompt=list(rc.prompt) if rc.prompt else None,
    )
    reports: list[dict[str, Any]] = []
    status = 0
    try:
        loop.start(rc.connect_timeout_s)
        for i in range(rc.episodes):
            report = loop.run_episode()
            summary = report.summary()
            reports.append(summary)
            print(json.dumps({"episode": i, **summary}, default=str), flush=True)
            if report.ended == "estop":
                status = 1
                break
            if report.ended == "unreachable":  # the policy was lost: say so in the exit status
                print(
                    f"error: episode {i} ended with the policy server unreachable "
                    f"({summary['server_outages']})",
                    file=sys.stderr,
                )
                status = 1
    except ClientError as exc:
        print(f"error: {exc}", file=sys.stderr)
        status = 1
    finally:
        loop.close()
        client.close()
        if recorder is not None:
            recorder.close()
        estop.restore_signal_handlers()
    if rc.report:
        Path(rc.report).parent.mkdir(parents=True, exist_ok=True)
        Path(rc.report).write_text(json.dumps(reports, indent=2, default=str))
    done = [r for r in reports if r["success"] is not None]
    if done:
        wins = sum(bool(r["success"]) for r in done)
        print(f"success {wins}/{len(done)}", flush=True)
    return status
