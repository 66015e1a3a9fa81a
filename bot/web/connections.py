"""Slow and greedy clients are dropped: the connection-level bounds of the web server.

uvicorn's HTTP/1.1 protocol (h11) starts no timer on a new connection and none while a request's
head or body is arriving, so 400 connections trickling a header byte now and then stayed open
for as long as their senders liked (issue 19). ``guarded_protocol`` returns uvicorn's h11
protocol with the bounds of ``bot/web/limits.py``:

* the request line and headers together: at most ``HEADER_BYTES``, else 431 and the connection
  closes (h11 is told the same limit, and h11 is always used: the httptools parser that
  ``uvicorn[standard]`` would pick has no such limit);
* the head must be complete ``HEADER_SECONDS`` after the connection opened or the previous answer
  went out, and the body ``BODY_SECONDS`` after the head, else the connection is dropped;
* ``MAX_CONNECTIONS`` open at once (WebSockets included), ``MAX_CONNECTIONS_PER_CLIENT`` from one
  address (not counted for a trusted proxy, whose connections carry everyone's requests):
  one over is answered 503 with ``Connection: close`` at once;
* a refused connection is closed the lingering way (the answer, then our half of the connection,
  then what the client still sends is read and dropped for up to ``LINGER_SECONDS``): closing
  outright while a client is still sending makes the kernel answer its next bytes with a reset,
  which throws away the 503 or 431 unread in the client's buffer;
* an idle kept-alive connection closes after ``IDLE_SECONDS`` (uvicorn's ``timeout_keep_alive``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from bot.web.config import Proxies, client_key_of
from bot.web.limits import (
    BODY_SECONDS,
    HEADER_BYTES,
    HEADER_SECONDS,
    MAX_CONNECTIONS,
    MAX_CONNECTIONS_PER_CLIENT,
)

log = logging.getLogger(__name__)

LINGER_SECONDS = 2.0


def _plain(status: str, text: str) -> bytes:
    body = text.encode()
    return (
        f"HTTP/1.1 {status}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    ).encode() + body


BUSY = _plain("503 Service Unavailable", "too many connections: try again shortly\n")
HEADERS_TOO_LARGE = _plain(
    "431 Request Header Fields Too Large", f"request headers too large: at most {HEADER_BYTES:,} bytes\n"
)


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with the bounds above; ``proxies`` is set by ``guarded_protocol``."""

    proxies: Proxies = Proxies.none()
    max_connections: int = MAX_CONNECTIONS
    max_per_client: int = MAX_CONNECTIONS_PER_CLIENT
    header_seconds: float = HEADER_SECONDS
    body_seconds: float = BODY_SECONDS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._phase = ""  # "head" or "body": what the running deadline waits for
        self._refused = False
        self._upgraded = False  # a WebSocket has the connection: its own pings bound it

    # ------------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        reason = self._over_cap()
        if reason:
            self._refused = True
            self.connections.discard(self)  # it holds no place: only the connections served count
            _refusals.note(f"web connection from {self._peer()} refused: {reason}")
            self._answer_and_linger(BUSY)
            return
        self._arm("head", self.header_seconds)  # h11 itself would wait for the first byte forever

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self.conn.their_state is h11.IDLE:
            head = self.conn.trailing_data[0] + data  # what h11 holds unparsed, and this
            end = head.find(b"\r\n\r\n")
            if (end if end >= 0 else len(head)) > HEADER_BYTES:
                self._refuse_headers()
                return
            if self._phase != "head":  # the next request of a kept-alive connection has begun
                self._arm("head", self.header_seconds)
        super().data_received(data)
        self._follow()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        if self._phase == "head":
            self._disarm()
        super().on_response_complete()  # arms uvicorn's idle (keep-alive) timer
        self._follow()

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        self._disarm()  # the WebSocket protocol takes over (it pings, and drops a silent peer)
        self._upgraded = True  # h11 still sees the request's body coming: no deadline for it
        super().handle_websocket_upgrade(event)

    # ------------------------------------------------------------------ the bounds

    def _follow(self) -> None:
        """A deadline for the body while one is awaited; none once the request is in."""
        if self._upgraded or self.transport is None or self.transport.is_closing():
            self._disarm()
            return
        state = self.conn.their_state
        if state is h11.SEND_BODY:
            if self._phase != "body":
                self._arm("body", self.body_seconds)
        elif state is not h11.IDLE:
            self._disarm()

    def _arm(self, phase: str, seconds: float) -> None:
        self._disarm()
        self._phase = phase
        self._deadline = self.loop.call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = None
        self._phase = ""

    def _expired(self) -> None:
        phase, self._deadline, self._phase = self._phase, None, ""
        if self.transport is not None and not self.transport.is_closing():
            _drops.note(
                f"web connection from {self._peer()} dropped: its request {phase} did not arrive in time"
            )
            self.transport.close()

    def _over_cap(self) -> str:
        connections = list(self.connections)
        if len(connections) > self.max_connections:
            return f"{len(connections) - 1} connections open, the most is {self.max_connections}"
        peer = self._peer()
        if not peer or self.proxies.trusts(peer):
            return ""
        mine = client_key_of(peer)
        same = sum(1 for c in connections if _client_key(c) == mine)
        if same > self.max_per_client:
            return f"{same - 1} connections open from {mine}, the most is {self.max_per_client}"
        return ""

    def _refuse_headers(self) -> None:
        self._disarm()
        self._refused = True
        _drops.note(f"web connection from {self._peer()} refused: headers over {HEADER_BYTES} bytes")
        self._answer_and_linger(HEADERS_TOO_LARGE)

    def _answer_and_linger(self, answer: bytes) -> None:
        """Send ``answer``, close our side, and read (``data_received`` drops it) until the client
        closes too or ``LINGER_SECONDS`` pass."""
        transport = self.transport
        transport.write(answer)
        if transport.can_write_eof():
            transport.write_eof()
            self.loop.call_later(LINGER_SECONDS, transport.close)
        else:
            transport.close()

    def _peer(self) -> str:
        return self.client[0] if self.client else ""


class _Tally:
    """At most one log line a minute for one kind of refusal, with how many there were since the
    last: a flood of connections must not become a flood of log lines."""

    def __init__(self, level: int, every: float = 60.0) -> None:
        self.level = level
        self.every = every
        self.last = -every
        self.count = 0

    def note(self, text: str) -> None:
        self.count += 1
        now = time.monotonic()
        if now - self.last >= self.every:
            log.log(self.level, "%s (%d since the last such line)", text, self.count)
            self.last, self.count = now, 0


_refusals = _Tally(logging.WARNING)
_drops = _Tally(logging.INFO)


def _client_key(protocol: object) -> str:
    client = getattr(protocol, "client", None)
    return client_key_of(client[0]) if client else ""


def guarded_protocol(proxies: Proxies) -> type[GuardedH11Protocol]:
    """The protocol class to give uvicorn (``uvicorn.Config(http=...)``) for this server."""
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {"proxies": proxies})
