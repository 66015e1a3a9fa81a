"""Alerts: the events table (the outbox) delivered to the allowed chats, and the daily summary.

The service writes every event to the database before it publishes it, so the database is the
outbox. ``AlertDispatcher`` keeps, per chat, the id of the last event delivered there (in the
settings table) and sends what follows it: woken at once by the notifier, and every few
seconds anyway (events from other processes, such as ``tradebot tick``). A chat's cursor moves
only after Telegram accepted the message, so an alert raised while Telegram is unreachable, or
just before a crash, is sent once Telegram answers again. Bursts are batched into one message
(up to 4,096 characters) per chat, within Telegram's limits (``sending.RateLimiter``).

Delivery is exactly once except in one window no client can close: if Telegram accepted a
message but the answer never arrived (a timeout), or the process died between the answer and
saving the cursor, that batch is sent again. Losing an alert would be worse than a duplicate.

Which kinds are sent is set per group (``GROUPS``) by the TELEGRAM_ALERT_* variables and
changed at run time with ``/alerts NAME on|off`` (stored in the settings table).
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from telegram import Bot
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError

from bot import formatting as fmt
from bot.commands import Caller, Command, Reply, UsageError
from bot.config import Settings
from bot.domain import Event, EventKind
from bot.service import TradingService
from bot.telegram.sending import MAX_TEXT, RateLimiter, with_retry
from storage import repository as repo
from storage.db import Database

log = logging.getLogger(__name__)

K = EventKind
# group -> (what it covers, event kinds). Kinds in no group are always sent.
GROUPS: dict[str, tuple[str, frozenset[EventKind]]] = {
    "orders": ("order placed or canceled", frozenset({K.ORDER_PLACED, K.ORDER_CANCELED})),
    "fills": ("order filled", frozenset({K.ORDER_FILLED})),
    "rejections": ("order rejected, entry blocked by risk", frozenset({K.ORDER_REJECTED, K.RISK_BLOCKED})),
    "stops": ("stop-loss or take-profit hit", frozenset({K.STOP_HIT, K.TARGET_HIT})),
    "errors": (
        "strategy, broker and reconciliation problems",
        frozenset({K.STRATEGY_ERROR, K.BROKER_ERROR, K.RECONCILE_DIFF}),
    ),
    "data": ("market data outage and recovery", frozenset({K.DATA_OUTAGE, K.DATA_RECOVERED})),
    "state": (
        "start, stop, pause, resume, risk changes",
        frozenset({K.STARTED, K.STOPPED, K.PAUSED, K.RESUMED, K.RISK_CHANGED, K.INFO}),
    ),
    "security": ("refused users", frozenset({K.UNAUTHORIZED})),
    "daily": ("daily summary", frozenset({K.DAILY_SUMMARY})),
}
_GROUP_OF = {kind: group for group, (_, kinds) in GROUPS.items() for kind in kinds}

CURSORS_KEY = "telegram.alert_cursors"
PREFS_KEY = "telegram.alerts"
SUMMARY_KEY = "telegram.daily_summary_last"


# ---------------------------------------------------------------------- which alerts


class AlertPrefs:
    """Alert groups on or off: TELEGRAM_ALERT_* defaults, overridden by ``/alerts`` (persisted)."""

    def __init__(self, db: Database, defaults: dict[str, bool]) -> None:
        self.db = db
        self.defaults = {group: defaults.get(group, True) for group in GROUPS}
        with db.session() as s:
            stored = repo.get_setting(s, PREFS_KEY, {})
        self._current = {**self.defaults, **{k: bool(v) for k, v in stored.items() if k in GROUPS}}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, db: Database, settings: Settings, summary_enabled: bool = True) -> AlertPrefs:
        defaults = {
            group: bool(settings.values.get(f"TELEGRAM_ALERT_{group.upper()}", True))
            for group in GROUPS
            if group != "daily"
        }
        defaults["daily"] = summary_enabled
        return cls(db, defaults)

    def current(self) -> dict[str, bool]:
        return dict(self._current)

    def allows(self, kind: EventKind) -> bool:
        group = _GROUP_OF.get(kind)
        return group is None or self._current.get(group, True)

    def set(self, groups: Iterable[str], on: bool) -> None:
        with self._lock:
            current = dict(self._current)
            current.update(dict.fromkeys(groups, on))
            with self.db.session() as s:
                repo.set_setting(s, PREFS_KEY, current)
            self._current = current


def alerts_command(prefs: AlertPrefs) -> Command:
    """/alerts: show the alert groups; /alerts NAME on|off (or all on|off) changes one."""

    def handle(args: list[str], caller: Caller) -> Reply:
        if not args:
            current = prefs.current()
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
        prefs.set(GROUPS if name == "all" else [name], on)
        return Reply(f"Alerts for {'every group' if name == 'all' else name} now {'on' if on else 'off'}.")

    return Command(
        "alerts", "Show or switch alert kinds", "/alerts [NAME on|off]", handle, changes_state=True
    )


# ---------------------------------------------------------------------- the outbox


class Outbox:
    """The events table read as an outbox, with one delivery cursor per chat (settings table)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._lock = threading.Lock()
        with db.session() as s:
            started = repo.recent_events(s, 1, kind=EventKind.STARTED)
            newest = repo.recent_events(s, 1)
        # A chat that never had alerts starts with this run (its "started" event), not with
        # the whole history of the database.
        if started and started[0].id is not None:
            self.first_id = started[0].id - 1
        else:
            self.first_id = newest[0].id if newest and newest[0].id is not None else 0

    def cursors(self) -> dict[int, int]:
        with self.db.session() as s:
            stored = repo.get_setting(s, CURSORS_KEY, {})
        return {int(chat): int(last) for chat, last in stored.items()}

    def cursor(self, chat_id: int) -> int:
        return self.cursors().get(chat_id, self.first_id)

    def pending(self, after_id: int, limit: int = 200) -> list[Event]:
        with self.db.session() as s:
            return repo.events_after(s, after_id, limit)

    def advance(self, chat_id: int, event_id: int) -> None:
        with self._lock, self.db.session() as s:
            stored = repo.get_setting(s, CURSORS_KEY, {})
            if int(stored.get(str(chat_id), -1)) < event_id:
                stored[str(chat_id)] = event_id
                repo.set_setting(s, CURSORS_KEY, stored)


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
    """Telegram did not answer; the alert stays in the outbox for the next round."""


class AlertDispatcher:
    def __init__(
        self,
        outbox: Outbox,
        prefs: AlertPrefs,
        chat_ids: Iterable[int],
        limiter: RateLimiter,
        *,
        batch_seconds: float = 0.3,
        poll_seconds: float = 5.0,
        blocked_retry_seconds: float = 300.0,
    ) -> None:
        self.outbox = outbox
        self.prefs = prefs
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
        self._delay = 0.0
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
            try:
                await self.deliver()
                self._delay = 0.0
            except _Unreachable as exc:
                self._delay = min(max(self._delay * 2, 1.0), 60.0)
                log.warning("alerts not delivered (%s); retrying in %.0f s", exc, self._delay)
            except Exception:
                self._delay = min(max(self._delay * 2, 1.0), 60.0)
                log.exception("alert delivery failed; retrying in %.0f s", self._delay)
            if self._delay:
                await wait_any(stop, timeout=self._delay)
                continue
            if await wait_any(self._wake, stop, timeout=self.poll_seconds) and not stop.is_set():
                await asyncio.sleep(self.batch_seconds)  # let a burst gather into one message
            self._wake.clear()

    async def deliver(self) -> int:
        """Send everything pending to every chat; returns the number of messages sent."""
        async with self._delivering:
            cursors = await asyncio.to_thread(self.outbox.cursors)
            results = await asyncio.gather(
                *(
                    self._deliver_chat(chat, cursors.get(chat, self.outbox.first_id))
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
            events = await asyncio.to_thread(self.outbox.pending, cursor)
            if not events:
                return sent
            for text, last_id in batches(events, self.prefs.allows):
                await self.limiter.acquire(chat_id)
                if not await self._send(chat_id, text):
                    return sent
                sent += 1
                self.sent += 1
                cursor = last_id
                await asyncio.to_thread(self.outbox.advance, chat_id, cursor)
            last = events[-1].id or cursor
            if last > cursor:  # the tail was skipped (alert group off)
                cursor = last
                await asyncio.to_thread(self.outbox.advance, chat_id, cursor)

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
            "chat %s does not take messages (%s): its alerts wait in the outbox; next try in %.0f s",
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


# ---------------------------------------------------------------------- the daily summary

_TIME_RE = re.compile(r"^\s*(\d{1,2}):(\d{2})(?:\s+(\S+))?\s*$")


@dataclass(frozen=True, slots=True)
class SummaryTime:
    at: time
    zone: ZoneInfo | None  # None: UTC

    def next_after(self, now: datetime) -> datetime:
        tz = self.zone or UTC
        local = now.astimezone(tz)
        candidate = datetime.combine(local.date(), self.at, tzinfo=tz)
        if candidate <= local:
            candidate = datetime.combine(local.date() + timedelta(days=1), self.at, tzinfo=tz)
        return candidate.astimezone(UTC)

    def day_of(self, moment: datetime) -> date:
        return moment.astimezone(self.zone or UTC).date()


def parse_summary_time(text: str) -> SummaryTime | None:
    """``"21:00"`` (UTC), ``"16:15 America/New_York"``; ``""``/``"off"``: no summary."""
    if text.strip().lower() in {"", "off", "none", "false", "no"}:
        return None
    match = _TIME_RE.match(text)
    if not match or int(match.group(1)) > 23 or int(match.group(2)) > 59:
        raise ValueError(
            f"DAILY_SUMMARY_TIME={text!r}: write HH:MM, optionally a time zone (16:15 America/New_York)"
        )
    zone = None
    if match.group(3) and match.group(3).upper() != "UTC":
        try:
            zone = ZoneInfo(match.group(3))
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"DAILY_SUMMARY_TIME={text!r}: unknown time zone {match.group(3)!r}") from None
    return SummaryTime(time(int(match.group(1)), int(match.group(2))), zone)


class DailySummary:
    """Emits one DAILY_SUMMARY event a day at ``when`` (wall-clock time); the outbox delivers it."""

    def __init__(
        self,
        service: TradingService,
        db: Database,
        when: SummaryTime,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.service = service
        self.db = db
        self.when = when
        self._now = now

    def text(self, day: date) -> str:
        status = self.service.status()
        lines = [
            f"Daily summary {day.isoformat()} ({fmt.MODE_TEXT.get(status.mode, status.mode)})",
            f"State: {status.trading_state}; {status.positions} open positions, {status.open_orders} open orders",
            fmt.pnl(self.service.pnl()),
        ]
        if status.data_problems:
            lines.append(f"Data problems: {', '.join(sorted(status.data_problems))}")
        return "\n".join(lines)

    def send(self, day: date) -> bool:
        """Emit the summary for ``day`` unless it was already emitted (restart, second process)."""
        with self.db.session() as s:
            if repo.get_setting(s, SUMMARY_KEY) == day.isoformat():
                return False
        self.service.emit(EventKind.DAILY_SUMMARY, self.text(day))
        with self.db.session() as s:
            repo.set_setting(s, SUMMARY_KEY, day.isoformat())
        return True

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            due = self.when.next_after(self._now())
            wait = max(0.0, (due - self._now()).total_seconds())
            if await wait_any(stop, timeout=wait):
                return
            try:
                await asyncio.to_thread(self.send, self.when.day_of(due))
            except Exception:
                log.exception("daily summary failed")
            await asyncio.sleep(1)  # never twice for the same minute
