"""The event feed: every event the bot records, for every transport, in order and without gaps.

The ``events`` table is the audit log and the outbox. Each event has an increasing integer
``id``, handed out in commit order (``storage.repository.add_event``), so "the events after id N"
never skips one that committed late. A consumer only remembers the id of the last event it
handled: in the ``feed_cursors`` table (Telegram chats), or in memory (the console, a browser).

API. ``service.feed`` is the one instance; every method is thread-safe.

Reading (synchronous: from async code call it through ``asyncio.to_thread``)::

    feed.after(event_id, limit=200) -> list[Event]   # id > event_id, oldest first
    feed.latest_id() -> int                         # the newest id; 0 when there is none
    feed.start_id() -> int                          # where a consumer without a cursor starts:
                                                    # just before this run's STARTED event

Persistent cursors, for consumers that must resume across restarts (Telegram chats). Move a
cursor only after the events up to it were delivered: an alert is then never lost, at worst
sent again after a crash between delivery and ``advance``::

    feed.cursor("telegram:123456") -> int | None
    feed.cursors(prefix="telegram:") -> dict[str, int]
    feed.advance("telegram:123456", event_id)        # never moves back

Live, on an asyncio event loop (the console, a browser WebSocket); nothing is stored::

    sub = await feed.live(kinds=None)               # events from now on
    sub = feed.subscribe(after_id=41, kinds=None)    # replay id > 41 first, then live: resumable
    async for event in sub:                          # id order, each event once, no gaps
        send(event)                                  # e.g. {"id": event.id, ...} to the browser
    sub.last_id                                      # the resume point to hand the browser
    sub.close()                                      # or: with feed.subscribe(...) as sub:

A subscription is woken at once by the events of this process (through the notifier) and
reads the table every ``poll_seconds`` for those of other processes (``tradebot tick``). Live
events are handed over from memory when they follow on from the last one; otherwise (a gap, a
slow consumer whose queue overflowed) the subscription reads the table, so it never drops one.
``watch(listener)`` / ``unwatch(listener)`` register a plain callback instead (called in the
recording thread; it must be quick and must not raise).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import Iterable
from types import TracebackType

from bot.clock import Clock
from bot.domain import Event, EventKind
from bot.notify import Listener, Notifier
from storage import repository as repo
from storage.db import Database

BATCH = 200
MAX_QUEUE = 1000  # live events held for a slow consumer before it falls back to the table


class EventFeed:
    def __init__(self, db: Database, clock: Clock, notifier: Notifier, *, poll_seconds: float = 5.0) -> None:
        self.db = db
        self.clock = clock
        self.notifier = notifier
        self.poll_seconds = poll_seconds
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ reading

    def after(self, event_id: int, limit: int = BATCH) -> list[Event]:
        with self.db.session() as s:
            return repo.events_after(s, event_id, limit)

    def latest_id(self) -> int:
        with self.db.session() as s:
            return repo.latest_event_id(s)

    def start_id(self) -> int:
        """A consumer that never had a cursor starts with this run, not the database's whole history."""
        with self.db.session() as s:
            started = repo.recent_events(s, 1, kind=EventKind.STARTED)
            if started and started[0].id is not None:
                return started[0].id - 1
            return repo.latest_event_id(s)

    # ------------------------------------------------------------------ persistent cursors

    def cursor(self, consumer: str) -> int | None:
        with self.db.session() as s:
            return repo.get_cursor(s, consumer)

    def cursors(self, prefix: str = "") -> dict[str, int]:
        with self.db.session() as s:
            return repo.list_cursors(s, prefix)

    def advance(self, consumer: str, event_id: int) -> None:
        with self._lock, self.db.session() as s:
            repo.advance_cursor(s, consumer, event_id, self.clock.now())

    # ------------------------------------------------------------------ live

    def subscribe(self, after_id: int, *, kinds: Iterable[EventKind] | None = None) -> Subscription:
        """Events with an id above ``after_id``, then live ones. Call it on the consuming event loop."""
        return Subscription(self, after_id, kinds=kinds)

    async def live(self, *, kinds: Iterable[EventKind] | None = None) -> Subscription:
        """Events recorded from now on."""
        return self.subscribe(await asyncio.to_thread(self.latest_id), kinds=kinds)

    def watch(self, listener: Listener) -> None:
        self.notifier.subscribe(listener)

    def unwatch(self, listener: Listener) -> None:
        self.notifier.unsubscribe(listener)


class Subscription:
    """An async iterator over the feed from ``after_id`` on; see the module docstring."""

    def __init__(self, feed: EventFeed, after_id: int, *, kinds: Iterable[EventKind] | None = None) -> None:
        self.feed = feed
        self.last_id = after_id
        self.kinds = frozenset(kinds) if kinds is not None else None
        self._loop = asyncio.get_running_loop()
        self._ready: deque[Event] = deque()  # read or taken, in id order, not yet handed out
        self._live: deque[Event] = deque()  # published in this process, not yet looked at
        self._wake = asyncio.Event()
        self._closed = False
        feed.watch(self._published)

    # Called by the notifier in whatever thread recorded the event.
    def _published(self, event: Event) -> None:
        if not self._closed:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is listening
                self._loop.call_soon_threadsafe(self._push, event)

    def _push(self, event: Event) -> None:
        if len(self._live) >= MAX_QUEUE:
            self._live.clear()  # too slow: read the table instead
        self._live.append(event)
        self._wake.set()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        trust_live = False
        while not self._closed:
            event = self._next_ready()
            if event is not None:
                return event
            if self._take_live(trust_live):
                trust_live = False
                continue
            waiting = self._live[0].id if self._live else None  # not following on: read the table
            self._wake.clear()
            found = await asyncio.to_thread(self.feed.after, self.last_id, BATCH)
            if found:
                self._ready.extend(found)
                continue
            if waiting is not None:  # published, yet not in this table: hand it out rather than lose it
                trust_live = True
                continue
            if self._live:  # published while the table was read
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.feed.poll_seconds):
                    await self._wake.wait()
        raise StopAsyncIteration

    def _next_ready(self) -> Event | None:
        while self._ready:
            event = self._ready.popleft()
            if event.id is None or event.id <= self.last_id:
                continue
            self.last_id = event.id
            if self.kinds is None or event.kind in self.kinds:
                return event
        return None

    def _take_live(self, trust: bool) -> bool:
        """Move live events that follow on from ``last_id`` to the ready queue (any, if ``trust``)."""
        tail = self.last_id
        moved = False
        while self._live:
            event = self._live[0]
            if event.id is None or event.id <= tail:
                self._live.popleft()
                continue
            if event.id != tail + 1 and not trust:
                break  # something in between: read the table
            self._ready.append(self._live.popleft())
            tail = event.id
            moved = True
        return moved

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.feed.unwatch(self._published)
            self._wake.set()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


__all__ = ["EventFeed", "Subscription"]
