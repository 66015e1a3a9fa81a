"""The event log: every event is recorded in the ``events`` table, then published.

Strategy signals are kept beside it (the ``signals`` table), each with its outcome.

The table is the audit log and the outbox every transport delivers from (see ``bot/feed.py``);
the notifier only wakes listeners up. A listener that was not running reads what it missed
from the table.
"""

from __future__ import annotations

import logging
from typing import Any

from bot.clock import Clock
from bot.domain import Event, EventKind, Severity, Signal
from bot.logs import ALERT
from bot.notify import Notifier
from bot.views import SignalRecord
from storage import repository as repo
from storage.db import Database

log = logging.getLogger(__name__)

_LEVEL = {Severity.INFO: logging.INFO, Severity.WARNING: logging.WARNING, Severity.ERROR: logging.ERROR}


class EventLog:
    def __init__(self, db: Database, clock: Clock, notifier: Notifier) -> None:
        self.db = db
        self.clock = clock
        self.notifier = notifier

    def record(
        self,
        kind: EventKind,
        message: str,
        *,
        severity: Severity = Severity.INFO,
        symbol: str | None = None,
        **data: Any,
    ) -> Event:
        """Store the event (it gets its id), log it, then publish it to the listeners."""
        event = Event(
            kind=kind, message=message, time=self.clock.now(), severity=severity, symbol=symbol, data=data
        )
        with self.db.session() as s:
            event = repo.add_event(s, event)
        log.log(_LEVEL[severity], "%s: %s", kind.value, message, extra=ALERT)  # the console shows it once
        self.notifier.publish(event)
        return event

    def record_signal(self, signal: Signal, outcome: str) -> None:
        """Every strategy signal is kept with what became of it (placed, blocked: why, duplicate...)."""
        with self.db.session() as s:
            repo.add_signal(s, signal, outcome, self.clock.now())

    def recent_signals(self, limit: int = 100) -> list[SignalRecord]:
        """The newest ``limit`` signals with their outcomes, newest first."""
        with self.db.session() as s:
            return repo.recent_signals(s, limit)

    def recent(
        self, limit: int = 20, kind: EventKind | None = None, before: int | None = None
    ) -> list[Event]:
        """The newest ``limit`` events (older than id ``before``), newest first."""
        with self.db.session() as s:
            return repo.recent_events(s, limit, kind=kind, before=before)

    def after(self, event_id: int, limit: int = 200) -> list[Event]:
        """Events with an id above ``event_id``, oldest first."""
        with self.db.session() as s:
            return repo.events_after(s, event_id, limit)
