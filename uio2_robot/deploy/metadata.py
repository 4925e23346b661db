"""What a served policy expects from a robot: cameras, image size, action mode, control rate.

A robot client asks for this once per connection (the ``hello`` message) and refuses to run if
its cameras, action mode or control rate do not match, instead of discovering the mismatch as
garbage actions. It is built from the deploy bundle (or checkpoint) when there is one, because
the bundle's ``processor.json`` is the single source of truth for camera order and image size.

The action mode is the one the policy is good at: ``primitive`` (one VIMA pick-and-place or push
per reply, which the robot executes as a motion with ``uio2_robot.motion``) or ``delta``
(end-effector deltas per control tick). See :func:`served_action_mode`.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from uio2_robot import contracts as contract
from uio2_robot.deploy.wire import WIRE_VERSION, WireError, brief

DEFAULT_MAX_MESSAGE_BYTES = 8 * 1024 * 1024
DEFAULT_PROPRIO_ABS_MAX = 10.0
"""No proprio value of a tabletop arm (metres, radians, 0/1 tool flags) is larger: 1e30 is a
broken sensor or a hostile client, and a policy must not act on it."""
DEFAULT_IDLE_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class PolicyMetadata:
    """The served policy's contract with the robot (sent as the ``metadata`` reply)."""

    policy: str
    cameras: tuple[str, ...] = contract.CAMERAS
    image_size: tuple[int, int] = (128, 128)  # (H, W) of every camera frame the server accepts
    action_mode: str = "delta"
    control_hz: float = contract.DEFAULT_CONTROL_HZ
    chunk_size: int = 1  # actions per reply (H of the (H, D) ``actions`` array)
    privileged_sim: bool = False  # needs the robot's sim episode + applied actions (a sim twin)
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    wire_version: int = WIRE_VERSION
    proprio_names: tuple[str, ...] = contract.PROPRIO_NAMES
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. bundle format / model hash
    proprio_abs_max: float = DEFAULT_PROPRIO_ABS_MAX  # |proprio| above this is refused
    # the server closes a session with no request for this long; clients ping well within it
    idle_timeout_s: float | None = DEFAULT_IDLE_TIMEOUT_S

    def __post_init__(self) -> None:
        if self.action_mode not in contract.ACTION_MODES:
            raise ValueError(
                f"action_mode must be one of {contract.ACTION_MODES}, got {self.action_mode!r}"
            )
        cams = tuple(self.cameras)
        if not cams or len(set(cams)) != len(cams) or "proprio" in cams:
            raise ValueError(
                f"cameras must be distinct non-empty names (not 'proprio'), got {cams}"
            )
        object.__setattr__(self, "cameras", cams)
        h, w = (int(v) for v in self.image_size)
        if not (8 <= h <= 2048 and 8 <= w <= 2048):
            raise ValueError(f"image_size must be (H, W) within 8..2048, got {self.image_size}")
        object.__setattr__(self, "image_size", (h, w))
        if isinstance(self.control_hz, bool) or not (
            isinstance(self.control_hz, int | float) and 1.0 <= self.control_hz <= 100.0
        ):
            raise ValueError(
                f"control_hz must be a number in [1, 100], got {brief(self.control_hz)}"
            )
        if not (isinstance(self.chunk_size, int) and 1 <= self.chunk_size <= 1000):
            raise ValueError(f"chunk_size must be an int in [1, 1000], got {self.chunk_size!r}")
        if self.max_message_bytes < 1024:
            raise ValueError(f"max_message_bytes must be >= 1024, got {self.max_message_bytes}")
        object.__setattr__(self, "proprio_names", tuple(self.proprio_names))
        if isinstance(self.wire_version, bool) or not isinstance(self.wire_version, int):
            raise ValueError(f"wire_version must be an int, got {brief(self.wire_version)}")
        for name in ("proprio_abs_max", "idle_timeout_s"):
            value = getattr(self, name)
            if value is None and name == "idle_timeout_s":
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ValueError(f"{name} must be a positive number, got {brief(value)}")

    # ------------------------------------------------------------------ derived
    @property
    def action_names(self) -> tuple[str, ...]:
        return contract.action_names(self.action_mode)

    @property
    def action_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return contract.action_bounds(self.action_mode)

    @property
    def action_space(self) -> Any:
        """The space a policy is reset with (server side; the robot needs only bounds): a
        gymnasium Box, or on a robot PC without gymnasium (runtime profile) the same bounds as
        :class:`~uio2_robot.contracts.BoxBounds`, which is all an ONNX or torch policy reads."""
        low, high = self.action_bounds
        try:
            from gymnasium import spaces
        except ModuleNotFoundError:
            return contract.BoxBounds(low, high)
        return spaces.Box(low, high, dtype=np.float32)

    @property
    def action_dim(self) -> int:
        return len(self.action_names)

    # ------------------------------------------------------------------ wire form
    def to_wire(self) -> dict[str, Any]:
        """Plain data for the ``metadata`` reply (bounds included so clients need no envs)."""
        d = asdict(self)
        d["cameras"] = list(self.cameras)
        d["image_size"] = list(self.image_size)
        d["proprio_names"] = list(self.proprio_names)
        d["action_names"] = list(self.action_names)
        low, high = self.action_bounds
        d["action_low"] = [float(v) for v in low]
        d["action_high"] = [float(v) for v in high]
        return d

    @classmethod
    def from_wire(cls, d: Any) -> PolicyMetadata:
        """Parse a ``metadata`` reply; raises WireError naming the bad field."""
        if not isinstance(d, dict):
            raise WireError("malformed", f"metadata must be a map, got {type(d).__name__}")
        names = set(cls.__dataclass_fields__)
        try:
            kwargs = {k: d[k] for k in names if k in d}
            kwargs["cameras"] = tuple(kwargs.get("cameras", ()))
            kwargs["image_size"] = tuple(kwargs.get("image_size", ()))
            kwargs.setdefault("control_hz", math.nan)
            meta = cls(**kwargs)
        except (TypeError, ValueError) as exc:
            raise WireError("malformed", f"metadata is invalid: {exc}") from None
        if list(d.get("action_names", meta.action_names)) != list(meta.action_names):
            raise WireError(
                "malformed",
                f"server action names {d.get('action_names')} differ from this client's "
                f"{list(meta.action_names)}: the two sides run different versions of uio2_robot/contracts.py",
            )
        return meta


def read_processor_json(folder: str | Path) -> dict[str, Any] | None:
    """``processor.json`` of a deploy bundle or checkpoint folder, or None if there is none."""
    path = Path(folder) / "processor.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from None


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """``manifest.json`` of a deploy bundle ({} when the folder has none, e.g. a checkpoint)."""
    path = Path(folder) / "manifest.json"
    if not path.is_file():
        return {}
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(manifest, dict):
        raise ValueError(f"{path} must hold a JSON object")
    return manifest


def read_checkpoint_config(folder: str | Path) -> dict[str, Any]:
    """``config.json`` of a checkpoint folder ({} when there is none, e.g. a bundle)."""
    path = Path(folder) / "config.json"
    if not path.is_file():
        return {}
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from None
    return config if isinstance(config, dict) else {}


def served_action_mode(
    requested: str | None, policy_modes: tuple[str, ...], recommended: Any = None
) -> str:
    """The action mode to serve: ``requested`` if given, else the policy's own recommendation
    (``inference.action_mode`` of its checkpoint or bundle), else primitive when it has it.

    Primitive comes first because it is how VIMA and Unified-IO 2 act, and the mode the shipped
    policy is trained to succeed in; a mode the policy has no action head for is an error.
    """
    for name, value in (("action_mode", requested), ("inference.action_mode", recommended)):
        if value is not None and value not in contract.ACTION_MODES:
            raise ValueError(f"{name} must be one of {contract.ACTION_MODES}, got {value!r}")
    mode = requested or recommended or ("primitive" if "primitive" in policy_modes else "delta")
    if mode not in policy_modes:
        raise ValueError(
            f"the policy has action heads for {list(policy_modes)}; it cannot serve {mode!r}"
        )
    return mode


def metadata_for(
    policy: str,
    folder: str | Path | None = None,
    *,
    cameras: tuple[str, ...] = contract.CAMERAS,
    image_size: tuple[int, int] | int = 128,
    control_hz: float = contract.DEFAULT_CONTROL_HZ,
    chunk_size: int = 1,
    privileged_sim: bool = False,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    action_mode: str | None = None,
) -> PolicyMetadata:
    """Metadata for a served policy; a bundle/checkpoint ``folder`` overrides cameras and image
    size with what its processor was trained with (and ``control_hz`` if its manifest says).

    ``action_mode``: None serves the mode the policy recommends (:func:`served_action_mode`);
    scripted policies without a folder act in either mode and default to primitive.
    """
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    extra: dict[str, Any] = {}
    modes: tuple[str, ...] = contract.ACTION_MODES
    recommended = None
    if folder is not None:
        proc = read_processor_json(folder)
        if proc is not None:
            cameras = tuple(proc.get("camera_keys", cameras))
            # a cropping processor wants whole frames at the size its crops were defined on
            size = tuple(proc.get("frame_size") or proc.get("image_size", size))
            modes = tuple(proc.get("action_tokenizers", {}) or ("delta",))
        manifest = read_manifest(folder)
        inference = (manifest or read_checkpoint_config(folder)).get("inference") or {}
        recommended = inference.get("action_mode") if isinstance(inference, dict) else None
        if "control_hz" in manifest:
            rate = manifest["control_hz"]
            if isinstance(rate, bool) or not isinstance(rate, int | float):
                raise ValueError(
                    f"{Path(folder) / 'manifest.json'}: field 'control_hz' is {brief(rate)}, "
                    "expected a number of control ticks per second (e.g. 10.0)"
                )
            control_hz = float(rate)
        for key in ("format_version", "variant", "model_hash", "name"):
            if key in manifest and isinstance(manifest[key], str | int | float):
                extra[key] = manifest[key]
        sealed = manifest.get("integrity")
        if isinstance(sealed, dict) and isinstance(sealed.get("bundle_hash"), str):
            extra["bundle_hash"] = sealed["bundle_hash"]  # graphs + every manifest field
    return PolicyMetadata(
        policy=policy,
        cameras=tuple(cameras),
        image_size=(int(size[0]), int(size[1])),
        action_mode=served_action_mode(action_mode, modes, recommended),
        control_hz=float(control_hz),
        chunk_size=int(chunk_size),
        privileged_sim=privileged_sim,
        max_message_bytes=int(max_message_bytes),
        extra=extra,
    )


def check_observation(obs: Any, meta: PolicyMetadata) -> dict[str, np.ndarray]:
    """Validate an observation against the metadata; raise WireError("bad_obs") naming the key."""
    if not isinstance(obs, dict):
        raise WireError("bad_obs", f"obs must be a map of arrays, got {type(obs).__name__}")
    expected = (*meta.cameras, "proprio")
    missing = [k for k in expected if k not in obs]
    unknown = [k for k in obs if k not in expected]
    if missing or unknown:
        raise WireError(
            "bad_obs",
            f"obs keys {brief(list(obs))}: missing {missing}, unknown {brief(unknown)}; expected "
            f"{list(expected)}",
        )
    h, w = meta.image_size
    for cam in meta.cameras:
        img = obs[cam]
        if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.shape != (h, w, 3):
            got = f"{img.dtype}{list(img.shape)}" if isinstance(img, np.ndarray) else type(img)
            raise WireError("bad_obs", f"obs[{cam!r}] is {got}, expected uint8[{h}, {w}, 3]")
    p = obs["proprio"]
    n = len(meta.proprio_names)
    if not isinstance(p, np.ndarray) or p.dtype.kind != "f" or p.shape != (n,):
        got = f"{p.dtype}{list(p.shape)}" if isinstance(p, np.ndarray) else type(p)
        raise WireError(
            "bad_obs",
            f"obs['proprio'] is {got}, expected float32[{n}] ({', '.join(meta.proprio_names)})",
        )
    if not np.all(np.isfinite(p)):
        raise WireError("bad_obs", f"obs['proprio'] contains NaN or Inf: {brief(p.tolist())}")
    worst = int(np.argmax(np.abs(p)))
    if abs(float(p[worst])) > meta.proprio_abs_max:
        raise WireError(
            "bad_obs",
            f"obs['proprio'][{worst}] ({meta.proprio_names[worst]}) is {float(p[worst]):.3g}, "
            f"outside +-{meta.proprio_abs_max:g}: not a measurement of this arm",
        )
    out = {k: obs[k] for k in meta.cameras}
    out["proprio"] = p.astype(np.float32)
    return out
