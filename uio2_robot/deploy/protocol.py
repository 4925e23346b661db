"""The versioned message schema between a robot client and a policy server (wire version 2).

Every message is a msgpack map with ``v`` (the wire version), ``type`` and ``id`` (the client's
request id, echoed in the reply, so a client can match replies and spot stale ones).

Client -> server:
- ``hello``: ask for the served policy's :class:`~uio2_robot.deploy.metadata.PolicyMetadata`.
- ``reset``: start an episode. ``prompt``: list of text strings and uint8 (H, W, 3) images;
  ``episode`` (optional): {``task``, ``level``, ``seed``}, needed only by privileged sim twins.
- ``infer``: one observation. ``tick`` (wall-clock control tick the obs was captured at; the
  reply's actions start at this tick), ``step`` (actuations applied so far in the episode),
  ``obs`` ({camera: uint8 (H, W, 3)}, ``proprio``: float32 (P,)), optionally ``applied``
  (float32 (n, 5): the delta commands the arm really executed, after its safety envelope, for
  control ticks ``applied_from .. applied_from + n - 1``; in primitive mode too, since a
  primitive is executed as such commands). ``step`` counts those commands.
- ``ping``: liveness.

Server -> client (every reply carries ``infer_ms``, the policy's compute time, and ``server_ms``,
the whole time the server spent on the message):
- ``metadata`` {``metadata``}; ``reset_ok``; ``actions`` {``tick``, ``actions``: float32 (H, D)};
  ``pong``; ``error`` {``code``, ``message``} (codes in :class:`~uio2_robot.deploy.wire.WireError`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from uio2_robot.contracts import DELTA_ACTION_NAMES
from uio2_robot.deploy.metadata import PolicyMetadata, check_observation
from uio2_robot.deploy.wire import WIRE_VERSION, WireError, brief

REQUEST_TYPES = ("hello", "reset", "infer", "ping")
REPLY_TYPES = ("metadata", "reset_ok", "actions", "pong", "error")
MAX_PROMPT_SEGMENTS = 32
MAX_TEXT_CHARS = 8192
MAX_PROMPT_IMAGE_SIDE = 1024
MAX_APPLIED = 100_000
EPISODE_KEYS = {"task": str, "level": str, "seed": int, "embodiment": str}
APPLIED_DIM = len(DELTA_ACTION_NAMES)  # applied commands are the arm's deltas in every mode


@dataclass
class Hello:
    id: int


@dataclass
class Ping:
    id: int


@dataclass
class Reset:
    id: int
    prompt: list[str | np.ndarray]
    episode: dict[str, Any]


@dataclass
class Infer:
    id: int
    tick: int
    step: int
    obs: dict[str, np.ndarray]
    applied: np.ndarray | None  # (n, D) float32
    applied_from: int


Request = Hello | Ping | Reset | Infer


def _int(msg: dict[str, Any], key: str, minimum: int = 0) -> int:
    value = msg.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise WireError(
            "bad_request", f"field {key!r} is {brief(value)}, expected an int >= {minimum}"
        )
    return value


def check_version(msg: dict[str, Any]) -> None:
    """Refuse anything but our wire version, naming both."""
    v = msg.get("v")
    if isinstance(v, bool) or not isinstance(v, int) or v != WIRE_VERSION:
        raise WireError(
            "version",
            f"wire version {brief(v)} is not supported; this side speaks v{WIRE_VERSION} "
            f"(upgrade uio2-robot on the older side so both speak v{WIRE_VERSION})",
        )


def parse_request(msg: dict[str, Any], meta: PolicyMetadata) -> Request:
    """Validate a decoded client message into a typed request (raises WireError)."""
    check_version(msg)
    kind = msg.get("type")
    if not isinstance(kind, str) or kind not in REQUEST_TYPES:
        raise WireError(
            "unknown_type", f"message type {brief(kind)} is unknown; expected {REQUEST_TYPES}"
        )
    rid = _int(msg, "id")
    if kind == "hello":
        return Hello(rid)
    if kind == "ping":
        return Ping(rid)
    if kind == "reset":
        return Reset(rid, parse_prompt(msg.get("prompt")), parse_episode(msg.get("episode")))
    obs = check_observation(msg.get("obs"), meta)
    applied = msg.get("applied")
    if applied is not None:
        d = APPLIED_DIM
        if (
            not isinstance(applied, np.ndarray)
            or applied.dtype != np.float32
            or applied.ndim != 2
            or applied.shape[1] != d
            or applied.shape[0] > MAX_APPLIED
        ):
            got = (
                f"{applied.dtype}{list(applied.shape)}"
                if isinstance(applied, np.ndarray)
                else applied
            )
            raise WireError("bad_request", f"applied is {brief(got)}, expected float32[n, {d}]")
        if not np.all(np.isfinite(applied)):
            raise WireError("bad_request", "applied contains NaN or Inf")
    return Infer(
        rid,
        tick=_int(msg, "tick"),
        step=_int(msg, "step"),
        obs=obs,
        applied=applied,
        applied_from=_int(msg, "applied_from") if applied is not None else 0,
    )


def parse_prompt(prompt: Any) -> list[str | np.ndarray]:
    """A prompt is a short list of text strings and uint8 RGB images."""
    if not isinstance(prompt, list) or not prompt or len(prompt) > MAX_PROMPT_SEGMENTS:
        raise WireError(
            "bad_prompt",
            f"prompt must be a list of 1..{MAX_PROMPT_SEGMENTS} segments, got "
            f"{type(prompt).__name__}{f' of {len(prompt)}' if isinstance(prompt, list) else ''}",
        )
    for i, seg in enumerate(prompt):
        if isinstance(seg, str):
            if len(seg) > MAX_TEXT_CHARS:
                raise WireError(
                    "bad_prompt", f"prompt[{i}] has {len(seg)} chars, at most {MAX_TEXT_CHARS}"
                )
            continue
        ok = (
            isinstance(seg, np.ndarray)
            and seg.dtype == np.uint8
            and seg.ndim == 3
            and seg.shape[2] == 3
            and 1 <= seg.shape[0] <= MAX_PROMPT_IMAGE_SIDE
            and 1 <= seg.shape[1] <= MAX_PROMPT_IMAGE_SIDE
        )
        if not ok:
            got = (
                f"{seg.dtype}{list(seg.shape)}"
                if isinstance(seg, np.ndarray)
                else type(seg).__name__
            )
            raise WireError(
                "bad_prompt",
                f"prompt[{i}] is {got}, expected text or a uint8[H, W, 3] image "
                f"(H, W <= {MAX_PROMPT_IMAGE_SIDE})",
            )
    return prompt


def parse_episode(episode: Any) -> dict[str, Any]:
    """Optional episode description ({task, level, seed}); only sim twins use it."""
    if episode is None:
        return {}
    if not isinstance(episode, dict):
        raise WireError("bad_request", f"episode must be a map, got {type(episode).__name__}")
    for key, value in episode.items():
        want = EPISODE_KEYS.get(key)
        if want is None:
            raise WireError(
                "bad_request",
                f"episode key {brief(key)} is unknown; expected {sorted(EPISODE_KEYS)}",
            )
        if value is not None and (not isinstance(value, want) or isinstance(value, bool)):
            raise WireError(
                "bad_request",
                f"episode[{key!r}] is {brief(value)}, expected {want.__name__} or nil",
            )
    return dict(episode)


def reply(kind: str, rid: int | None, infer_ms: float = 0.0, **fields: Any) -> dict[str, Any]:
    """A server reply; ``server_ms`` is filled in by the server just before sending."""
    return {"v": WIRE_VERSION, "type": kind, "id": rid, "infer_ms": float(infer_ms), **fields}


def error_reply(rid: int | None, err: WireError) -> dict[str, Any]:
    return reply("error", rid, code=err.code, message=err.message)


def request_id(msg: Any) -> int | None:
    """The id of a (possibly invalid) request, for echoing in an error reply."""
    rid = msg.get("id") if isinstance(msg, dict) else None
    return rid if isinstance(rid, int) and not isinstance(rid, bool) else None


def parse_actions(msg: dict[str, Any], action_dim: int) -> np.ndarray:
    """The (H, D) float32 ``actions`` of an ``actions`` reply, validated on the client side."""
    actions = msg.get("actions")
    if (
        not isinstance(actions, np.ndarray)
        or actions.dtype != np.float32
        or actions.ndim != 2
        or actions.shape[0] < 1
        or actions.shape[1] != action_dim
    ):
        got = (
            f"{actions.dtype}{list(actions.shape)}" if isinstance(actions, np.ndarray) else actions
        )
        raise WireError(
            "malformed", f"reply actions are {brief(got)}, expected float32[H, {action_dim}]"
        )
    return actions
