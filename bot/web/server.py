"""Serve the web app with uvicorn on the runner's event loop, bound before the trading lease.

``start_web(app, say)`` binds the socket itself (so a taken port is a clear one-line error at
once, and port 0 picks a free one), starts uvicorn on that socket without uvicorn's own signal
handling (the runner owns SIGTERM), and returns a ``WebServer`` to stop at shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import uvicorn

from bot.web.config import WebConfig, WebConfigError

if TYPE_CHECKING:
    from bot.app import App
    from bot.views import TickReport
    from bot.web.app import WebContext, Webhook

log = logging.getLogger(__name__)

STOP_SECONDS = 3


class WebStartError(RuntimeError):
    """The web server cannot start as configured; the message says what to change."""


class PortInUse(WebStartError):
    pass


class WebServer:
    def __init__(self, ctx: WebContext, config: WebConfig, sock: socket.socket) -> None:
        from bot.web.app import create_app

        self.ctx = ctx
        self.config = config
        self.socket = sock
        self.port = sock.getsockname()[1]
        self.asgi = create_app(ctx)
        uv_config = uvicorn.Config(
            self.asgi,
            log_config=None,  # our logging set-up (and its redaction) applies
            access_log=False,  # access lines would carry query strings (the one-time login link)
            lifespan="off",
            ws="websockets-sansio",
            ws_ping_interval=20.0,
            timeout_graceful_shutdown=STOP_SECONDS,
            server_header=False,
            proxy_headers=False,  # X-Forwarded-* is read where it matters (security.py)
        )
        self.server = _QuietServer(uv_config)
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        host = self.config.host
        shown = "127.0.0.1" if host in {"0.0.0.0", "::"} else host
        return f"http://{shown}:{self.port}"

    def login_url(self) -> str:
        token = self.ctx.auth.link_token
        return f"{self.url}/login?token={token}" if token else f"{self.url}/login"

    async def start(self) -> None:
        """Serve from now on. The socket is already listening, so nothing waits here: connections
        made before uvicorn's first accept wait in the listen backlog, and the runner goes on to
        the lease at once."""
        self.ctx.hub.start(asyncio.get_running_loop())
        self._task = asyncio.create_task(self.server.serve(sockets=[self.socket]), name="web-server")
        self._task.add_done_callback(_report_end)

    async def stop(self) -> None:
        if self._task is None:
            return
        self.ctx.hub.close()  # live streams end first, so uvicorn has no connection to wait for
        self.server.should_exit = True
        try:
            async with asyncio.timeout(STOP_SECONDS + 2):
                await self._task
        except (TimeoutError, asyncio.CancelledError):
            self._task.cancel()
        except Exception as exc:
            log.warning("web server stopped with %s: %s", type(exc).__name__, exc)
        self._task = None

    def add_webhook(self, path: str, handler: Webhook) -> None:
        """Let a transport receive POSTs on ``path`` (Telegram's webhook) on this server's port."""
        self.ctx.webhooks["/" + path.strip("/")] = handler

    def remove_webhook(self, path: str) -> None:
        self.ctx.webhooks.pop("/" + path.strip("/"), None)

    def cycle_finished(self, report: TickReport | None) -> None:
        self.ctx.hub.cycle_finished(report)


def _report_end(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error(
            "the web server stopped: the dashboard and API are down; trading goes on",
            exc_info=task.exception(),
        )


class _QuietServer(uvicorn.Server):
    """uvicorn's server without its signal handlers: the runner owns SIGTERM and SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def bind(config: WebConfig) -> socket.socket:
    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((config.host, config.port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUse(
                f"port {config.port} on {config.host} is in use: set TRADEBOT_WEB_PORT to another port "
                "(or off)"
            ) from None
        raise WebStartError(f"cannot listen on {config.host}:{config.port}: {exc.strerror or exc}") from None
    sock.listen(128)
    sock.setblocking(False)
    return sock


async def start_web(app: App, say: Callable[[str], None]) -> WebServer | None:
    """Start the web server as configured, or return None when TRADEBOT_WEB_PORT=off.

    ``say`` prints a line for the person at the terminal (the one-time login link goes there,
    never into the log). Raises WebStartError with a one-line reason.
    """
    try:
        config = WebConfig.from_settings(app.settings)
    except WebConfigError as exc:
        raise WebStartError(str(exc)) from None
    if config is None:
        return None
    from bot.web.app import WebContext
    from bot.web.auth import Auth
    from bot.web.data import Dashboard
    from bot.web.live import LiveHub

    logging.getLogger("uvicorn.error").setLevel(
        max(logging.WARNING, logging.getLogger("uvicorn.error").level)
    )
    try:
        sock = bind(config)
    except PortInUse as exc:
        if config.explicit:
            raise
        # Nobody asked for this port: trading matters more than the dashboard. Say so, loudly.
        log.warning("dashboard off: %s", exc)
        say(f"Dashboard off: {exc}")
        return None
    server: WebServer | None = None

    def new_link(token: str) -> None:
        if server is not None:
            say(f"Dashboard login link (one use; for another browser): {server.url}/login?token={token}")

    auth = Auth(user=config.user, password=config.password, token=config.token, on_new_link=new_link)
    ctx = WebContext(
        app=app,
        auth=auth,
        hub=LiveHub(app.service.feed),
        dashboard=Dashboard(app),
    )
    server = WebServer(ctx, config, sock)
    await server.start()
    log.info("dashboard and API listening on %s:%d (%s)", config.host, server.port, _who(config))
    if auth.link_token:
        say(
            f"Dashboard: {server.login_url()}  (one-time login link; set TRADEBOT_WEB_PASSWORD for a password)"
        )
    else:
        say(f"Dashboard: {server.url}/")
    return server


def _who(config: WebConfig) -> str:
    if config.has_credentials:
        kinds = [k for k, v in (("password", config.password), ("API token", config.token)) if v]
        return "login with " + " or ".join(kinds)
    return "loopback only, one-time login link on standard output"
