"""Serve the web app with uvicorn on the runner's event loop, bound before the trading lease.

``start_web(app, say)`` binds the socket itself, at once (so a taken port is a clear one-line
error, port 0 picks a free one, and from then on connections wait in the listen backlog), prints
how to log in, and returns. The application itself (FastAPI, pydantic, uvicorn: about a second of
imports on a small machine) is built in a worker thread while the runner goes on to the lease, and
then served without uvicorn's own signal handling (the runner owns SIGTERM).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from bot.web.auth import Auth
from bot.web.config import WebConfig, WebConfigError

if TYPE_CHECKING:
    from bot.app import App
    from bot.views import TickReport
    from bot.web.app import WebContext, Webhook

log = logging.getLogger(__name__)

STOP_SECONDS = 3
DEVICE_KEY = "web.device_key"


class WebStartError(RuntimeError):
    """The web server cannot start as configured; the message says what to change."""


class PortInUse(WebStartError):
    pass


class WebServer:
    def __init__(self, app: App, config: WebConfig, sock: socket.socket, auth: Auth) -> None:
        self.app = app
        self.config = config
        self.socket = sock
        self.port = sock.getsockname()[1]
        self.auth = auth
        self.webhooks: dict[str, Webhook] = {}
        self.webhook_secrets: dict[str, str] = {}
        self.ctx: WebContext | None = None  # once built
        self.asgi: Any = None
        self.server: Any = None
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        host = self.config.host
        shown = "127.0.0.1" if host in {"0.0.0.0", "::"} else host
        return f"http://{shown}:{self.port}"

    def login_url(self) -> str:
        token = self.auth.link_token
        return f"{self.url}/login?token={token}" if token else f"{self.url}/login"

    def start(self) -> None:
        """Build the application off the event loop, then serve; returns at once."""
        self._task = asyncio.create_task(self._serve(asyncio.get_running_loop()), name="web-server")
        self._task.add_done_callback(_report_end)

    async def ready(self) -> None:
        """Wait until the application is built and uvicorn accepts (tests, benchmarks)."""
        await self._ready.wait()
        while self.server is not None and not self.server.started:
            if self._task is None or self._task.done():
                return
            await asyncio.sleep(0.01)

    async def _serve(self, loop: asyncio.AbstractEventLoop) -> None:
        await asyncio.to_thread(self._build)
        assert self.ctx is not None
        self.ctx.hub.start(loop)
        self._ready.set()
        await self.server.serve(sockets=[self.socket])

    def _build(self) -> None:
        import uvicorn

        from bot.web import limits
        from bot.web.app import WebContext, create_app
        from bot.web.connections import guarded_protocol
        from bot.web.data import Dashboard
        from bot.web.live import LiveHub

        class QuietServer(uvicorn.Server):
            """uvicorn's server without its signal handlers: the runner owns SIGTERM and SIGINT."""

            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:
                yield

        ctx = WebContext(
            app=self.app,
            auth=self.auth,
            hub=LiveHub(self.app.service.feed),
            dashboard=Dashboard(self.app),
            webhooks=self.webhooks,
            webhook_secrets=self.webhook_secrets,
            proxies=self.config.proxies,
        )
        self.asgi = create_app(ctx)
        self.server = QuietServer(
            uvicorn.Config(
                self.asgi,
                log_config=None,  # our logging set-up (and its redaction) applies
                access_log=False,  # access lines would carry query strings (the one-time login link)
                lifespan="off",
                http=guarded_protocol(self.config.proxies),  # h11 with header, time and connection caps
                h11_max_incomplete_event_size=limits.HEADER_BYTES,
                ws="websockets-sansio",
                ws_ping_interval=20.0,
                ws_max_size=limits.WEBSOCKET_MESSAGE_BYTES,
                timeout_graceful_shutdown=STOP_SECONDS,
                timeout_keep_alive=limits.IDLE_SECONDS,  # longer than a browser's or a script's pause
                server_header=False,
                proxy_headers=False,  # X-Forwarded-* is read where it matters (security.py)
            )
        )
        self.ctx = ctx

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        if self.ctx is not None:
            self.ctx.hub.close()  # live streams end first, so uvicorn has no connection to wait for
        if self.server is not None:
            self.server.should_exit = True
        else:
            task.cancel()  # still building: nothing to finish
        try:
            async with asyncio.timeout(STOP_SECONDS + 2):
                await task
        except (TimeoutError, asyncio.CancelledError):
            task.cancel()
        except Exception as exc:
            log.warning("web server stopped with %s: %s", type(exc).__name__, exc)
        self.socket.close()

    def add_webhook(self, path: str, handler: Webhook, secret: str) -> None:
        """Let a transport receive POSTs on ``path`` (Telegram's webhook) on this server's port.
        A request without ``secret`` in ``X-Telegram-Bot-Api-Secret-Token`` is refused (403)
        before its body is read."""
        self.webhook_secrets["/" + path.strip("/")] = secret
        self.webhooks["/" + path.strip("/")] = handler

    def remove_webhook(self, path: str) -> None:
        self.webhooks.pop("/" + path.strip("/"), None)
        self.webhook_secrets.pop("/" + path.strip("/"), None)

    def cycle_finished(self, report: TickReport | None) -> None:
        if self.ctx is not None:
            self.ctx.dashboard.cache.clear()  # prices and equity moved
            self.ctx.hub.cycle_finished(report)


def _report_end(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error(
            "the web server stopped: the dashboard and API are down; trading goes on",
            exc_info=task.exception(),
        )


def bind(config: WebConfig) -> socket.socket:
    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    # proto=IPPROTO_TCP, not 0: accepted connections inherit it, and asyncio turns Nagle's
    # algorithm off (TCP_NODELAY) only on sockets that say TCP. With it on, a response written in
    # two pieces (headers, then body) on a kept-alive connection waited for the client's delayed
    # ACK: 40 ms added to every request after a connection's first.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
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

    auth = Auth(
        user=config.user,
        password=config.password,
        token=config.token,
        on_new_link=new_link,
        device_key=await asyncio.to_thread(_device_key, app),
    )
    server = WebServer(app, config, sock, auth)
    server.start()
    log.info("dashboard and API listening on %s:%d (%s)", config.host, server.port, _who(config))
    if auth.link_token:
        say(
            f"Dashboard: {server.login_url()}  (one-time login link; set TRADEBOT_WEB_PASSWORD for a password)"
        )
    else:
        say(f"Dashboard: {server.url}/")
    return server


def _device_key(app: App) -> bytes:
    """The key that signs device cookies, from the database, so they outlive a restart (a random
    one for this run when the database cannot give it: browsers then log in as new ones)."""
    import secrets

    from storage.db import DatabaseError

    try:
        return app.service.instance_key(DEVICE_KEY)
    except DatabaseError as exc:
        log.warning("device cookies last until the next restart: the database did not answer (%s)", exc)
        return secrets.token_bytes(32)


def _who(config: WebConfig) -> str:
    if config.has_credentials:
        kinds = [k for k, v in (("password", config.password), ("API token", config.token)) if v]
        return "login with " + " or ".join(kinds)
    return "loopback only, one-time login link on standard output"
