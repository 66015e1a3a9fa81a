"""``/api/v1/ws``: the event feed streamed to browsers and scripts as JSON messages.

Messages, one JSON object each:

* ``{"type": "hello", "last_id": N, "read_only": bool}`` first;
* ``{"type": "event", "event": {...}}`` for every recorded event (orders, fills, stops, targets,
  risk blocks, alerts, pause and resume...), the same shape as ``GET /api/v1/events``;
* ``{"type": "cycle", "cycle": {...}}`` after each engine cycle (prices and equity moved);
* ``{"type": "gap"}`` when events were missed (a long disconnection, a slow reader): reload.

A client that reconnects with ``?after=ID`` (the last event id it saw) first receives what it
missed. Events are published from the service's worker threads; the hub hands them to the event
loop and each client has a bounded queue, so a slow reader is dropped, never the engine slowed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from bot.domain import Event
from bot.views import TickReport
from bot.web.feed import EventFeed
from bot.web.schemas import EventOut

log = logging.getLogger(__name__)

QUEUE_SIZE = 1000
BACKLOG_LIMIT = 200
CLOSING = '{"type": "closing"}'


class Client:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[int | None, str]] = asyncio.Queue(QUEUE_SIZE)
        self.overflowed = False

    def put(self, event_id: int | None, message: str) -> None:
        try:
            self.queue.put_nowait((event_id, message))
        except asyncio.QueueFull:
            self.overflowed = True
            if message is CLOSING:
                self.queue.get_nowait()
                self.queue.put_nowait((event_id, message))


class LiveHub:
    def __init__(self, feed: EventFeed) -> None:
        self.feed = feed
        self.clients: set[Client] = set()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.last_id = 0

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.feed.subscribe(self._on_event)

    def close(self) -> None:
        """End every stream (at shutdown): each client gets a last message and is let go."""
        self.loop = None
        for client in list(self.clients):
            client.put(None, CLOSING)

    # ------------------------------------------------------------------ publishing (any thread)

    def _on_event(self, event: Event) -> None:
        message = json.dumps({"type": "event", "event": EventOut.of(event).model_dump(mode="json")})
        self._post(message, event.id)

    def cycle_finished(self, report: TickReport | None) -> None:
        """The runner calls this after each engine cycle."""
        if report is None:
            return
        body: dict[str, Any] = {
            "started": report.started.isoformat(),
            "finished": report.finished.isoformat(),
            "signals": report.signals,
            "orders": len(report.orders),
            "data_problems": len(report.data_problems),
            "strategy_errors": len(report.strategy_errors),
        }
        self._post(json.dumps({"type": "cycle", "cycle": body}), None)

    def _post(self, message: str, event_id: int | None) -> None:
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._broadcast(message, event_id)
        else:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody to tell
                loop.call_soon_threadsafe(self._broadcast, message, event_id)

    def _broadcast(self, message: str, event_id: int | None) -> None:
        if event_id is not None:
            self.last_id = max(self.last_id, event_id)
        for client in list(self.clients):
            client.put(event_id, message)

    # ------------------------------------------------------------------ one connection

    async def stream(self, send: Any, after: int | None, read_only: bool) -> None:
        """Send the backlog after ``after``, then everything new, until the client goes away.

        ``send``: an async function taking one text message.
        """
        client = Client()
        self.clients.add(client)  # from here on nothing new is missed
        try:
            events, gap = await asyncio.to_thread(self.feed.events_after, after, BACKLOG_LIMIT)
            seen = after or 0
            if events:
                seen = max(seen, max(e.id or 0 for e in events))
            self.last_id = max(self.last_id, seen)
            await send(json.dumps({"type": "hello", "last_id": seen, "read_only": read_only}))
            if gap:
                await send(json.dumps({"type": "gap"}))
            if after is not None:
                for event in events:
                    await send(
                        json.dumps({"type": "event", "event": EventOut.of(event).model_dump(mode="json")})
                    )
            while True:
                event_id, message = await client.queue.get()
                if client.overflowed:
                    log.info("a live client fell %d messages behind; asked it to reload", QUEUE_SIZE)
                    await send(json.dumps({"type": "gap"}))
                    return
                if event_id is not None and event_id <= seen:
                    continue  # already sent with the backlog
                await send(message)
                if message is CLOSING:
                    return
        finally:
            self.clients.discard(client)
