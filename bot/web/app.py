"""The ASGI application: pages, ``/api/v1``, the live WebSocket, ``/healthz``, the Telegram webhook.

``create_app(ctx)`` builds it around one ``WebContext`` (the bot's ``App`` and the web parts),
so tests can run several side by side. ``bot/web/server.py`` serves it with uvicorn on the
runner's event loop.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse, RedirectResponse, Response

from bot import __version__
from bot.web import api, pages, research
from bot.web.auth import Auth, TooManyAttempts
from bot.web.config import Proxies
from bot.web.data import Dashboard
from bot.web.limits import BodyGuard
from bot.web.live import LiveHub
from bot.web.schemas import HealthOut
from bot.web.security import LoginRequired, SecurityHeaders, principal_of, same_origin
from storage.db import DatabaseBusy, web_request

if TYPE_CHECKING:
    from bot.app import App
    from bot.research.supervisor import Research

log = logging.getLogger(__name__)

# A webhook handler gets the raw body and the headers; it answers with an HTTP status.
Webhook = Callable[[bytes, dict[str, str]], Awaitable[int]]


@dataclass
class WebContext:
    app: App
    auth: Auth
    hub: LiveHub
    dashboard: Dashboard
    webhooks: dict[str, Webhook] = field(default_factory=dict)
    webhook_secrets: dict[str, str] = field(default_factory=dict)  # path -> the header the sender must send
    proxies: Proxies = field(default_factory=Proxies.none)
    research: Research | None = None  # backtests from the research page (bot/research/)


DESCRIPTION = """\
Everything the tradebot dashboard shows, as JSON, and the same actions as Telegram and the console.

**Authentication**: `Authorization: Bearer <TRADEBOT_WEB_TOKEN>` for scripts, or the session cookie
of a logged-in browser (then every POST and DELETE needs the `X-CSRF-Token` header).

**Actions** that move money or limits (`POST /orders`, `/flatten`, `/risk`, `DELETE /orders/{id}`,
`/risk/{name}`) answer with a `confirmation`; nothing happens until `POST /confirmations/{id}`
within TRADEBOT_CONFIRM_SECONDS (60 by default). The confirmation does exactly what its prompt
showed: if the state changed meanwhile (another position opened before a flatten), nothing is done
and the answer carries the new question's `confirmation`, its `replaces` saying why.

**Live events**: the WebSocket `/api/v1/ws` (`?after=ID` resumes after the last event id seen).
"""


def create_app(ctx: WebContext) -> FastAPI:
    web = FastAPI(
        title="tradebot",
        version=__version__,
        description=DESCRIPTION,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # served behind the login by pages.openapi
    )
    web.state.ctx = ctx
    web.add_middleware(BodyGuard, context=lambda: ctx)  # inside SecurityHeaders: its answers get them too
    web.add_middleware(SecurityHeaders)
    web.add_middleware(WebDatabaseLane)
    web.include_router(api.router)
    web.include_router(research.router)
    web.include_router(pages.router)

    @web.exception_handler(LoginRequired)
    async def login_required(request: Request, exc: LoginRequired) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse(
                {"detail": "login required: a session cookie or Authorization: Bearer TOKEN"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        return RedirectResponse("/login", status_code=303)

    @web.exception_handler(DatabaseBusy)
    async def database_busy(request: Request, exc: DatabaseBusy) -> Response:
        """No connection of the web server's pool within WEB_POOL_WAIT: 503 at once, not a queue."""
        log.warning("%s %s answered 503: %s", request.method, request.url.path, exc)
        return JSONResponse(
            {"detail": "the database is busy: try again in a moment"},
            status_code=503,
            headers={"Retry-After": "1"},
        )

    @web.get("/healthz", response_model=HealthOut, include_in_schema=False)
    def healthz() -> HealthOut:
        """Answers on every instance, trading or on standby; no login, no database call."""
        lease = ctx.app.lease
        return HealthOut(ok=True, role="active" if lease.held else "standby", version=__version__)

    @web.websocket("/api/v1/ws")
    async def live(websocket: WebSocket, after: int | None = None) -> None:
        try:
            principal = principal_of(websocket)
        except TooManyAttempts:
            principal = None
        if principal is None or not same_origin(websocket):
            await websocket.close(code=1008, reason="login required")  # before accept: HTTP 403
            return
        await websocket.accept()
        # WebSocketDisconnect or RuntimeError: the browser went away (perhaps while we were sending).
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            await ctx.hub.stream(websocket.send_text, after, ctx.dashboard.read_only())

    for path in _webhook_paths(ctx):  # known from the settings before Telegram starts (standby too)
        web.add_api_route(f"/{path}", _webhook(ctx, f"/{path}"), methods=["POST"], include_in_schema=False)

    return web


class WebDatabaseLane:
    """Every request and WebSocket runs inside ``storage.db.web_request``: its database sessions
    (in FastAPI's worker threads too, which copy the context) use the web server's own pool."""

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app

    async def __call__(
        self, scope: dict, receive: Callable[..., Awaitable[dict]], send: Callable[..., Awaitable[None]]
    ) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        with web_request():
            await self.app(scope, receive, send)


def _webhook(ctx: WebContext, path: str) -> Callable[[Request], Awaitable[Response]]:
    async def receive(request: Request) -> Response:
        """An inbound webhook (Telegram's), handled by the transport that registered it. Until it
        has (a standby instance, Telegram still connecting), 503: Telegram delivers again later."""
        handler = ctx.webhooks.get(path)
        if handler is None:
            return Response("not ready", status_code=503, headers={"Retry-After": "5"})
        return Response(status_code=await handler(await request.body(), dict(request.headers)))

    return receive


def _webhook_paths(ctx: WebContext) -> set[str]:
    """The Telegram webhook path, known from the settings even before Telegram starts (standby)."""
    from urllib.parse import urlsplit

    url = ctx.app.settings.telegram_webhook_url.strip()
    return {urlsplit(url).path.strip("/") or "telegram"} if url else set()
