"""What one request may cost the trading process: the web server runs in it, so its memory is the
bot's life (issue 19: one anonymous 200 MB POST grew it by 800 MB).

``BodyGuard`` (ASGI middleware, outermost but for FastAPI's own error handler) applies to every
HTTP request, before any route runs:

* **Credentials before the body.** A request that carries a body to ``/api/`` or ``/logout`` is
  answered 401 (or 429) from its headers alone, so a stranger's upload is never read. A webhook
  checks its secret header the same way (``WebContext.webhook_secrets``).
* **Every body is capped**: ``API_BODY_BYTES`` for the API (its largest request is a few hundred
  bytes), ``LOGIN_BODY_BYTES`` for the login form, ``WEBHOOK_BODY_BYTES`` for Telegram's updates.
  A declared ``Content-Length`` over the cap is answered 413 at once; a chunked body is counted as
  it arrives and refused when it passes the cap. Either way the connection is closed, so the rest
  of the upload is never read.
* **A body arrives within** ``BODY_SECONDS`` **of the request's head**, or 408.

The connection-level bounds (header size and time, idle time, connection caps) are enforced
below the application, in ``bot/web/connections.py``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Container
from typing import TYPE_CHECKING

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from bot.web.app import WebContext

API_BODY_BYTES = 64 * 1024
LOGIN_BODY_BYTES = 4 * 1024  # a nonce, a password and a path
WEBHOOK_BODY_BYTES = 1024 * 1024  # a Telegram update: 4,096 characters of text and its entities, JSON-escaped
HEADER_BYTES = 16 * 1024  # the request line and every header together
HEADER_SECONDS = 10.0  # from the connection (or the previous response) to the end of the headers
BODY_SECONDS = 30.0  # from the end of the headers to the end of the body
IDLE_SECONDS = 30  # a kept-alive connection with no request
MAX_CONNECTIONS = 256  # open at once, WebSockets included
MAX_CONNECTIONS_PER_CLIENT = 64  # from one address, unless it is a trusted proxy
WEBSOCKET_MESSAGE_BYTES = 4 * 1024  # clients have nothing to say on /api/v1/ws but the handshake

BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class BodyTooLarge(HTTPException):
    """Raised from ``receive``: an HTTPException, so FastAPI's body reading passes it on (it turns
    any other error into a 400) and the usual handler answers; the connection then closes."""

    def __init__(self, cap: int) -> None:
        super().__init__(413, f"request body too large: at most {cap:,} bytes here", {"connection": "close"})


class BodyTooSlow(HTTPException):
    def __init__(self) -> None:
        super().__init__(
            408, f"request body not received within {BODY_SECONDS:.0f} s", {"connection": "close"}
        )


def body_cap(path: str, webhooks: Container[str]) -> int:
    if path == "/login":
        return LOGIN_BODY_BYTES
    if path in webhooks:
        return WEBHOOK_BODY_BYTES
    return API_BODY_BYTES


class BodyGuard:
    """See the module docstring. ``context`` gives the running ``WebContext`` (auth, webhooks)."""

    def __init__(self, app: ASGIApp, *, context: Callable[[], WebContext]) -> None:
        self.app = app
        self.context = context

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ctx = self.context()
        path = str(scope.get("path", ""))
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        cap = body_cap(path, ctx.webhook_secrets)
        declared = _content_length(headers)
        has_body = bool(declared) or (declared is None and "transfer-encoding" in headers)
        if scope.get("method") in BODY_METHODS and has_body:
            refusal = _refuse_before_body(ctx, scope, path, headers)
            if refusal is not None:
                await _answer(send, *refusal, close=True)
                return
        if declared is not None and declared > cap:
            await _answer(send, 413, f"request body too large: at most {cap:,} bytes here", close=True)
            return
        started = False

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, _limited(receive, cap), tracked_send)
        except (BodyTooLarge, BodyTooSlow) as exc:  # raised where no handler turned it into an answer
            if started:
                raise
            await _answer(send, exc.status_code, exc.detail, close=True)


def _refuse_before_body(
    ctx: WebContext, scope: Scope, path: str, headers: dict[str, str]
) -> tuple[int, str, dict[str, str]] | None:
    """(status, message, headers) when the request's headers alone say no; None to go on."""
    from starlette.requests import HTTPConnection

    from bot.web.auth import TooManyAttempts, same_secret
    from bot.web.security import principal_of

    if path in ctx.webhook_secrets:
        given = headers.get("x-telegram-bot-api-secret-token", "")
        if not same_secret(given, ctx.webhook_secrets[path]):
            return 403, "forbidden", {}
        return None
    if not (path.startswith("/api/") or path == "/logout"):
        return None
    connection = HTTPConnection(scope)
    try:
        principal = principal_of(connection)
    except TooManyAttempts as exc:
        return 429, str(exc), {"retry-after": f"{exc.retry_after:.0f}"}
    if principal is None:
        return (
            401,
            "login required: a session cookie or Authorization: Bearer TOKEN",
            {"www-authenticate": "Bearer"},
        )
    return None


def _limited(receive: Receive, cap: int) -> Callable[[], Awaitable[Message]]:
    """``receive`` that counts body bytes against ``cap`` and gives the whole body ``BODY_SECONDS``."""
    deadline = asyncio.get_running_loop().time() + BODY_SECONDS
    seen = 0
    complete = False

    async def receive_limited() -> Message:
        nonlocal seen, complete
        if complete:  # after the body, receive only waits for a disconnect: no deadline
            return await receive()
        try:
            async with asyncio.timeout_at(deadline):
                message = await receive()
        except TimeoutError:
            raise BodyTooSlow() from None
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > cap:
                raise BodyTooLarge(cap)
            complete = not message.get("more_body", False)
        return message

    return receive_limited


async def _answer(
    send: Send, status: int, detail: str, extra: dict[str, str] | None = None, *, close: bool
) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.encode(), v.encode()) for k, v in (extra or {}).items()]
    if close:  # the rest of the upload is never read: the connection ends with this answer
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _content_length(headers: dict[str, str]) -> int | None:
    text = headers.get("content-length")
    if text is None:
        return None
    text = text.strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 18 else None
