"""Alerts: the event feed delivered to the allowed chats, one persistent cursor per chat.

The service records every event before it publishes it (``bot/service/feed.py``).
``AlertDispatcher`` keeps, per chat, the id of the last event delivered there (the feed cursor
``telegram:<chat id>``) and sends what follows it: woken at once when this process records an
event, and every few seconds anyway (events from other processes, such as ``tradebot tick``).
A chat's cursor moves only after Telegram accepted the message, so an alert raised while
Telegram is unreachable, or just before a crash, is sent once Telegram answers again. Bursts
are batched into one message (up to 4,096 characters) per chat, within Telegram's limits
(``sending.RateLimiter``).

Delivery is exactly once except in one window no client can close: if Telegram accepted a
message but the answer never arrived (a timeout), or the process died between the answer and
saving the cursor, that batch is sent again. Losing an alert would be worse than a duplicate.

Which kinds are sent is set per group (``bot/service/alerts.py``) by the TELEGRAM_ALERT_*
variables and changed at run time with ``/alerts NAME on|off``. Nothing here reads the
database: the feed, the cursors and the preferences all come through the service.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from telegram import Bot
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError

from bot import formatting as fmt
from bot.commands import Caller, Command, Reply, UsageError
from bot.domain import Event, EventKind
from bot.retry import RetryPolicy
from bot.service import TradingService
from bot.service.alerts import GROUPS
from bot.telegram.sending import CONNECT, MAX_TEXT, RateLimiter, with_retry

log = logging.getLogger(__name__)

CURSOR_PREFIX = "telegram:"


def alerts_command(service: TradingService) -> Command:
    """/alerts: show the alert groups; /alerts NAME on|off (or all on|off) changes one."""

    def handle(args: list[str], caller: Caller) -> Reply:
        if not args:
            current = service.alert_groups()
            lines = ["Alerts (change with /alerts NAME on|off, or /alerts all on|off):"]
            lines += [
                f"  {group}: {'on' if current[group] else 'off'} - {about}"
                for group, (about, _) in GROUPS.items()
            ]
            return Reply("\n".join(lines))
        if len(args) != 2 or args[1].lower() not in {"on", "off"}:
            raise UsageError(f"Names: all, {', '.join(GROUPS)}")
        name, on = args[0].lower(), args[1].lower() == "on"
        if name != "all" and name not in GROUPS:
            raise UsageError(f"Unknown alert group {name!r}. Names: all, {', '.join(GROUPS)}")
        service.set_alert_groups(GROUPS if name == "all" else [name], on)
        return Reply(f"Alerts for {'every group' if name == 'all' else name} now {'on' if on else 'off'}.")

    return Command(
        "alerts", "Show or switch alert kinds", "/alerts [NAME on|off]", handle, changes_state=True
    )


# ---------------------------------------------------------------------- delivery


def batches(
    events: list[Event], allows: Callable[[EventKind], bool], limit: int = MAX_TEXT
) -> list[tuple[str, int]]:
    """(text, id of the last event it covers) per message; events not allowed are skipped."""
    out: list[tuple[str, int]] = []
    lines: list[str] = []
    size = last = 0
    for event in events:
        if not allows(event.kind):
            continue
        text = fmt.alert(event)[:limit]
        if lines and size + 1 + len(text) > limit:
            out.append(("\n".join(lines), last))
            lines, size = [], 0
        lines.append(text)
        size += len(text) + (1 if size else 0)
        last = event.id or 0
    if lines:
        out.append(("\n".join(lines), last))
    return out


class _Unreachable(Exception):
    """Telegram did not answer; the alert stays in the feed for the next round."""


class AlertDispatcher:
    def __init__(
        self,
        service: TradingService,
        chat_ids: Iterable[int],
        limiter: RateLimiter,
        *,
        batch_seconds: float = 0.3,
        poll_seconds: float = 5.0,
        blocked_retry_seconds: float = 300.0,
        retry: RetryPolicy = CONNECT,
    ) -> None:
        self.service = service
        self.feed = service.feed
        self._start_id: int | None = None  # where a chat without a cursor starts (this run)
        self.chat_ids = tuple(dict.fromkeys(chat_ids))
        self.limiter = limiter
        self.batch_seconds = batch_seconds
        self.poll_seconds = poll_seconds
        self.blocked_retry_seconds = blocked_retry_seconds
        self.bot: Bot | None = None
        self.sent = 0
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._blocked_until: dict[int, float] = {}
        self.retry = retry
        self._failures = 0  # delivery rounds failed in a row
        self._delivering = asyncio.Lock()  # one delivery at a time, or two could read the same cursor

    def notify(self, event: Event) -> None:
        """Notifier listener (called from worker threads): wake the delivery loop."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake.set)

    async def run(self, stop: asyncio.Event, ready: asyncio.Event) -> None:
        """Deliver until ``stop``; starts once ``ready`` (Telegram answered) is set."""
        self._loop = asyncio.get_running_loop()
        if not await wait_any(ready, stop):
            return
        while not stop.is_set():
            delay = 0.0
            try:
                await self.deliver()
                self._failures = 0
            except _Unreachable as exc:
                self._failures += 1
                delay = self.retry.backoff(self._failures)
                log.warning("alerts not delivered (%s); retrying in %.0f s", exc, delay)
            except Exception:
                self._failures += 1
                delay = self.retry.backoff(self._failures)
                log.exception("alert delivery failed; retrying in %.0f s", delay)
            if delay:
                await wait_any(stop, timeout=delay)
                continue
            if await wait_any(self._wake, stop, timeout=self.poll_seconds) and not stop.is_set():
                await asyncio.sleep(self.batch_seconds)  # let a burst gather into one message
            self._wake.clear()

    async def deliver(self) -> int:
        """Send everything pending to every chat; returns the number of messages sent."""
        async with self._delivering:
            if self._start_id is None:
                self._start_id = await asyncio.to_thread(self.feed.start_id)
            cursors = await asyncio.to_thread(self.feed.cursors, CURSOR_PREFIX)
            results = await asyncio.gather(
                *(
                    self._deliver_chat(chat, cursors.get(f"{CURSOR_PREFIX}{chat}", self._start_id))
                    for chat in self.chat_ids
                ),
                return_exceptions=True,
            )
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return sum(r for r in results if isinstance(r, int))

    async def _deliver_chat(self, chat_id: int, cursor: int) -> int:
        loop = asyncio.get_running_loop()
        if self._blocked_until.get(chat_id, 0.0) > loop.time():
            return 0
        sent = 0
        while True:
            events = await asyncio.to_thread(self.feed.after, cursor)
            if not events:
                return sent
            for text, last_id in batches(events, self.service.alert_allowed):
                await self.limiter.acquire(chat_id)
                if not await self._send(chat_id, text):
                    return sent
                sent += 1
                self.sent += 1
                cursor = last_id
                await asyncio.to_thread(self.feed.advance, f"{CURSOR_PREFIX}{chat_id}", cursor)
            last = events[-1].id or cursor
            if last > cursor:  # the tail was skipped (alert group off)
                cursor = last
                await asyncio.to_thread(self.feed.advance, f"{CURSOR_PREFIX}{chat_id}", cursor)

    async def _send(self, chat_id: int, text: str) -> bool:
        """True once Telegram accepted it; False if this chat cannot take messages now."""
        bot = self.bot
        if bot is None:
            raise _Unreachable("not connected")
        try:
            await with_retry(lambda: bot.send_message(chat_id, text), f"alert to chat {chat_id}")
        except Forbidden as exc:
            return self._block(chat_id, exc)
        except BadRequest as exc:
            if "chat not found" in str(exc).lower():
                return self._block(chat_id, exc)
            raise
        except (NetworkError, RetryAfter) as exc:
            raise _Unreachable(f"{type(exc).__name__}: {exc}") from None
        except TelegramError as exc:
            raise _Unreachable(f"{type(exc).__name__}: {exc}") from None
        return True

    def _block(self, chat_id: int, exc: Exception) -> bool:
        log.warning(
            "chat %s does not take messages (%s): its alerts wait in the feed; next try in %.0f s",
            chat_id,
            exc,
            self.blocked_retry_seconds,
        )
        self._blocked_until[chat_id] = asyncio.get_running_loop().time() + self.blocked_retry_seconds
        return False


async def wait_any(*events: asyncio.Event, timeout: float | None = None) -> bool:
    """Wait until one of ``events`` is set (True) or ``timeout`` passes (False)."""
    if any(e.is_set() for e in events):
        return True
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        done, _ = await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
    return bool(done)
