"""The events table: the audit log and the outbox every transport delivers from (ids in commit
order, so a feed reading "after id N" never skips one)."""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import text
from sqlmodel import Session, col, func, select

from bot.domain import Event, EventKind, Severity
from storage.models import EventRow
from storage.repository._times import aware, utc


def _event(row: EventRow) -> Event:
    return Event(
        kind=EventKind(row.kind),
        message=row.message,
        time=aware(row.time),  # type: ignore[arg-type]
        severity=Severity(row.severity),
        symbol=row.symbol,
        data=json.loads(row.data or "{}"),
        id=row.id,
    )


def add_event(session: Session, event: Event) -> Event:
    """Insert an event. Ids are handed out in commit order, so a feed reading "after id N" never
    skips an event that commits late: on Postgres (where sequence values are taken before commit)
    event writers queue on a transaction-scoped advisory lock; SQLite has one writer at a time."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(hashtext('tradebot-events'))"))
    row = EventRow(
        time=utc(event.time),
        kind=event.kind.value,
        severity=event.severity.value,
        symbol=event.symbol,
        message=event.message,
        data=json.dumps(event.data, default=str),
    )
    session.add(row)
    session.flush()
    return _event(row)


def events_after(session: Session, after_id: int, limit: int = 100) -> list[Event]:
    query = select(EventRow).where(col(EventRow.id) > after_id).order_by(col(EventRow.id)).limit(limit)
    return [_event(row) for row in session.exec(query)]


def recent_events(
    session: Session, limit: int = 20, kind: EventKind | None = None, before: int | None = None
) -> list[Event]:
    """The newest events (of one ``kind``; older than id ``before``), newest first: read through
    the primary key or ``(kind, id)``, whatever the log holds."""
    query = select(EventRow).order_by(col(EventRow.id).desc()).limit(limit)
    if kind is not None:
        query = query.where(EventRow.kind == kind.value)
    if before is not None:
        query = query.where(col(EventRow.id) < before)
    return [_event(row) for row in session.exec(query)]


def count_events(session: Session, kind: EventKind, since: datetime) -> int:
    query = (
        select(func.count())
        .select_from(EventRow)
        .where(EventRow.kind == kind.value, EventRow.time >= utc(since))
    )
    return session.exec(query).one()


def latest_event_id(session: Session) -> int:
    """The newest event's id (0: no events yet)."""
    return session.exec(select(func.max(EventRow.id))).one() or 0
