"""Fan-out of events to whoever listens, in the process that recorded them.

Events are stored by the service before they are published, so the database is the outbox:
a transport that was down delivers from there later (``bot/service/feed.py`` reads it).
Listeners are called in the thread that recorded the event; they must be quick and must not
raise (the feed's subscriptions only wake their event loop).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable

from bot.domain import Event

log = logging.getLogger(__name__)

Listener = Callable[[Event], None]


class Notifier:
    def __init__(self) -> None:
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def unsubscribe(self, listener: Listener) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    def publish(self, event: Event) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # one broken transport must not stop trading or the others
                log.exception("alert listener %r failed on %s", listener, event.kind)
