"""The event feed as the web layer sees it: a small interface, and the adapter in use today.

``EventFeed`` is all the WebSocket needs: the events recorded after an id (to resume a browser
that reconnects) and a call for each new one. Issue 11 moves the outbox and its per-consumer
cursors into the service; when that lands, an adapter over it replaces ``NotifierFeed`` here
and nothing else in ``bot/web`` changes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from bot.domain import Event
from bot.notify import Notifier
from bot.service import TradingService

BACKLOG_WINDOW = 500  # events the interim adapter can replay to a reconnecting browser


class EventFeed(Protocol):
    def events_after(self, after: int | None, limit: int = 100) -> tuple[list[Event], bool]:
        """Recorded events with an id above ``after`` (None: the latest), oldest first, at most
        ``limit``; and True when older ones in between were left out (the reader should reload)."""
        ...

    def subscribe(self, listener: Callable[[Event], None]) -> None:
        """Call ``listener`` with each event once it is recorded (from any thread; must be quick)."""
        ...


class NotifierFeed:
    """Today's adapter: the service's audit log for the backlog, its notifier for what is new."""

    def __init__(self, service: TradingService, notifier: Notifier) -> None:
        self.service = service
        self.notifier = notifier

    def events_after(self, after: int | None, limit: int = 100) -> tuple[list[Event], bool]:
        if after is None:
            return list(reversed(self.service.recent_events(limit))), False
        recent = self.service.recent_events(BACKLOG_WINDOW)
        newer = [e for e in reversed(recent) if e.id is not None and e.id > after]
        oldest = recent[-1].id if recent else None
        gap = len(recent) == BACKLOG_WINDOW and oldest is not None and oldest > after + 1
        if len(newer) > limit:
            newer, gap = newer[-limit:], True
        return newer, gap

    def subscribe(self, listener: Callable[[Event], None]) -> None:
        self.notifier.subscribe(listener)
