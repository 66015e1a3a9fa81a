"""Event feed cursors: how far each persistent consumer (a Telegram chat) has read the events."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, select

from storage.models import FeedCursorRow
from storage.repository._times import utc


def get_cursor(session: Session, consumer: str) -> int | None:
    row = session.get(FeedCursorRow, consumer)
    return None if row is None else row.event_id


def list_cursors(session: Session, prefix: str = "") -> dict[str, int]:
    query = select(FeedCursorRow)
    if prefix:
        query = query.where(col(FeedCursorRow.consumer).startswith(prefix))
    return {row.consumer: row.event_id for row in session.exec(query)}


def advance_cursor(session: Session, consumer: str, event_id: int, now: datetime) -> bool:
    """Move ``consumer``'s cursor forward to ``event_id``; never back. True if it moved."""
    row = session.get(FeedCursorRow, consumer)
    if row is None:
        session.add(FeedCursorRow(consumer=consumer, event_id=event_id, updated_at=utc(now)))
        return True
    if row.event_id >= event_id:
        return False
    row.event_id = event_id
    row.updated_at = utc(now)
    session.add(row)
    return True
