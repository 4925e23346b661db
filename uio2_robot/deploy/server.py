"""The policy server: websockets + msgpack, one persistent connection and one Policy per robot.

Each connection is a session with its own policy instance (built by the factory on the first
``reset``), so several robots share one server without sharing prompts or history. Messages of a
session are handled in order; inference runs in a small thread pool so one slow client does not
stall the others (torch and onnxruntime release the GIL). Any bad message gets an ``error``
reply naming the problem and the connection stays up; a policy that raises is reported the same
way. When a client disconnects, cleanly or not, its session and policy are dropped.

Message size: frames up to ``max_message_bytes`` are decoded; frames up to twice that get a
``too_large`` error reply; beyond that websockets closes the connection with code 1009
("message too big"), because a frame that size is not buffered at all.

Self-protection (issue #24): a session with no request for ``idle_timeout_s`` is closed (client
libraries answer websocket pings by themselves, so only an application-level timeout frees a
slot held by an idle client); each client may have at most ``max_queued_bytes`` of frames
queued before its socket stops being read (``uio2_robot.deploy.guard``); freed buffers go back
to the OS when a client leaves (``uio2_robot.deploy.memory``); a client's faults are logged as
one line each, rate-limited per client, never with a traceback. Beyond loopback the server
requires a shared token (``Authorization: Bearer``) unless told otherwise, and serves TLS from
the certificate files it is given (``uio2_robot.deploy.auth``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from uio2_robot.deploy import protocol
from uio2_robot.deploy.auth import ServerAuth
from uio2_robot.deploy.guard import INVALID_TEXT, guarded_connection
from uio2_robot.deploy.memory import fix_mmap_threshold, release_freed_memory, rss_bytes
from uio2_robot.deploy.metadata import PolicyMetadata
from uio2_robot.deploy.protocol import Hello, Infer, Ping, Reset
from uio2_robot.deploy.session import SERVE_MODES, PolicyFactory, PolicySession
from uio2_robot.deploy.wire import WireError, brief, pack, unpack

log = logging.getLogger("uio2_robot.deploy.server")

HEALTH_PATH = "/healthz"
FAULT_LOG_BURST = 3  # lines a client's faults may log at once ...
FAULT_LOG_EVERY_S = 10.0  # ... then at most one per this many seconds, with a count of the rest


class FaultLog:
    """One line per client fault, rate-limited per client: a client sending garbage in a loop
    must not be able to write megabytes of server log (it could write 1.7 MB/s before)."""

    def __init__(self, peer: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.peer = peer
        self.clock = clock
        self.logged = 0
        self.suppressed = 0
        self.next_t = 0.0

    def fault(self, err: WireError, level: int = logging.WARNING) -> None:
        now = self.clock()
        if self.logged >= FAULT_LOG_BURST and now < self.next_t:
            self.suppressed += 1
            return
        more = f" ({self.suppressed} more suppressed)" if self.suppressed else ""
        text = err.message if len(err.message) <= 160 else err.message[:157] + "..."
        log.log(level, "client %s: %s: %s%s", self.peer, err.code, text, more)
        self.logged += 1
        self.suppressed = 0
        if self.logged >= FAULT_LOG_BURST:
            self.next_t = now + FAULT_LOG_EVERY_S


@dataclass
class ServerStats:
    """Counters for the health endpoint, logs and tests."""

    connections: int = 0
    active: int = 0
    messages: int = 0
    inferences: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    refused: int = 0
    idle_closed: int = 0
    unauthorized: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "idle_closed": self.idle_closed,
            "unauthorized": self.unauthorized,
            "rss_bytes": rss_bytes(),
            "connections": self.connections,
            "active": self.active,
            "messages": self.messages,
            "inferences": self.inferences,
            "errors": dict(self.errors),
            "refused": self.refused,
        }


class PolicyServer:
    """Serves ``factory()`` policies under ``metadata`` on ``host:port`` (0 = any free port)."""

    def __init__(
        self,
        factory: PolicyFactory,
        metadata: PolicyMetadata,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        max_clients: int = 8,
        serve_mode: str = "action",
        ping_interval_s: float | None = 5.0,
        max_queued_bytes: int | None = None,
        auth: ServerAuth | None = None,
    ) -> None:
        """``max_queued_bytes``: per client, frames queued beyond this pause reading its
        socket (default: twice ``max_message_bytes``, one over-size frame). The session idle
        timeout is ``metadata.idle_timeout_s`` (clients learn it from ``hello``). ``auth``:
        token and TLS; required for a host other than loopback (see ``ServerAuth``)."""
        if serve_mode not in SERVE_MODES:
            raise ValueError(f"serve_mode must be one of {SERVE_MODES}, got {serve_mode!r}")
        if max_clients < 1:
            raise ValueError(f"max_clients must be >= 1, got {max_clients}")
        self.factory = factory
        self.metadata = metadata
        self.host = host
        self.port = port
        self.max_clients = max_clients
        self.serve_mode = serve_mode
        self.ping_interval_s = ping_interval_s
        self.max_queued_bytes = max_queued_bytes or 2 * metadata.max_message_bytes
        self.auth = auth or ServerAuth()
        self.auth.check_host(host)  # refuses a public host without a token (unless opted out)
        self.stats = ServerStats()
        self._server: Server | None = None

    # ------------------------------------------------------------------ running
    async def serve_until(
        self, stop: asyncio.Event, ready: Callable[[int], None] | None = None
    ) -> None:
        """Serve until ``stop`` is set; ``ready(port)`` is called once the socket listens."""
        limit = 2 * self.metadata.max_message_bytes
        fix_mmap_threshold()  # large frames in their own mappings: freed means returned
        async with serve(
            self._handler,
            self.host,
            self.port,
            max_size=limit,
            max_queue=4,  # frames; the byte cap is the guard's (max_queued_bytes)
            compression=None,  # camera frames do not deflate well; compression only adds latency
            ping_interval=self.ping_interval_s,
            ping_timeout=self.ping_interval_s,
            process_request=self._process_request,
            create_connection=guarded_connection(self.max_queued_bytes),
            ssl=self.auth.server_ssl_context(),
        ) as server:
            self._server = server
            self.port = server.sockets[0].getsockname()[1]
            log.info(
                "serving %s on %s://%s:%d (wire v%d, %s)",
                self.metadata.policy,
                self.auth.scheme,
                self.host,
                self.port,
                self.metadata.wire_version,
                self.auth.describe(),
            )
            if ready is not None:
                ready(self.port)
            await stop.wait()
        self._server = None

    def run(self, duration_s: float | None = None) -> None:
        """Serve in this thread until SIGINT/SIGTERM (or ``duration_s``), then shut down."""

        async def main() -> None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.add_signal_handler(sig, stop.set)
            if duration_s is not None:
                loop.call_later(duration_s, stop.set)
            await self.serve_until(stop)

        asyncio.run(main())

    # ------------------------------------------------------------------ connection
    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        """Plain HTTP GET /healthz for monitoring; a handshake without the token gets 401;
        everything else proceeds to the handshake."""
        if request.path != HEALTH_PATH:
            if self.auth.authorized(request.headers.get("Authorization")):
                return None
            self.stats.unauthorized += 1
            log.warning("refused a client without the server token (HTTP 401)")
            return connection.respond(
                HTTPStatus.UNAUTHORIZED, "this server needs its token: Authorization: Bearer ...\n"
            )
        body = {
            "ok": True,
            "policy": self.metadata.policy,
            "wire_version": self.metadata.wire_version,
            **self.stats.to_dict(),
        }
        return connection.respond(HTTPStatus.OK, json.dumps(body) + "\n")

    async def _handler(self, ws: ServerConnection) -> None:
        peer = f"{ws.remote_address[0]}:{ws.remote_address[1]}" if ws.remote_address else "?"
        self.stats.connections += 1
        if self.stats.active >= self.max_clients:
            self.stats.refused += 1
            err = WireError("server_full", f"the server already has {self.max_clients} clients")
            with contextlib.suppress(ConnectionClosed):
                await ws.send(pack(protocol.error_reply(None, err)))
                await ws.close(1013, "server full")
            return
        self.stats.active += 1
        session = PolicySession(self.factory, self.metadata, self.serve_mode)
        # One thread per session: calls of a session stay ordered, and thread-bound resources
        # (a sim twin's EGL context, some GPU runtimes) are always used from the same thread.
        worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="session")
        log.info("client %s connected (%d active)", peer, self.stats.active)
        faults = FaultLog(peer)
        idle = self.metadata.idle_timeout_s
        try:
            while True:
                try:
                    frame = await asyncio.wait_for(ws.recv(), idle)
                except TimeoutError:
                    self.stats.idle_closed += 1
                    log.info("client %s sent no request for %.0f s: closing", peer, idle)
                    await ws.close(1008, f"idle for {idle:g} s without a request")
                    break
                reply = await self._handle_frame(session, worker, frame, faults)
                await ws.send(pack(reply))
                del frame, reply  # a burst's buffers must not outlive their message
        except ConnectionClosed as exc:
            log.info("client %s went away (%s)", peer, exc)
        finally:
            self.stats.active -= 1
            await asyncio.get_running_loop().run_in_executor(worker, self._close, session, peer)
            worker.shutdown(wait=False)
            release_freed_memory()
            log.info("client %s cleaned up (%d active)", peer, self.stats.active)

    @staticmethod
    def _close(session: PolicySession, peer: str) -> None:
        try:
            session.close()
        except Exception:  # cleanup must never take the server down
            log.exception("closing the policy of %s failed", peer)

    async def _handle_frame(
        self,
        session: PolicySession,
        worker: ThreadPoolExecutor,
        frame: str | bytes,
        faults: FaultLog,
    ) -> dict[str, Any]:
        start = time.perf_counter()
        self.stats.messages += 1
        rid = None
        try:
            if frame is INVALID_TEXT:
                raise WireError(
                    "malformed", "a text frame with invalid UTF-8; send binary msgpack frames"
                )
            if isinstance(frame, str):
                raise WireError("malformed", "text frames are not accepted; send binary msgpack")
            msg = unpack(frame, self.metadata.max_message_bytes)
            rid = protocol.request_id(msg)
            req = protocol.parse_request(msg, self.metadata)
            reply = await self._dispatch(session, worker, req)
        except WireError as err:  # the client's fault: one line, rate-limited, no traceback
            self.stats.errors[err.code] += 1
            faults.fault(err, logging.INFO if err.code == "policy_error" else logging.WARNING)
            reply = protocol.error_reply(rid, err)
        except RecursionError:  # input nested too deep for some check: still the client's
            err = WireError("malformed", "the message is nested too deeply")
            self.stats.errors[err.code] += 1
            faults.fault(err)
            reply = protocol.error_reply(rid, err)
        except Exception as exc:  # a bug must cost one reply, not the server
            self.stats.errors["internal"] += 1
            if self.stats.errors["internal"] <= FAULT_LOG_BURST:
                log.exception("internal error on a message from %s", faults.peer)
            else:
                faults.fault(WireError("internal", f"{type(exc).__name__}: {exc}"), logging.ERROR)
            reply = protocol.error_reply(
                rid, WireError("internal", f"{type(exc).__name__}: {brief(str(exc), 160)}")
            )
        reply["server_ms"] = (time.perf_counter() - start) * 1e3
        return reply

    async def _dispatch(
        self, session: PolicySession, worker: ThreadPoolExecutor, req: protocol.Request
    ) -> dict[str, Any]:
        if isinstance(req, Hello):
            return protocol.reply("metadata", req.id, metadata=self.metadata.to_wire())
        if isinstance(req, Ping):
            return protocol.reply("pong", req.id)
        loop = asyncio.get_running_loop()
        if isinstance(req, Reset):
            ms = await loop.run_in_executor(worker, session.reset, req.prompt, req.episode)
            return protocol.reply("reset_ok", req.id, infer_ms=ms)
        assert isinstance(req, Infer)
        if not session.episode:
            raise WireError("no_episode", "send a reset (the episode's prompt) before infer")
        actions, ms = await loop.run_in_executor(
            worker, session.infer, req.obs, req.step, req.applied, req.applied_from
        )
        self.stats.inferences += 1
        return protocol.reply("actions", req.id, infer_ms=ms, tick=req.tick, actions=actions)


class ServerThread:
    """A :class:`PolicyServer` on a background thread (tests, benchmarks, in-process demos)."""

    def __init__(self, server: PolicyServer, start_timeout_s: float = 10.0) -> None:
        self.server = server
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="policy-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(start_timeout_s):
            raise RuntimeError(f"the policy server did not start within {start_timeout_s} s")
        if self._error is not None:
            raise RuntimeError(f"the policy server failed to start: {self._error}") from self._error

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def url(self) -> str:
        return f"{self.server.auth.scheme}://{self.server.host}:{self.server.port}"

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            await self.server.serve_until(self._stop, ready=lambda _port: self._ready.set())

        try:
            asyncio.run(main())
        except BaseException as exc:  # surfaced to the constructor or to stop()
            self._error = exc
            self._ready.set()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Close the listening socket and every connection (clients see the server vanish)."""
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout_s)

    def __enter__(self) -> ServerThread:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
