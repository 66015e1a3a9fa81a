"""``run_telegram(app, stop)``: the Telegram front end on the runner's event loop until ``stop``.

Long polling by default; a webhook when TELEGRAM_WEBHOOK_URL is set: `tradebot run`'s web server
takes the updates on its own port (bot/web), else python-telegram-bot's on ``$PORT``.
TELEGRAM_BASE_URL points it at another Bot API server, as python-telegram-bot's ``base_url``
(``http://127.0.0.1:8081/bot``).

Telegram being unreachable never stops trading: the engine runs on its own scheduler, the
connection is retried with backoff (``sending.CONNECT``: 1 s doubling to 60 s), python-telegram-bot's polling loop
retries on its own once connected, and alerts wait in the outbox. A refused token turns
Telegram off (logged as an error) and trading goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from telegram import BotCommand, Update
from telegram.error import InvalidToken, RetryAfter, TelegramError
from telegram.ext import Application, ApplicationBuilder

from bot import charts
from bot.app import App
from bot.charts import ChartData, chart_commands
from bot.config import Settings
from bot.retry import RetryPolicy
from bot.telegram.alerts import AlertDispatcher, alerts_command, wait_any
from bot.telegram.auth import AllowList
from bot.telegram.handlers import Handlers, PerChatUpdateProcessor
from bot.telegram.sending import CONNECT, RateLimiter, retry_after_seconds

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.telegram.org/bot"
ALLOWED_UPDATES = ["message", "callback_query"]
SHUTDOWN_SECONDS = 10.0


@dataclass(frozen=True)
class TelegramConfig:
    token: str
    base_url: str
    chat_ids: tuple[int, ...]
    user_ids: tuple[int, ...]
    webhook_url: str
    port: int

    def __repr__(self) -> str:  # never show the token
        return f"TelegramConfig(base_url={self.base_url!r}, chats={self.chat_ids}, webhook={bool(self.webhook_url)})"

    @classmethod
    def from_settings(cls, settings: Settings) -> TelegramConfig:
        return cls(
            token=settings.telegram_bot_token.get_secret_value(),
            base_url=settings.telegram_base_url or DEFAULT_BASE_URL,
            chat_ids=settings.telegram_allowed_chat_ids,
            user_ids=settings.telegram_allowed_user_ids,
            webhook_url=settings.telegram_webhook_url,
            port=settings.port,
        )

    @property
    def file_base_url(self) -> str:
        head, sep, tail = self.base_url.rpartition("/bot")
        return f"{head}/file/bot{tail}" if sep else self.base_url

    @property
    def webhook_secret(self) -> str:
        """Telegram sends it back in a header, so requests that do not come from it are refused."""
        return hashlib.sha256(f"tradebot-webhook:{self.token}".encode()).hexdigest()[:48]


async def run_telegram(app: App, stop: asyncio.Event) -> None:
    await TelegramFrontEnd(app, TelegramConfig.from_settings(app.settings)).run(stop)


class TelegramFrontEnd:
    def __init__(
        self,
        app: App,
        config: TelegramConfig,
        *,
        poll_timeout: float = 10.0,
        alert_poll_seconds: float = 5.0,
        limiter: RateLimiter | None = None,
        reconnect: RetryPolicy = CONNECT,
    ) -> None:
        # httpx logs every request URL, which contains the token, at INFO.
        logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLogger("httpx").level))
        self.app = app
        self.config = config
        self.poll_timeout = poll_timeout
        self.reconnect = reconnect
        if not config.chat_ids:
            log.warning(
                "TELEGRAM_ALLOWED_CHAT_IDS is empty: the bot answers nobody and sends no alerts. "
                "Send it /start: the refusal in this log shows your chat id."
            )
        self.allow_list = AllowList(config.chat_ids, config.user_ids)
        self.limiter = limiter or RateLimiter()
        self.dispatcher = AlertDispatcher(
            app.service, config.chat_ids, self.limiter, poll_seconds=alert_poll_seconds, retry=reconnect
        )
        for command in [*chart_commands(ChartData.from_app(app)), alerts_command(app.service)]:
            app.router.add(command)
        self.handlers = Handlers(app.router, app.service, self.allow_list, self.limiter)
        self.application = self._build()
        self.handlers.register(self.application)
        self.dispatcher.bot = self.application.bot
        app.service.feed.watch(self.dispatcher.notify)
        self.connected = asyncio.Event()
        self.disabled: str | None = None  # why Telegram was turned off (a refused token...), if it was
        self._initialized = False
        self._last_poll_warning = 0.0
        self._warm_up: asyncio.Future[None] | None = None
        self._webhook_path = ""  # set when the web server receives the updates

    def _build(self) -> Application:
        return (
            ApplicationBuilder()
            .token(self.config.token)
            .base_url(self.config.base_url)
            .base_file_url(self.config.file_base_url)
            .job_queue(None)
            .concurrent_updates(PerChatUpdateProcessor())
            .connect_timeout(5.0)
            .read_timeout(15.0)
            .write_timeout(30.0)
            .pool_timeout(10.0)
            .build()
        )

    async def run(self, stop: asyncio.Event) -> None:
        loop_tasks = [asyncio.create_task(self.dispatcher.run(stop, self.connected), name="telegram-alerts")]
        connect = asyncio.create_task(self._connect(stop), name="telegram-connect")
        try:
            await wait_any(stop)
        finally:
            # The runner may cancel this task while it says goodbye: finish the (time-bounded)
            # clean-up anyway, so fetched updates are acknowledged and the outbox is flushed.
            cleanup = asyncio.ensure_future(self._close(connect, loop_tasks))
            cancelled = False
            while not cleanup.done():
                try:
                    await asyncio.shield(cleanup)
                except asyncio.CancelledError:
                    cancelled = True
            if cancelled:
                raise asyncio.CancelledError

    async def _close(self, connect: asyncio.Task[None], loop_tasks: list[asyncio.Task[None]]) -> None:
        connect.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await connect
        if self.connected.is_set():
            await self._flush()  # waits for a delivery in progress (one at a time), then sends the rest
        for task in loop_tasks:
            task.cancel()
        await asyncio.gather(*loop_tasks, return_exceptions=True)
        await self._shutdown()

    async def _connect(self, stop: asyncio.Event) -> None:
        """Bring the application up, retrying with backoff (``self.reconnect``) until it works or ``stop``."""
        failures = 0
        while not stop.is_set():
            try:
                if not self._initialized:
                    await self.application.initialize()  # getMe: checks the token
                    self._initialized = True
                    await self._publish_menu()
                if not self.application.running:
                    await self.application.start()
                if not self.application.updater.running:  # type: ignore[union-attr]
                    await self._start_updates()
                log.info(
                    "Telegram connected as @%s (%s)",
                    self.application.bot.username,
                    "webhook" if self.config.webhook_url else "long polling",
                )
                self.connected.set()
                self._warm_up = asyncio.ensure_future(asyncio.to_thread(charts.warm_up))
                return
            except InvalidToken:
                self.disabled = "Telegram refused the bot token: check TELEGRAM_BOT_TOKEN"
                log.error("%s. Telegram is off; trading continues.", self.disabled)
                return
            except RetryAfter as exc:
                wait = max(retry_after_seconds(exc), self.reconnect.backoff(1))
                log.warning("Telegram asked to wait %.0f s before connecting", wait)
                await wait_any(stop, timeout=wait)
            except (TelegramError, OSError) as exc:
                failures += 1
                delay = self.reconnect.backoff(failures)
                log.warning(
                    "Telegram unreachable (%s: %s); retrying in %.0f s. Trading continues.",
                    type(exc).__name__,
                    exc,
                    delay,
                )
                await wait_any(stop, timeout=delay)
            except RuntimeError as exc:  # e.g. webhook mode without the webhooks extra
                self.disabled = f"Telegram cannot start: {exc}"
                log.error("%s. Telegram is off; trading continues.", self.disabled)
                return

    async def _publish_menu(self) -> None:
        commands = [BotCommand(name, summary[:256]) for name, summary in self.app.router.menu()]
        try:
            await self.application.bot.set_my_commands(commands)
        except TelegramError as exc:  # a missing menu is no reason to stay offline
            log.warning("could not publish the command menu: %s", exc)

    async def _start_updates(self) -> None:
        updater = self.application.updater
        assert updater is not None
        if not self.config.webhook_url:
            await updater.start_polling(
                timeout=max(1, int(self.poll_timeout)),
                allowed_updates=ALLOWED_UPDATES,
                drop_pending_updates=False,  # stale state-changing commands are refused instead
                error_callback=self._polling_error,
            )
            return
        path = urlsplit(self.config.webhook_url).path.strip("/") or "telegram"
        if self.app.web is not None:  # `tradebot run`'s web server takes the updates on its port
            await self.application.bot.set_webhook(
                url=self.config.webhook_url,
                secret_token=self.config.webhook_secret,
                allowed_updates=ALLOWED_UPDATES,
                drop_pending_updates=False,
            )
            self.app.web.add_webhook(path, self._on_webhook, self.config.webhook_secret)
            self._webhook_path = path
            return
        await updater.start_webhook(
            listen="0.0.0.0",
            port=self.config.port,
            url_path=path,
            webhook_url=self.config.webhook_url,
            secret_token=self.config.webhook_secret,
            allowed_updates=ALLOWED_UPDATES,
            drop_pending_updates=False,
        )

    async def _on_webhook(self, body: bytes, headers: dict[str, str]) -> int:
        """An update POSTed by Telegram to the web server (python-telegram-bot's customwebhookbot way)."""
        given = headers.get("x-telegram-bot-api-secret-token", "")
        if not hmac.compare_digest(given.encode(), self.config.webhook_secret.encode()):
            return 403  # only Telegram knows the secret
        try:
            update = Update.de_json(json.loads(body), self.application.bot)
        except (ValueError, TypeError, KeyError):
            return 400
        await self.application.update_queue.put(update)
        return 200

    def _polling_error(self, exc: TelegramError) -> None:
        now = time.monotonic()
        if now - self._last_poll_warning >= 60:  # one line a minute during an outage, not a traceback per try
            self._last_poll_warning = now
            log.warning("Telegram unreachable while polling (%s: %s); retrying", type(exc).__name__, exc)

    async def _flush(self) -> None:
        """Deliver what is still in the outbox before going (bounded: never delays the exit much)."""
        try:
            async with asyncio.timeout(3):
                await self.dispatcher.deliver()
        except Exception as exc:
            log.info("alerts left in the outbox for the next start: %s", type(exc).__name__)

    async def _shutdown(self) -> None:
        application = self.application
        if self._webhook_path and self.app.web is not None:
            self.app.web.remove_webhook(self._webhook_path)
        try:
            async with asyncio.timeout(SHUTDOWN_SECONDS):
                if application.updater is not None and application.updater.running:
                    await application.updater.stop()
                if application.running:
                    await application.stop()
                if self._initialized:
                    await application.shutdown()
        except Exception as exc:
            log.warning("Telegram did not shut down cleanly: %s: %s", type(exc).__name__, exc)
