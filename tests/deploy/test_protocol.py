"""Message schema and metadata: every defect gets the right error code and a message naming it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from uio2_robot.deploy.metadata import PolicyMetadata, check_observation, metadata_for
from uio2_robot.deploy.protocol import Hello, Infer, Reset, parse_actions, parse_request
from uio2_robot.deploy.wire import WIRE_VERSION, WireError

META = PolicyMetadata(policy="t", cameras=("front",), image_size=(8, 12), control_hz=10.0)


def obs(**over: object) -> dict:
    o = {"front": np.zeros((8, 12, 3), np.uint8), "proprio": np.zeros(6, np.float32)}
    o.update(over)
    return o


def req(**fields: object) -> dict:
    return {"v": WIRE_VERSION, "id": 1, **fields}


def code_of(msg: dict) -> tuple[str, str]:
    with pytest.raises(WireError) as exc:
        parse_request(msg, META)
    return exc.value.code, exc.value.message


def test_valid_requests_parse_to_types() -> None:
    assert isinstance(parse_request(req(type="hello"), META), Hello)
    r = parse_request(req(type="reset", prompt=["a", np.zeros((4, 4, 3), np.uint8)]), META)
    assert isinstance(r, Reset) and r.episode == {}
    r = parse_request(
        req(type="reset", prompt=["x"], episode={"task": "t", "level": "L1", "seed": 3}), META
    )
    assert r.episode["seed"] == 3
    applied = np.zeros((2, 5), np.float32)
    i = parse_request(
        req(type="infer", tick=4, step=2, obs=obs(), applied=applied, applied_from=0), META
    )
    assert isinstance(i, Infer) and (i.tick, i.step, i.applied_from) == (4, 2, 0)
    assert i.obs["proprio"].dtype == np.float32


@pytest.mark.parametrize(
    ("msg", "code", "needle"),
    [
        ({"id": 1, "type": "hello"}, "version", "wire version None is not supported"),
        (req(v=1, type="hello"), "version", "wire version 1 is not supported; this side speaks v2"),
        (req(v=True, type="hello"), "version", "wire version True"),
        (req(v=2.0, type="hello"), "version", "wire version 2.0"),
        (req(type="dance"), "unknown_type", "'dance' is unknown"),
        ({"v": WIRE_VERSION, "type": "hello", "id": -1}, "bad_request", "'id' is -1"),
        ({"v": WIRE_VERSION, "type": "hello", "id": True}, "bad_request", "'id' is True"),
        (req(type="reset", prompt=[]), "bad_prompt", "1..32 segments"),
        (req(type="reset", prompt="text"), "bad_prompt", "got str"),
        (req(type="reset", prompt=[np.zeros((4, 4), np.uint8)]), "bad_prompt", "uint8[4, 4]"),
        (req(type="reset", prompt=[3]), "bad_prompt", "prompt[0] is int"),
        (req(type="reset", prompt=["x" * 9000]), "bad_prompt", "9000 chars"),
        (req(type="reset", prompt=["x"], episode={"colour": 1}), "bad_request", "'colour'"),
        (req(type="reset", prompt=["x"], episode={"seed": "3"}), "bad_request", "expected int"),
        (req(type="infer", tick=0, step=0, obs=[1]), "bad_obs", "map of arrays"),
        (req(type="infer", tick=0, step=0, obs={"proprio": 1}), "bad_obs", "missing ['front']"),
        (req(type="infer", tick=0, step=0, obs=obs(top=1)), "bad_obs", "unknown ['top']"),
        (
            req(type="infer", tick=0, step=0, obs=obs(front=np.zeros((12, 8, 3), np.uint8))),
            "bad_obs",
            "obs['front'] is uint8[12, 8, 3], expected uint8[8, 12, 3]",
        ),
        (
            req(type="infer", tick=0, step=0, obs=obs(front=np.zeros((8, 12, 3), np.float32))),
            "bad_obs",
            "float32[8, 12, 3]",
        ),
        (
            req(type="infer", tick=0, step=0, obs=obs(proprio=np.full(6, np.nan, np.float32))),
            "bad_obs",
            "NaN or Inf",
        ),
        (
            req(type="infer", tick=0, step=0, obs=obs(proprio=np.zeros(5, np.float32))),
            "bad_obs",
            "expected float32[6]",
        ),
        (req(type="infer", tick=-3, step=0, obs=obs()), "bad_request", "'tick' is -3"),
        (
            req(type="infer", tick=0, step=0, obs=obs(), applied=np.zeros((1, 4), np.float32)),
            "bad_request",
            "expected float32[n, 5]",
        ),
        (
            req(
                type="infer",
                tick=0,
                step=1,
                obs=obs(),
                applied=np.full((1, 5), np.inf, np.float32),
                applied_from=0,
            ),
            "bad_request",
            "NaN or Inf",
        ),
    ],
)
def test_defects_are_named(msg: dict, code: str, needle: str) -> None:
    got_code, message = code_of(msg)
    assert got_code == code
    assert needle in message


def test_metadata_round_trips_and_refuses_mismatch() -> None:
    wire = META.to_wire()
    assert wire["action_names"] == ["dx", "dy", "dz", "dyaw", "tool"]
    assert wire["action_high"][0] == pytest.approx(0.04)
    assert PolicyMetadata.from_wire(wire) == META
    with pytest.raises(WireError, match="different versions of uio2_robot/contracts.py"):
        PolicyMetadata.from_wire({**wire, "action_names": ["a", "b", "c", "d", "e"]})
    with pytest.raises(WireError, match="metadata is invalid"):
        PolicyMetadata.from_wire({**wire, "control_hz": 0})
    with pytest.raises(ValueError, match="action_mode must be one of"):
        PolicyMetadata(policy="t", action_mode="joints")
    prim = PolicyMetadata(policy="t", action_mode="primitive")
    assert PolicyMetadata.from_wire(prim.to_wire()) == prim and prim.action_dim == 6


def test_metadata_follows_the_bundle_processor(tmp_path: Path) -> None:
    (tmp_path / "processor.json").write_text(
        json.dumps(
            {
                "camera_keys": ["top"],
                "image_size": [48, 64],
                "action_tokenizers": {"delta": {}, "primitive": {}},
            }
        )
    )
    (tmp_path / "manifest.json").write_text(json.dumps({"control_hz": 20, "model_hash": "abc"}))
    meta = metadata_for("onnx", tmp_path, cameras=("front", "top"), image_size=128)
    assert meta.cameras == ("top",) and meta.image_size == (48, 64)
    assert meta.control_hz == 20.0 and meta.extra["model_hash"] == "abc"
    assert meta.action_mode == "primitive"  # what VIMA-style policies act in, unless told
    assert metadata_for("onnx", tmp_path, action_mode="delta").action_mode == "delta"
    (tmp_path / "manifest.json").write_text(json.dumps({"inference": {"action_mode": "delta"}}))
    assert metadata_for("onnx", tmp_path).action_mode == "delta"  # the bundle's recommendation
    (tmp_path / "processor.json").write_text(json.dumps({"action_tokenizers": {"primitive": {}}}))
    (tmp_path / "manifest.json").write_text("{}")
    with pytest.raises(ValueError, match="cannot serve 'delta'"):
        metadata_for("onnx", tmp_path, action_mode="delta")


def test_check_observation_accepts_float64_proprio_as_float32() -> None:
    out = check_observation(obs(proprio=np.zeros(6, np.float64)), META)
    assert out["proprio"].dtype == np.float32


def test_client_side_action_validation() -> None:
    ok = parse_actions({"actions": np.zeros((3, 5), np.float32)}, 5)
    assert ok.shape == (3, 5)
    with pytest.raises(WireError, match=r"expected float32\[H, 5\]"):
        parse_actions({"actions": np.zeros((3, 4), np.float32)}, 5)
