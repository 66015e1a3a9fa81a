"""Equity snapshots: the curve behind /pnl, /equity, drawdown and the daily loss limit."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, select

from storage.models import EquitySnapshotRow
from storage.repository import totals
from storage.repository._times import aware, utc


def add_equity_snapshot(session: Session, when: datetime, equity: float, cash: float) -> None:
    session.add(EquitySnapshotRow(time=utc(when), equity=equity, cash=cash))
    totals.count_snapshot(session, when, equity)  # same transaction: /pnl's running statistics
    totals.count_day(session, when, equity)  # and /equity's days


def equity_curve(session: Session, since: datetime | None = None) -> list[tuple[datetime, float]]:
    query = select(EquitySnapshotRow.time, EquitySnapshotRow.equity).order_by(col(EquitySnapshotRow.time))
    if since is not None:
        query = query.where(EquitySnapshotRow.time >= utc(since))
    return [(aware(t), e) for t, e in session.exec(query)]  # type: ignore[misc]


def newest_equity(session: Session, limit: int) -> list[tuple[datetime, float]]:
    """The newest ``limit`` snapshots, oldest first (through the time index)."""
    query = (
        select(EquitySnapshotRow.time, EquitySnapshotRow.equity)
        .order_by(col(EquitySnapshotRow.time).desc(), col(EquitySnapshotRow.id).desc())
        .limit(limit)
    )
    return [(utc(t), e) for t, e in reversed(session.exec(query).all())]


def first_equity_since(session: Session, since: datetime) -> float | None:
    query = (
        select(EquitySnapshotRow.equity)
        .where(EquitySnapshotRow.time >= utc(since))
        .order_by(col(EquitySnapshotRow.time))
        .limit(1)
    )
    return session.exec(query).first()


def last_equity_before(session: Session, before: datetime) -> float | None:
    query = (
        select(EquitySnapshotRow.equity)
        .where(EquitySnapshotRow.time < utc(before))
        .order_by(col(EquitySnapshotRow.time).desc())
        .limit(1)
    )
    return session.exec(query).first()
