"""Structured configs of `uio2-robot serve` and `uio2-robot robot` (YAML: configs/serve.yaml,
configs/robot.yaml, presets in configs/deploy/).

These dataclasses are the schema Hydra's YAML is checked against, so a typo or a wrong type on the
command line fails before a socket is opened or an arm moves. They import nothing heavy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from uio2_robot.config_schema import PolicyConfig
from uio2_robot.deploy.safety import SafetyLimits
from uio2_robot.seeding import EVAL_SEED_BASE

DEFAULT_PORT = 8765


PolicySpec = PolicyConfig
"""Which policy to build (`uio2_robot.policies.factory.make_policy`): the rollout's ``policy``
schema, so ``policy=oracle`` etc. compose the same way in every command."""


@dataclass
class ServeConfig:
    """`uio2-robot serve`: serve one policy to robot clients over websockets + msgpack."""

    policy: PolicySpec = field(default_factory=lambda: PolicySpec(name="onnx"))
    bundle: str | None = None  # shorthand: bundle=DIR serves the ONNX bundle in DIR
    checkpoint: str | None = None  # shorthand: checkpoint=DIR serves a checkpoint
    # How a checkpoint (the shipped default included) is run: "onnx" exports it once into
    # bundle_cache and serves the bundle through onnxruntime; "torch" runs it in torch.
    runtime: str = "onnx"
    bundle_cache: str | None = None  # null: $UIO2_ROBOT_CACHE or ~/.cache/uio2-robot
    action_mode: str | None = None  # null: the mode the policy recommends (primitive, shipped)
    host: str = "127.0.0.1"  # loopback by default; 0.0.0.0 to accept robots on the network
    port: int = DEFAULT_PORT
    max_clients: int = 8
    max_message_bytes: int = 8 * 1024 * 1024
    serve_mode: str = "action"  # "action": one action per reply; "chunk": the policy's chunk
    # What the robot must send when the policy has no processor.json to say it:
    cameras: list[str] = field(default_factory=lambda: ["front", "top"])
    image_size: int = 128
    control_hz: float = 10.0
    ping_interval_s: float = 5.0
    idle_timeout_s: float = 30.0  # close a session with no request for this long
    max_queued_bytes: int | None = None  # per client; null: 2 x max_message_bytes
    proprio_abs_max: float = 10.0  # |proprio| beyond this is refused as not a measurement
    # Beyond loopback a shared token is required (robots send the same one):
    token_file: str | None = None  # null: $UIO2_ROBOT_TOKEN if set
    allow_unauthenticated: bool = False  # serve a non-loopback host without a token (trusted LAN)
    tls_cert: str | None = None  # PEM certificate (chain) and its key: serve wss://
    tls_key: str | None = None
    public_key: str | None = None  # Ed25519 public key (PEM): serve only bundles it signed
    duration_s: float | None = None  # stop after this long (None: until SIGINT/SIGTERM)
    log_level: str = "INFO"


@dataclass
class SimDriverConfig:
    """The `sim` driver: the MuJoCo suite in delta mode as the robot's digital twin."""

    embodiment: str = "arm"  # arm: a simulated UR5e | floating: the suite's floating tool
    task: str = "visual_manipulation"
    level: str = "L1"
    seed: int = EVAL_SEED_BASE  # episode seeds: uio2_robot.seeding.episode_seed(seed, ...)
    image_size: int = 128
    cameras: list[str] = field(default_factory=lambda: ["front", "top"])


@dataclass
class URDriverConfig:
    """A UR arm over RTDE (optional extra ``ur``)."""

    host: str | None = None
    tool: str = "suction"  # suction | spatula: what primitive-mode motions use
    rtde_frequency: float = -1.0  # -1: ur_rtde's default (125 Hz CB3, 500 Hz e-Series)
    lookahead_time: float = 0.1  # servoL smoothing, s in [0.03, 0.2]
    gain: float = 300.0  # servoL gain in [100, 2000]
    stop_deceleration: float = 0.5  # m/s^2 for servoStop
    tool_output: int | None = 0  # standard digital output of the suction valve (null: none)
    contact_input: int | None = None  # standard digital input of a vacuum sensor
    # table frame origin in the robot base frame, m
    table_origin: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    table_yaw: float = 0.0  # table x axis heading in the base frame, rad
    max_lead_m: float = 0.02


@dataclass
class DriverConfig:
    name: str = "sim"  # "sim" | "ur"
    sim: SimDriverConfig = field(default_factory=SimDriverConfig)
    ur: URDriverConfig = field(default_factory=URDriverConfig)


@dataclass
class CameraConfig:
    """One camera: ``source`` is "sim" (the sim driver's view ``name``), a device index ("0")
    or a stream URL / video file."""

    name: str = "front"
    source: str = "sim"
    width: int | None = None
    height: int | None = None
    threaded: bool = True


@dataclass
class SafetyConfig:
    """The safety envelope (on by default) and the watchdog; see `uio2_robot.deploy.safety`.
    The limits' defaults are `SafetyLimits`' (the envelope's own dataclass), the one place they
    are written; this adds the watchdog."""

    enabled: bool = SafetyLimits.enabled
    # the tool's box in the table frame, m: the workspace plus the tool's margin, 0..0.3 m high
    workspace_low: list[float] = field(default_factory=lambda: list(SafetyLimits.workspace_low))
    workspace_high: list[float] = field(default_factory=lambda: list(SafetyLimits.workspace_high))
    max_step_m: float = SafetyLimits.max_step_m  # translation per control step, m
    max_speed_mps: float = SafetyLimits.max_speed_mps  # also caps a step at this / control_hz
    max_yaw_step: float = SafetyLimits.max_yaw_step  # rad per control step
    min_tool_interval_s: float = SafetyLimits.min_tool_interval_s  # between tool switches
    watchdog_s: float = 0.5  # hold when no fresh action arrived for this long


@dataclass
class RecordConfig:
    out: str | None = None  # trajectory store to append deployed episodes to
    only_success: bool = False


@dataclass
class RobotConfig:
    """`uio2-robot robot`: the control loop on a driver, with a served or in-process policy."""

    server: str | None = f"ws://127.0.0.1:{DEFAULT_PORT}"  # null: run ``policy`` in-process
    policy: PolicySpec = field(default_factory=lambda: PolicySpec(name="oracle"))
    driver: DriverConfig = field(default_factory=DriverConfig)
    cameras: list[CameraConfig] = field(default_factory=list)  # empty: the sim driver's views
    prompt: list[str] | None = None  # real arms: the task instruction
    control_hz: float = 10.0  # 5..50; must equal the policy's control rate
    speedup: float = 1.0  # sim only: run faster than real time
    episodes: int = 1
    max_steps: int | None = None
    max_seconds: float | None = 120.0  # wall-clock bound per episode
    reply_wait_fraction: float = 0.8
    request_ahead: int = 1  # request the next chunk when fewer actions than this are queued
    connect_timeout_s: float = 10.0
    request_timeout_s: float = 2.0
    reconnect_interval_s: float = 0.5
    token_file: str | None = None  # the server's token; null: $UIO2_ROBOT_TOKEN if set
    tls_ca: str | None = None  # CA (or self-signed) certificate a wss:// server is checked with
    settle_s: float = 0.1  # primitive mode: hold this long after a motion before observing
    # on by default; the policy cannot turn it off
    safety: SafetyConfig = field(default_factory=SafetyConfig)
    record: RecordConfig = field(default_factory=RecordConfig)
    stop_file: str | None = None  # e-stop when this file exists
    stop_key: bool = False  # e-stop on q/s/x + Enter on stdin
    report: str | None = None  # write the episode reports (JSON) here
    log_level: str = "INFO"
