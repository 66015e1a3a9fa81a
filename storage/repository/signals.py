"""Strategy signals, each kept with what became of it."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, select

from bot.domain import Signal
from bot.views import SignalRecord
from storage.models import SignalRow
from storage.repository._times import aware, utc


def add_signal(session: Session, signal: Signal, outcome: str, now: datetime) -> None:
    session.add(
        SignalRow(
            strategy=signal.strategy,
            symbol=signal.symbol,
            side=signal.side.value,
            bar_time=utc(signal.bar_time),
            price=signal.price,
            reason=signal.reason,
            outcome=outcome,
            created_at=utc(now),
        )
    )


def recent_signals(session: Session, limit: int = 100) -> list[SignalRecord]:
    query = select(SignalRow).order_by(col(SignalRow.id).desc()).limit(limit)
    return [
        SignalRecord(
            strategy=row.strategy,
            symbol=row.symbol,
            side=row.side,
            bar_time=aware(row.bar_time),  # type: ignore[arg-type]
            price=row.price,
            outcome=row.outcome,
            created_at=aware(row.created_at),  # type: ignore[arg-type]
        )
        for row in session.exec(query)
    ]
