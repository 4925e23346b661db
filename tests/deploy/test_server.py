"""The policy server over real loopback sockets: sessions, errors, fault isolation, cleanup."""

from __future__ import annotations

import http.client
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import msgpack
import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from uio2_robot.deploy.metadata import PolicyMetadata
from uio2_robot.deploy.server import PolicyServer, ServerThread
from uio2_robot.deploy.wire import WIRE_VERSION, pack, unpack

META = PolicyMetadata(
    policy="echo",
    cameras=("front",),
    image_size=(16, 16),
    control_hz=10.0,
    max_message_bytes=64 * 1024,
)


class EchoPolicy:
    """Acts with its own prompt length and step count, so cross-talk between sessions shows."""

    def __init__(self, registry: list[EchoPolicy]) -> None:
        registry.append(self)
        self.prompt: list[Any] = []
        self.steps = 0
        self.closed = False

    def reset(self, prompt: list[Any], action_space: Any, env: Any = None) -> None:
        self.prompt, self.steps = prompt, 0

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        if self.prompt and self.prompt[0] == "boom":
            raise RuntimeError("the policy exploded")
        self.steps += 1
        return np.array([len(self.prompt[0]) * 1e-3, self.steps * 1e-3, 0, 0, 0], np.float32)

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def served() -> Iterator[tuple[ServerThread, list[EchoPolicy]]]:
    policies: list[EchoPolicy] = []
    thread = ServerThread(PolicyServer(lambda: EchoPolicy(policies), META, max_clients=4))
    try:
        yield thread, policies
    finally:
        thread.stop()


def open_client(url: str) -> ClientConnection:
    return connect(url, proxy=None, compression=None, open_timeout=5, max_size=None, legacy=True)


def call(ws: ClientConnection, msg: dict[str, Any] | bytes | str) -> dict[str, Any]:
    ws.send(msg if isinstance(msg, bytes | str) else pack({"v": WIRE_VERSION, "id": 7, **msg}))
    return unpack(ws.recv(timeout=5), 1 << 24)


def obs(**over: Any) -> dict[str, np.ndarray]:
    o = {"front": np.zeros((16, 16, 3), np.uint8), "proprio": np.zeros(6, np.float32)}
    o.update(over)
    return o


def infer(tick: int = 0, step: int = 0, **over: Any) -> dict[str, Any]:
    return {"type": "infer", "tick": tick, "step": step, "obs": obs(**over)}


def wait_for(cond: Any, timeout_s: float = 5.0) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.02)
    return False


def test_hello_reset_infer_ping_all_carry_server_times(served: Any) -> None:
    thread, _ = served
    with open_client(thread.url) as ws:
        replies = [
            call(ws, {"type": "hello"}),
            call(ws, {"type": "reset", "prompt": ["put it there"]}),
            call(ws, infer(tick=41)),
            call(ws, {"type": "ping"}),
        ]
    assert [r["type"] for r in replies] == ["metadata", "reset_ok", "actions", "pong"]
    assert PolicyMetadata.from_wire(replies[0]["metadata"]) == META
    for r in replies:
        assert r["v"] == WIRE_VERSION and r["id"] == 7
        assert r["server_ms"] >= 0 and r["infer_ms"] >= 0
    acts = replies[2]["actions"]
    assert acts.dtype == np.float32 and acts.shape == (1, 5) and replies[2]["tick"] == 41
    assert acts[0, 0] == pytest.approx(len("put it there") * 1e-3)


def test_each_client_has_its_own_policy_and_episode(served: Any) -> None:
    thread, policies = served
    with open_client(thread.url) as a, open_client(thread.url) as b:
        call(a, {"type": "reset", "prompt": ["aa"]})
        call(b, {"type": "reset", "prompt": ["bbbbbb"]})
        for step in range(3):
            ra = call(a, infer(step=step))["actions"][0]
            rb = call(b, infer(step=step))["actions"][0]
            assert ra[0] == pytest.approx(0.002) and rb[0] == pytest.approx(0.006)
            assert ra[1] == rb[1] == pytest.approx((step + 1) * 1e-3)
        call(a, {"type": "reset", "prompt": ["aa"]})  # a new episode restarts only a's count
        assert call(a, infer())["actions"][0, 1] == pytest.approx(1e-3)
        assert call(b, infer())["actions"][0, 1] == pytest.approx(4e-3)
    assert len(policies) == 2


def malformed_messages(n: int) -> Iterator[tuple[Any, str]]:
    """(frame, expected error code) cycling through every kind of defect."""
    good = {"v": WIRE_VERSION, "id": 1}
    kinds: list[tuple[Any, str]] = [
        (b"\xc1not msgpack", "malformed"),
        (msgpack.packb([1, 2, 3]), "malformed"),
        ("a text frame", "malformed"),
        (pack({"v": 99, "id": 1, "type": "hello"}), "version"),
        (pack({"id": 1, "type": "hello"}), "version"),
        (pack({**good, "type": "steal"}), "unknown_type"),
        (pack({**good, "type": "reset", "prompt": 5}), "bad_prompt"),
        (pack({**good, **infer(front=np.zeros((15, 16, 3), np.uint8))}), "bad_obs"),
        (pack({**good, **infer(proprio=np.full(6, np.nan, np.float32))}), "bad_obs"),
        (pack({**good, **infer()}), "no_episode"),  # this client never reset
        (b"\x81\xa1a" + b"\xc7\x03\x01\x08\x01\x00", "malformed"),  # truncated array header
        (pack({**good, "type": "hello", "pad": b"x" * (META.max_message_bytes + 10)}), "too_large"),
    ]
    for i in range(n):
        yield kinds[i % len(kinds)]


def test_a_thousand_malformed_messages_leave_the_server_serving(served: Any) -> None:
    thread, _ = served
    with open_client(thread.url) as good, open_client(thread.url) as bad:
        call(good, {"type": "reset", "prompt": ["ok"]})
        codes: dict[str, int] = {}
        for i, (frame, code) in enumerate(malformed_messages(1000)):
            reply = call(bad, frame)
            assert reply["type"] == "error" and reply["code"] == code, (i, reply)
            assert reply["message"] and reply["server_ms"] >= 0
            codes[code] = codes.get(code, 0) + 1
            if i % 100 == 0:  # the other robot keeps getting actions throughout
                assert call(good, infer(step=i))["type"] == "actions"
        assert sum(codes.values()) == 1000 and len(codes) == 7
        # the misbehaving client itself can still do things right
        assert call(bad, {"type": "reset", "prompt": ["now properly"]})["type"] == "reset_ok"
        assert call(bad, infer())["type"] == "actions"
    assert sum(thread.server.stats.errors.values()) == 1000
    with open_client(thread.url) as late:  # and new robots can still connect
        assert call(late, {"type": "hello"})["type"] == "metadata"


def test_frames_past_the_hard_limit_close_only_that_connection(served: Any) -> None:
    thread, _ = served
    with open_client(thread.url) as good, open_client(thread.url) as bad:
        call(good, {"type": "reset", "prompt": ["ok"]})
        bad.send(b"\x00" * (2 * META.max_message_bytes + 1))
        with pytest.raises(ConnectionClosed) as exc:
            bad.recv(timeout=5)
        assert exc.value.rcvd is not None and exc.value.rcvd.code == 1009  # message too big
        assert call(good, infer())["type"] == "actions"


def test_policy_failures_are_error_replies_and_the_session_survives(served: Any) -> None:
    thread, _ = served
    with open_client(thread.url) as ws:
        call(ws, {"type": "reset", "prompt": ["boom"]})
        reply = call(ws, infer())
        assert reply["code"] == "policy_error" and "the policy exploded" in reply["message"]
        call(ws, {"type": "reset", "prompt": ["calm"]})
        assert call(ws, infer())["type"] == "actions"


def test_a_vanished_client_is_cleaned_up(served: Any) -> None:
    thread, policies = served
    ws = open_client(thread.url)
    call(ws, {"type": "reset", "prompt": ["mid-episode"]})
    call(ws, infer())
    assert thread.server.stats.active == 1
    ws.socket.shutdown(socket.SHUT_RDWR)  # gone without a close frame, like a crashed robot PC
    ws.socket.close()
    assert wait_for(lambda: thread.server.stats.active == 0)
    assert wait_for(lambda: policies[0].closed)


def test_clients_beyond_max_clients_are_refused_with_a_reason() -> None:
    thread = ServerThread(PolicyServer(lambda: EchoPolicy([]), META, max_clients=1))
    try:
        with open_client(thread.url) as first, open_client(thread.url) as second:
            reply = unpack(second.recv(timeout=5), 1 << 20)
            assert reply["code"] == "server_full" and "1 clients" in reply["message"]
            assert call(first, {"type": "hello"})["type"] == "metadata"
    finally:
        thread.stop()


def test_health_endpoint(served: Any) -> None:
    thread, _ = served
    conn = http.client.HTTPConnection("127.0.0.1", thread.port, timeout=5)
    conn.request("GET", "/healthz")
    resp = conn.getresponse()
    body = json.loads(resp.read())
    conn.close()
    assert resp.status == 200 and body["ok"] and body["policy"] == "echo"
    assert body["wire_version"] == WIRE_VERSION
