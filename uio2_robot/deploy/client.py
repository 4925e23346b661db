"""Robot-side policy clients: the remote one (websockets) and an in-process one, same interface.

The control loop never blocks on the network: :meth:`submit` hands an observation to a
background I/O thread and returns; :meth:`poll` collects the reply when it is there. One request
is in flight at a time (the loop asks for the next one before its action queue runs dry).

The remote client owns one persistent connection. When it drops (server killed, cable pulled,
request timed out) the client marks itself disconnected, the loop stops the arm, and the I/O
thread reconnects every ``reconnect_interval_s``; after reconnecting it re-sends the episode's
reset and, with the next observation, every action applied since the episode began, so a
restarted server (or its sim twin) resumes the same episode. Each outage (connection lost until
the next successful handshake) is counted and timed (:meth:`RemotePolicyClient.outages`) for
the episode report. While no request is due, the client pings within the server's idle timeout
(``idle_timeout_s`` of the metadata) so an idle robot keeps its session.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlparse

import numpy as np
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.sync.client import ClientConnection, connect

from uio2_robot.deploy import protocol
from uio2_robot.deploy.auth import ClientAuth
from uio2_robot.deploy.metadata import DEFAULT_MAX_MESSAGE_BYTES, PolicyMetadata
from uio2_robot.deploy.session import PolicyFactory, PolicySession
from uio2_robot.deploy.wire import WIRE_VERSION, WireError, pack, unpack
from uio2_robot.policies.base import PromptSegment

log = logging.getLogger("uio2_robot.deploy.client")


class ClientError(RuntimeError):
    """The server could not be reached, or answered a blocking call with an error."""


@dataclass
class OutageStats:
    """Connection losses so far: how many, their total duration, and the reconnects."""

    count: int = 0
    total_s: float = 0.0
    reconnects: int = 0
    ongoing_since: float | None = None  # monotonic time the current outage began, if any

    def total_at(self, now: float) -> float:
        """Total outage time including the one still going on at ``now``."""
        return self.total_s + (now - self.ongoing_since if self.ongoing_since is not None else 0.0)


@dataclass
class Reply:
    """The answer to one ``infer``: actions for ticks ``tick .. tick + H - 1``, or an error."""

    tick: int
    step: int
    capture_t: float  # monotonic time the observation was captured
    sent_t: float  # monotonic time the request left
    received_t: float  # monotonic time the reply was in
    actions: np.ndarray | None  # (H, D) float32, None on error
    infer_ms: float = 0.0
    server_ms: float = 0.0
    error: WireError | None = None
    kind: str = "actions"  # "actions" (an infer's answer) | "pong" (a heartbeat's)

    @property
    def rtt_ms(self) -> float:
        return (self.received_t - self.sent_t) * 1e3

    @property
    def transfer_ms(self) -> float:
        """Round trip minus the server's own time: serialisation + network + queuing."""
        return max(0.0, self.rtt_ms - self.server_ms)


class PolicyClient(Protocol):
    """What the control loop needs from a policy, wherever it runs."""

    metadata: PolicyMetadata

    @property
    def connected(self) -> bool: ...

    @property
    def in_flight(self) -> bool: ...

    def connect(self, timeout_s: float = ...) -> PolicyMetadata: ...

    def begin_episode(
        self, prompt: list[PromptSegment], episode: dict[str, Any] | None, timeout_s: float = ...
    ) -> None: ...

    def record_applied(self, action: np.ndarray) -> None: ...

    def submit(
        self, tick: int, step: int, obs: dict[str, np.ndarray], capture_t: float
    ) -> bool: ...

    def ping(self, capture_t: float) -> bool: ...

    def poll(self, timeout_s: float = 0.0) -> Reply | None: ...

    def close(self) -> None: ...


class _EpisodeLog:
    """The episode's prompt and applied actions; what a new session needs to resume."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.prompt: list[PromptSegment] | None = None
        self.episode: dict[str, Any] = {}
        self.applied: list[np.ndarray] = []
        self.delivered = 0  # applied actions the current server session has seen

    def start(self, prompt: list[PromptSegment], episode: dict[str, Any] | None) -> None:
        with self.lock:
            self.prompt = list(prompt)
            self.episode = dict(episode or {})
            self.applied = []
            self.delivered = 0

    def take(self, step: int, dim: int) -> tuple[np.ndarray, int]:
        """The applied actions the session has not seen, up to ``step`` (exclusive)."""
        with self.lock:
            start = min(self.delivered, step)
            rows = self.applied[start:step]
            arr = np.stack(rows).astype(np.float32) if rows else np.zeros((0, dim), np.float32)
            return arr, start


class _BackgroundClient:
    """Shared machinery: one in-flight request as a Future, answered by a worker thread."""

    metadata: PolicyMetadata

    def __init__(self) -> None:
        self._log = _EpisodeLog()
        self._pending: Future[Reply] | None = None
        self._ids = 0

    @property
    def in_flight(self) -> bool:
        return self._pending is not None

    def _next_id(self) -> int:
        self._ids += 1
        return self._ids

    def record_applied(self, action: np.ndarray) -> None:
        """Log the action actually sent to the robot this step (after safety, holds included)."""
        with self._log.lock:
            self._log.applied.append(np.asarray(action, dtype=np.float32).copy())

    def poll(self, timeout_s: float = 0.0) -> Reply | None:
        """The reply to the request in flight, waiting up to ``timeout_s``; None if not yet."""
        fut = self._pending
        if fut is None:
            return None
        try:
            reply = fut.result(timeout=max(0.0, timeout_s))
        except FutureTimeout:
            return None
        except Exception as exc:  # the request died with the connection
            self._pending = None
            log.debug("request failed: %s", exc)
            return None
        self._pending = None
        return reply


class RemotePolicyClient(_BackgroundClient):
    """Talks to a :class:`~uio2_robot.deploy.server.PolicyServer` at ``url`` (ws://host:port)."""

    def __init__(
        self,
        url: str,
        *,
        connect_timeout_s: float = 2.0,
        request_timeout_s: float = 2.0,
        reconnect_interval_s: float = 0.5,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        auth: ClientAuth | None = None,
    ) -> None:
        super().__init__()
        parsed = urlparse(url)
        if parsed.scheme not in ("ws", "wss") or not parsed.hostname:
            raise ValueError(f"server url {url!r} must look like ws://HOST:PORT or wss://HOST:PORT")
        self.auth = auth or ClientAuth()
        self._ssl = self.auth.ssl_context(url)
        self.stats = OutageStats()
        self._last_sent = time.monotonic()
        self.url = url
        self.connect_timeout_s = connect_timeout_s
        self.request_timeout_s = request_timeout_s
        self.reconnect_interval_s = reconnect_interval_s
        self.max_message_bytes = max_message_bytes
        self.metadata: PolicyMetadata | None = None  # type: ignore[assignment]
        self.reconnects = 0
        self.last_error: str | None = None
        self._ws: ClientConnection | None = None
        self._jobs: queue.Queue[tuple[Callable[[], Any], Future[Any]]] = queue.Queue()
        self._closing = threading.Event()
        self._connected = threading.Event()
        self._want = threading.Event()  # set once connect() was called: keep reconnecting
        self._next_attempt = 0.0
        self._thread = threading.Thread(target=self._io_loop, name="policy-client", daemon=True)
        self._thread.start()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    # ------------------------------------------------------------------ blocking calls
    def connect(self, timeout_s: float = 10.0) -> PolicyMetadata:
        """Connect (retrying until ``timeout_s``) and fetch the server's metadata."""
        self._want.set()
        if not self._connected.wait(timeout_s):
            raise ClientError(
                f"could not reach the policy server at {self.url} within {timeout_s} s "
                f"(last error: {self.last_error})"
            )
        assert self.metadata is not None
        return self.metadata

    def begin_episode(
        self, prompt: list[PromptSegment], episode: dict[str, Any] | None, timeout_s: float = 10.0
    ) -> None:
        """Start an episode on the server (blocking); remembered for reconnects."""
        self._log.start(prompt, episode)
        self._pending = None
        fut: Future[Any] = Future()
        self._jobs.put((self._send_reset, fut))
        try:
            fut.result(timeout=timeout_s)
        except FutureTimeout:
            raise ClientError(f"the server did not answer reset within {timeout_s} s") from None
        except (WireError, ClientError) as exc:
            raise ClientError(f"reset failed: {exc}") from None

    # ------------------------------------------------------------------ non-blocking calls
    def submit(self, tick: int, step: int, obs: dict[str, np.ndarray], capture_t: float) -> bool:
        """Queue an ``infer`` for the observation of ``tick``; False if one is in flight or the
        client is disconnected (the loop then holds)."""
        if self._pending is not None or not self._connected.is_set():
            return False
        fut: Future[Reply] = Future()
        self._pending = fut
        self._jobs.put((lambda: self._send_infer(tick, step, obs, capture_t), fut))
        return True

    def ping(self, capture_t: float) -> bool:
        """Queue a heartbeat (``ping``); its ``pong`` Reply tells the loop the server is alive
        while the arm executes a primitive and no inference is asked for."""
        if self._pending is not None or not self._connected.is_set():
            return False
        fut: Future[Reply] = Future()
        self._pending = fut
        self._jobs.put((lambda: self._send_ping(capture_t), fut))
        return True

    def close(self) -> None:
        self._closing.set()
        self._thread.join(5.0)

    # ------------------------------------------------------------------ I/O thread
    def _io_loop(self) -> None:
        while not self._closing.is_set():
            if self._ws is None and self._want.is_set() and time.monotonic() >= self._next_attempt:
                self._open()
            try:
                job, fut = self._jobs.get(timeout=0.02)
            except queue.Empty:
                self._keepalive()
                continue
            if not fut.set_running_or_notify_cancel():
                continue
            if self._ws is None:
                fut.set_exception(ClientError(f"not connected to {self.url}"))
                continue
            try:
                fut.set_result(job())
            except (ConnectionClosed, OSError, TimeoutError) as exc:
                self._drop(f"{type(exc).__name__}: {exc}")
                fut.set_exception(ClientError(str(exc)))
            except Exception as exc:  # WireError from the server, or a bug: fail this request only
                fut.set_exception(exc)
        self._drop("client closed")

    def outages(self) -> OutageStats:
        """A snapshot of the outage counters (the loop diffs two for one episode)."""
        s = self.stats
        return OutageStats(s.count, s.total_s, s.reconnects, s.ongoing_since)

    def _keepalive(self) -> None:
        """Ping when nothing was sent for a third of the server's idle timeout."""
        idle = self.metadata.idle_timeout_s if self.metadata is not None else None
        if self._ws is None or idle is None or time.monotonic() - self._last_sent < idle / 3:
            return
        try:
            self._roundtrip({"type": "ping"})
        except (ConnectionClosed, OSError, TimeoutError) as exc:
            self._drop(f"{type(exc).__name__}: {exc}")
        except WireError:
            pass  # an error reply: the connection is fine

    def _open(self) -> None:
        try:
            ws = connect(
                self.url,
                additional_headers=self.auth.headers(),
                ssl=self._ssl,
                open_timeout=self.connect_timeout_s,
                close_timeout=1.0,
                proxy=None,  # never route robot traffic through an environment proxy
                compression=None,
                max_size=2 * self.max_message_bytes,
                ping_interval=None,  # request timeouts detect a dead server
                legacy=True,  # a plain connection; this client does its own reconnecting
            )
        except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            self._next_attempt = time.monotonic() + self.reconnect_interval_s
            return
        self._ws = ws
        try:
            meta = PolicyMetadata.from_wire(self._roundtrip({"type": "hello"}).get("metadata"))
            if self.metadata is not None and meta != self.metadata:
                # Never let a different policy (or contract) take over a running robot.
                raise ClientError(
                    f"the server at {self.url} now serves {meta} instead of {self.metadata}; "
                    "restart the robot loop to accept a new policy"
                )
            self.metadata = meta
            if self._log.prompt is not None:  # resume the episode on a new session
                self._send_reset()
        except Exception as exc:
            self._drop(f"handshake failed: {type(exc).__name__}: {exc}")
            self._next_attempt = time.monotonic() + self.reconnect_interval_s
            return
        if self.reconnects or self._connected.is_set():
            log.warning("reconnected to %s", self.url)
        self.reconnects += 1
        if self.stats.ongoing_since is not None:
            self.stats.total_s += time.monotonic() - self.stats.ongoing_since
            self.stats.ongoing_since = None
            self.stats.reconnects += 1
        self._last_sent = time.monotonic()
        self._connected.set()

    def _drop(self, why: str) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            if self._closing.is_set():
                log.info("connection to %s closed", self.url)
            else:
                log.warning("connection to %s lost: %s", self.url, why)
            self.last_error = why
            with contextlib.suppress(Exception):
                ws.close()
        if self._connected.is_set() and not self._closing.is_set():
            self.stats.count += 1  # an outage begins: lasts until the next handshake
            self.stats.ongoing_since = time.monotonic()
        self._connected.clear()
        self._next_attempt = time.monotonic() + self.reconnect_interval_s

    def _roundtrip(self, msg: dict[str, Any]) -> dict[str, Any]:
        """Send one request and wait for the reply with the same id (stale replies skipped)."""
        ws = self._ws
        if ws is None:
            raise ClientError("not connected")
        rid = self._next_id()
        self._last_sent = time.monotonic()
        ws.send(pack({"v": WIRE_VERSION, "id": rid, **msg}))
        deadline = time.monotonic() + self.request_timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no reply within {self.request_timeout_s} s")
            frame = ws.recv(timeout=left)
            if isinstance(frame, str):
                raise WireError("malformed", "the server sent a text frame")
            reply = unpack(frame, 2 * self.max_message_bytes)
            protocol.check_version(reply)
            if reply.get("id") not in (rid, None):
                continue  # the answer to a request we already gave up on
            if reply.get("type") == "error":
                raise WireError(str(reply.get("code")), str(reply.get("message")))
            return reply

    def _send_reset(self) -> dict[str, Any]:
        with self._log.lock:
            prompt, episode = self._log.prompt, self._log.episode
            self._log.delivered = 0
        return self._roundtrip({"type": "reset", "prompt": prompt, "episode": episode or None})

    def _send_ping(self, capture_t: float) -> Reply:
        sent = time.monotonic()
        reply = self._roundtrip({"type": "ping"})
        return Reply(
            -1,
            -1,
            capture_t,
            sent,
            time.monotonic(),
            None,
            server_ms=float(reply.get("server_ms", 0.0)),
            kind="pong",
        )

    def _send_infer(
        self, tick: int, step: int, obs: dict[str, np.ndarray], capture_t: float
    ) -> Reply:
        assert self.metadata is not None
        applied, applied_from = self._log.take(step, protocol.APPLIED_DIM)
        msg = {
            "type": "infer",
            "tick": tick,
            "step": step,
            "obs": obs,
            "applied": applied,
            "applied_from": applied_from,
        }
        sent = time.monotonic()
        try:
            reply = self._roundtrip(msg)
        except WireError as err:  # an error reply: the connection is fine
            return Reply(tick, step, capture_t, sent, time.monotonic(), None, error=err)
        received = time.monotonic()
        with self._log.lock:
            self._log.delivered = max(self._log.delivered, step)
        actions = protocol.parse_actions(reply, self.metadata.action_dim)
        return Reply(
            tick=tick,
            step=step,
            capture_t=capture_t,
            sent_t=sent,
            received_t=received,
            actions=actions,
            infer_ms=float(reply.get("infer_ms", 0.0)),
            server_ms=float(reply.get("server_ms", 0.0)),
        )


class LocalPolicyClient(_BackgroundClient):
    """The same interface with the policy in this process (a worker thread runs it).

    Used to run a policy without a server, and as the in-process baseline of the latency
    benchmark: it goes through the same :class:`PolicySession` the server uses.
    """

    def __init__(
        self, factory: PolicyFactory, metadata: PolicyMetadata, mode: str = "action"
    ) -> None:
        super().__init__()
        self.metadata = metadata
        self.session = PolicySession(factory, metadata, mode)
        self._jobs: queue.Queue[tuple[Callable[[], Any], Future[Any]] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="local-policy", daemon=True)
        self._thread.start()

    @property
    def connected(self) -> bool:
        return True

    def connect(self, timeout_s: float = 10.0) -> PolicyMetadata:
        return self.metadata

    def begin_episode(
        self, prompt: list[PromptSegment], episode: dict[str, Any] | None, timeout_s: float = 60.0
    ) -> None:
        self._log.start(prompt, episode)
        self._pending = None
        fut: Future[Any] = Future()
        self._jobs.put((lambda: self.session.reset(list(prompt), dict(episode or {})), fut))
        try:
            fut.result(timeout=timeout_s)
        except FutureTimeout:
            raise ClientError(f"the policy did not finish reset within {timeout_s} s") from None
        except WireError as exc:
            raise ClientError(f"reset failed: {exc}") from None

    def submit(self, tick: int, step: int, obs: dict[str, np.ndarray], capture_t: float) -> bool:
        if self._pending is not None:
            return False
        fut: Future[Reply] = Future()
        self._pending = fut
        self._jobs.put((lambda: self._infer(tick, step, obs, capture_t), fut))
        return True

    def ping(self, capture_t: float) -> bool:
        """A heartbeat; the in-process policy is always there, so the pong is immediate."""
        if self._pending is not None:
            return False
        now = time.monotonic()
        fut: Future[Reply] = Future()
        fut.set_result(Reply(-1, -1, capture_t, now, now, None, kind="pong"))
        self._pending = fut
        return True

    def _infer(self, tick: int, step: int, obs: dict[str, np.ndarray], capture_t: float) -> Reply:
        applied, applied_from = self._log.take(step, protocol.APPLIED_DIM)
        sent = time.monotonic()
        try:
            actions, ms = self.session.infer(obs, step, applied, applied_from)
        except WireError as err:
            return Reply(tick, step, capture_t, sent, time.monotonic(), None, error=err)
        with self._log.lock:
            self._log.delivered = max(self._log.delivered, step)
        return Reply(tick, step, capture_t, sent, time.monotonic(), actions, ms, ms)

    def _work(self) -> None:
        while True:
            item = self._jobs.get()
            if item is None:
                break
            job, fut = item
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(job())
            except BaseException as exc:
                fut.set_exception(exc)
        self.session.close()

    def close(self) -> None:
        self._jobs.put(None)
        self._thread.join(10.0)
