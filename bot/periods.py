"""Profit by day, week or month: what the dashboard's Profit page and ``GET /api/v1/profit`` show.

Realized profit, as FreqUI's daily, weekly and monthly tables count it: each closed trade counts in
the period its exit falls in (UTC days; ISO weeks, Monday to Sunday; calendar months). Pure
functions of the trades and the equity snapshots; ``Reports.profit`` reads them.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import NamedTuple

from bot.domain import Trade


class Period(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


@dataclass(frozen=True, slots=True)
class PeriodProfit:
    start: datetime  # the period's first instant, UTC
    end: datetime  # the next period's start
    label: str  # 2026-03-02, 2026-W10, 2026-03
    pnl: float  # realized: the P&L of the trades that exited in the period (after commission)
    trades: int
    wins: int  # trades with P&L above zero
    start_equity: float | None  # equity when the period began (see ``equity_at``); None before any

    @property
    def return_pct(self) -> float | None:
        """The realized profit as a percentage of the equity at the period's start."""
        return self.pnl / self.start_equity * 100 if self.start_equity else None


def period_start(when: datetime, period: Period) -> datetime:
    """The start (UTC) of the period ``when`` falls in."""
    day = when.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period is Period.WEEK:
        return day - timedelta(days=day.weekday())
    if period is Period.MONTH:
        return day.replace(day=1)
    return day


def next_start(start: datetime, period: Period) -> datetime:
    if period is Period.DAY:
        return start + timedelta(days=1)
    if period is Period.WEEK:
        return start + timedelta(weeks=1)
    return (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )


def previous_start(start: datetime, period: Period) -> datetime:
    if period is Period.DAY:
        return start - timedelta(days=1)
    if period is Period.WEEK:
        return start - timedelta(weeks=1)
    return (
        start.replace(year=start.year - 1, month=12)
        if start.month == 1
        else start.replace(month=start.month - 1)
    )


def label(start: datetime, period: Period) -> str:
    if period is Period.WEEK:
        year, week, _ = start.isocalendar()
        return f"{year}-W{week:02d}"
    if period is Period.MONTH:
        return start.strftime("%Y-%m")
    return start.strftime("%Y-%m-%d")


def starts(now: datetime, period: Period, count: int) -> list[datetime]:
    """The starts of the last ``count`` periods up to the one ``now`` is in, newest first."""
    out = [period_start(now, period)]
    while len(out) < count:
        out.append(previous_start(out[-1], period))
    return out


def equity_at(curve: Sequence[tuple[datetime, float]], start: datetime, end: datetime) -> float | None:
    """The equity when a period began, as the daily loss limit reads a day's start: the period's
    first snapshot; with none inside it, the last one before it; None before any snapshot."""
    times = [t for t, _ in curve]
    i = bisect.bisect_left(times, start)
    if i < len(curve) and curve[i][0] < end:
        return curve[i][1]
    return curve[i - 1][1] if i > 0 else None


def profit_by_period(
    trades: Sequence[Trade],
    curve: Sequence[tuple[datetime, float]],
    period: Period,
    now: datetime,
    count: int,
) -> list[PeriodProfit]:
    """The last ``count`` periods up to the current one, newest first, each with the trades that
    exited in it (periods without trades included, at zero). ``curve``: snapshots, oldest first."""
    out = []
    for start in starts(now, period, count):
        end = next_start(start, period)
        mine = [t.pnl for t in trades if start <= t.exit_time < end]
        out.append(
            PeriodProfit(
                start=start,
                end=end,
                label=label(start, period),
                pnl=sum(mine),
                trades=len(mine),
                wins=sum(1 for p in mine if p > 0),
                start_equity=equity_at(curve, start, end),
            )
        )
    return out


class DayTotal(NamedTuple):
    """The trades that exited on one UTC day (``day``: its midnight), added up."""

    day: datetime
    trades: int
    wins: int
    pnl: float


def profit_by_days(
    days: Sequence[DayTotal],
    curve: Sequence[tuple[datetime, float]],
    period: Period,
    now: datetime,
    count: int,
) -> list[PeriodProfit]:
    """``profit_by_period`` from per-day totals instead of every trade (the same figures: a
    period is whole UTC days). ``curve`` needs only each day's first and last snapshot."""
    out = []
    for start in starts(now, period, count):
        end = next_start(start, period)
        mine = [d for d in days if start <= d.day < end]
        out.append(
            PeriodProfit(
                start=start,
                end=end,
                label=label(start, period),
                pnl=sum(d.pnl for d in mine),
                trades=sum(d.trades for d in mine),
                wins=sum(d.wins for d in mine),
                start_equity=equity_at(curve, start, end),
            )
        )
    return out
