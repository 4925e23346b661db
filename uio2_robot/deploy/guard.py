"""The server's per-connection guards below the message level: queued bytes and text frames.

Why this reaches into websockets: its receive queue counts *frames* (``max_queue``), not bytes,
so eight clients pipelining frames near the size limit made the server buffer ~1.5 GB; and it
fails a connection whose text frame is not UTF-8 (close code 1007) before the application sees
the frame, so the client never learns what it did wrong. :class:`GuardedConnection` installs
an assembler that pauses reading from a client's socket once the frames it has queued hold
``max_queued_bytes`` (TCP then pushes back on the client: backpressure, not buffering) and that
hands an undecodable text frame to the handler as :data:`INVALID_TEXT` so it gets an error reply.
websockets is pinned (pyproject.toml) and ``tests/deploy/test_fuzz.py`` pins both behaviours.
"""

from __future__ import annotations

import asyncio
from typing import Any

from websockets.asyncio.messages import Assembler
from websockets.asyncio.server import ServerConnection


class InvalidText(str):
    """The marker a text frame with invalid UTF-8 is delivered as (its bytes are dropped)."""


INVALID_TEXT = InvalidText("")


class GuardedAssembler(Assembler):
    """websockets' frame assembler with a byte cap on the queue and tolerant text decoding."""

    def __init__(self, *args: Any, max_queued_bytes: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_queued_bytes = max_queued_bytes

    def queued_bytes(self) -> int:
        return sum(len(f.data) for f in self.frames.queue)

    def maybe_pause(self) -> None:
        if not self.paused and (
            (self.high is not None and len(self.frames) > self.high)
            or self.queued_bytes() > self.max_queued_bytes
        ):
            self.paused = True
            self.pause()

    def maybe_resume(self) -> None:
        if (
            self.paused
            and (self.low is None or len(self.frames) <= self.low)
            and self.queued_bytes() <= self.max_queued_bytes // 4
        ):
            self.paused = False
            self.resume()

    async def get(self, decode: bool | None = None) -> str | bytes:  # type: ignore[override]
        try:
            return await super().get(decode)
        except UnicodeDecodeError:  # the frames are consumed: the connection stays usable
            return INVALID_TEXT


class GuardedConnection(ServerConnection):
    """A ServerConnection whose receive side is a :class:`GuardedAssembler`."""

    max_queued_bytes = 1 << 24  # replaced per server by ``guarded_connection``

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        old = self.recv_messages
        self.recv_messages = GuardedAssembler(
            old.high,
            old.low,
            pause=old.pause,
            resume=old.resume,
            max_queued_bytes=self.max_queued_bytes,
        )


def guarded_connection(max_queued_bytes: int) -> type[GuardedConnection]:
    """A GuardedConnection class with this server's per-client byte cap."""
    return type("GuardedConnection", (GuardedConnection,), {"max_queued_bytes": max_queued_bytes})
