"""``/api/v1/ws``: the service's event feed streamed to browsers and scripts as JSON messages.

Messages, one JSON object each:

* ``{"type": "hello", "last_id": N, "read_only": bool}`` first;
* ``{"type": "event", "event": {...}}`` for every recorded event (orders, fills, stops, targets,
  risk blocks, alerts, pause and resume...), in id order, each once, the same shape as
  ``GET /api/v1/events``;
* ``{"type": "cycle", "cycle": {...}}`` after each engine cycle (prices and equity moved);
* ``{"type": "log", "last_seq": N}`` when new log lines were written (at most every
  ``LOG_NUDGE_SECONDS``): the log viewer then reads ``GET /api/v1/logs?after=``;
* ``{"type": "closing"}`` when the server shuts down (reconnect later).

A client that reconnects with ``?after=ID`` (the last event id it saw) first receives what it
missed: ``service.feed`` (``bot/service/feed.py``) replays from the table, then goes live, and
never drops an event. Cycle messages are not stored: a page simply refreshes on the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from bot.logs import RECENT, RecentLines
from bot.service.feed import EventFeed
from bot.views import TickReport
from bot.web.schemas import EventOut

log = logging.getLogger(__name__)

CYCLE_QUEUE = 16  # cycle messages a slow client may fall behind by; older ones are dropped
LOG_NUDGE_SECONDS = 0.5  # a client hears of new log lines at most this often
CLOSING = json.dumps({"type": "closing"})

Send = Callable[[str], Awaitable[None]]


class LiveHub:
    def __init__(self, feed: EventFeed, recent: RecentLines = RECENT) -> None:
        self.feed = feed
        self.recent = recent
        self.clients: set[asyncio.Queue[str]] = set()
        self.log_waiters: set[asyncio.Event] = set()
        self.loop: asyncio.AbstractEventLoop | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.recent.listeners.append(self._logged)

    def close(self) -> None:
        """End every stream (at shutdown): each client gets a last message and is let go."""
        self.loop = None
        with contextlib.suppress(ValueError):
            self.recent.listeners.remove(self._logged)
        for queue in list(self.clients):
            _put(queue, CLOSING)

    def _logged(self) -> None:
        """A log line was written (on any thread). Nothing here may log."""
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(self._wake_log_waiters)

    def _wake_log_waiters(self) -> None:
        for waiter in self.log_waiters:
            waiter.set()

    def cycle_finished(self, report: TickReport | None) -> None:
        """The runner calls this after each engine cycle (from any thread)."""
        loop = self.loop
        if report is None or loop is None or loop.is_closed():
            return
        body: dict[str, Any] = {
            "started": report.started.isoformat(),
            "finished": report.finished.isoformat(),
            "signals": report.signals,
            "orders": len(report.orders),
            "data_problems": len(report.data_problems),
            "strategy_errors": len(report.strategy_errors),
        }
        message = json.dumps({"type": "cycle", "cycle": body})
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody to tell
            loop.call_soon_threadsafe(self._broadcast, message)

    def _broadcast(self, message: str) -> None:
        for queue in list(self.clients):
            _put(queue, message)

    async def stream(self, send: Send, after: int | None, read_only: bool) -> None:
        """Replay the events after ``after`` (None: from now on), then stream new ones and cycle
        messages until the client goes away or the server closes."""
        start = after if after is not None else await asyncio.to_thread(self.feed.latest_id)
        cycles: asyncio.Queue[str] = asyncio.Queue(CYCLE_QUEUE)
        lock = asyncio.Lock()  # one frame at a time from the two senders below

        async def say(message: str) -> None:
            async with lock:
                await send(message)

        async def events() -> None:
            with self.feed.subscribe(start) as subscription:
                async for event in subscription:
                    await say(
                        json.dumps({"type": "event", "event": EventOut.of(event).model_dump(mode="json")})
                    )

        logged = asyncio.Event()

        async def logs() -> None:
            while True:
                await logged.wait()
                logged.clear()
                await say(json.dumps({"type": "log", "last_seq": self.recent.seq}))
                await asyncio.sleep(LOG_NUDGE_SECONDS)  # a burst of lines is one message

        async def others() -> None:
            while True:
                message = await cycles.get()
                await say(message)
                if message == CLOSING:
                    return

        self.clients.add(cycles)
        self.log_waiters.add(logged)
        tasks: list[asyncio.Task[None]] = []
        try:
            await say(json.dumps({"type": "hello", "last_id": start, "read_only": read_only}))
            tasks = [
                asyncio.create_task(events()),
                asyncio.create_task(others()),
                asyncio.create_task(logs()),
            ]
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # a send that failed: the client went away
        finally:
            self.clients.discard(cycles)
            self.log_waiters.discard(logged)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def _put(queue: asyncio.Queue[str], message: str) -> None:
    if queue.full():
        with contextlib.suppress(asyncio.QueueEmpty):
            queue.get_nowait()  # the oldest cycle message is the least useful
    queue.put_nowait(message)
