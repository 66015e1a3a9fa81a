"""Times as stored: aware UTC in, aware UTC out (some databases hand them back naive)."""

from __future__ import annotations

from datetime import UTC, datetime


def utc(when: datetime) -> datetime:
    """Aware UTC, as stored (a naive value is taken to be UTC already)."""
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def aware(when: datetime | None) -> datetime | None:
    """Rows read back from databases without time zones come naive: they hold UTC."""
    return None if when is None else utc(when)
