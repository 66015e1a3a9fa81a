"""Running totals for /pnl: what the trades and the equity curve add up to, kept as they are booked.

``add_trade`` and ``add_equity_snapshot`` call ``count_trade`` and ``count_snapshot`` in the
same transaction as the row they write, so the totals and the rows commit together or not at all.
``verify`` recomputes both from the rows (one pass, at start) and rewrites whatever differs: the
totals can never drift from the books for longer than until the next start.

The equity statistics follow ``bot.metrics`` over the curve in time order: simple returns (a
return from an equity of 0 is skipped, as ``metrics.returns`` skips non-finite ones), their mean
and spread by Welford's method (stable over a year of snapshots), the sum of squared losses for
Sortino's downside deviation, and the drawdown from the running peak.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, text
from sqlmodel import Session, col, func, select

from storage.models import (
    EquityDayRow,
    EquitySnapshotRow,
    EquityTotalRow,
    TradeDayRow,
    TradeRow,
    TradeTotalRow,
)
from storage.repository._times import aware, utc

log = logging.getLogger(__name__)

TOTALS_TABLES = ("trade_totals", "trade_days", "equity_totals", "equity_days")
TOLERANCE = 1e-6  # relative: sums kept one trade at a time round differently from one SUM()


@dataclass(frozen=True, slots=True)
class StrategyTotals:
    strategy: str
    trades: int
    wins: int
    pnl: float


@dataclass(frozen=True, slots=True)
class EquityStats:
    """The equity curve's running statistics (see the module docstring)."""

    snapshots: int = 0
    first_time: datetime | None = None
    first_equity: float | None = None
    last_time: datetime | None = None
    last_equity: float | None = None
    peak: float | None = None
    max_drawdown_pct: float = 0.0
    returns: int = 0
    mean_return: float = 0.0
    m2_return: float = 0.0
    down2_return: float = 0.0

    def add(self, when: datetime, equity: float) -> EquityStats:
        """These statistics with one more point at the end of the curve."""
        peak = equity if self.peak is None or equity > self.peak else self.peak
        drawdown = (peak - equity) / peak * 100.0 if peak > 0 else 0.0
        n, mean, m2, down2 = self.returns, self.mean_return, self.m2_return, self.down2_return
        if self.last_equity is not None and self.last_equity != 0:
            r = (equity - self.last_equity) / self.last_equity
            if math.isfinite(r):
                n += 1
                delta = r - mean
                mean += delta / n
                m2 += delta * (r - mean)
                down2 += min(r, 0.0) ** 2
        first = self.first_equity is None
        return EquityStats(
            snapshots=self.snapshots + 1,
            first_time=when if first else self.first_time,
            first_equity=equity if first else self.first_equity,
            last_time=when,
            last_equity=equity,
            peak=peak,
            max_drawdown_pct=max(self.max_drawdown_pct, drawdown),
            returns=n,
            mean_return=mean,
            m2_return=m2,
            down2_return=down2,
        )

    def sharpe(self, periods_per_year: float) -> float:
        """``metrics.sharpe`` of the curve: mean / standard deviation (ddof=1) x sqrt(periods)."""
        if self.returns < 2:
            return 0.0
        sd = math.sqrt(max(self.m2_return, 0.0) / (self.returns - 1))
        if sd == 0.0 or not math.isfinite(sd):
            return 0.0
        return self.mean_return / sd * math.sqrt(periods_per_year)

    def sortino(self, periods_per_year: float) -> float:
        """``metrics.sortino`` of the curve: mean / sqrt(mean of squared losses) x sqrt(periods)."""
        if self.returns < 2:
            return 0.0
        downside = math.sqrt(self.down2_return / self.returns)
        if downside == 0.0:
            return 0.0
        return self.mean_return / downside * math.sqrt(periods_per_year)


_STATS_FIELDS = tuple(EquityStats.__dataclass_fields__)


def count_trade(session: Session, strategy: str, pnl: float) -> None:
    """One more closed trade of ``strategy`` in its running totals."""
    row = session.get(TradeTotalRow, strategy, with_for_update=True)
    if row is None:
        row = TradeTotalRow(strategy=strategy, trades=0, wins=0, pnl=0.0)
    row.trades += 1
    row.wins += 1 if pnl > 0 else 0
    row.pnl += pnl
    session.add(row)


def count_snapshot(session: Session, when: datetime, equity: float) -> None:
    """One more equity snapshot in the curve's statistics. A snapshot older than the last one
    counted (the curve is read in time order) recomputes them from the rows instead."""
    row = session.get(EquityTotalRow, 1, with_for_update=True)
    stats = _stats(row)
    if stats.last_time is not None and utc(when) < stats.last_time:
        session.flush()
        _store_stats(session, _recompute_equity(session), row)
        return
    _store_stats(session, stats.add(utc(when), equity), row)


@dataclass(frozen=True, slots=True)
class EquityDay:
    """One UTC day of the curve: its first snapshot (``open``), last (``close``) and highest."""

    day: str
    open_time: datetime
    open: float
    close_time: datetime
    close: float
    high: float

    @classmethod
    def first(cls, when: datetime, equity: float) -> EquityDay:
        return cls(_day(when), when, equity, when, equity, equity)

    def add(self, when: datetime, equity: float) -> EquityDay:
        earlier, later = when < self.open_time, when >= self.close_time
        return EquityDay(
            self.day,
            when if earlier else self.open_time,
            equity if earlier else self.open,
            when if later else self.close_time,
            equity if later else self.close,
            max(self.high, equity),
        )


@dataclass(frozen=True, slots=True)
class TradeDay:
    """The trades that exited on one UTC day: how many, how many won, their P&L."""

    day: str
    trades: int
    wins: int
    pnl: float


def _day(when: datetime) -> str:
    return utc(when).date().isoformat()


def count_day(session: Session, when: datetime, equity: float) -> None:
    """One more snapshot in its UTC day's open, close and high."""
    key = _day(when)
    row = session.get(EquityDayRow, key, with_for_update=True)
    if row is None:
        day = EquityDay.first(utc(when), equity)
        row = EquityDayRow(
            day=key,
            open_time=day.open_time,
            open=equity,
            close_time=day.close_time,
            close=equity,
            high=equity,
        )
    else:
        day = _equity_day(row).add(utc(when), equity)
    row.open_time, row.open, row.close_time, row.close, row.high = (
        day.open_time,
        day.open,
        day.close_time,
        day.close,
        day.high,
    )
    session.add(row)


def count_trade_day(session: Session, exit_time: datetime, pnl: float) -> None:
    """One more closed trade on its UTC exit day."""
    key = _day(exit_time)
    row = session.get(TradeDayRow, key, with_for_update=True) or TradeDayRow(
        day=key, trades=0, wins=0, pnl=0.0
    )
    row.trades += 1
    row.wins += 1 if pnl > 0 else 0
    row.pnl += pnl
    session.add(row)


def equity_days(
    session: Session, before: datetime | None = None, since: datetime | None = None
) -> list[EquityDay]:
    """The UTC days of the curve before ``before`` / from ``since`` (day boundaries), oldest first."""
    query = select(EquityDayRow).order_by(col(EquityDayRow.day))
    if before is not None:
        query = query.where(EquityDayRow.day < _day(before))
    if since is not None:
        query = query.where(EquityDayRow.day >= _day(since))
    return [_equity_day(r) for r in session.exec(query)]


def last_equity_day_before(session: Session, before: datetime) -> EquityDay | None:
    query = select(EquityDayRow).where(EquityDayRow.day < _day(before)).order_by(col(EquityDayRow.day).desc())
    row = session.exec(query.limit(1)).first()
    return None if row is None else _equity_day(row)


def trade_days(session: Session, since: datetime) -> list[TradeDay]:
    """The UTC exit days from ``since`` (a day boundary) with their trades, oldest first."""
    query = select(TradeDayRow).where(TradeDayRow.day >= _day(since)).order_by(col(TradeDayRow.day))
    return [TradeDay(r.day, r.trades, r.wins, r.pnl) for r in session.exec(query)]


def _equity_day(row: EquityDayRow) -> EquityDay:
    return EquityDay(row.day, utc(row.open_time), row.open, utc(row.close_time), row.close, row.high)


def strategy_totals(session: Session) -> list[StrategyTotals]:
    """Every strategy's totals, by name."""
    rows = session.exec(select(TradeTotalRow).order_by(col(TradeTotalRow.strategy)))
    return [StrategyTotals(r.strategy, r.trades, r.wins, r.pnl) for r in rows]


def equity_stats(session: Session) -> EquityStats:
    return _stats(session.get(EquityTotalRow, 1))


def realized_since(session: Session, since: datetime) -> float:
    """The P&L of the trades closed since ``since`` (through the exit-time index: a day's trades)."""
    total = session.exec(select(func.sum(TradeRow.pnl)).where(TradeRow.exit_time >= utc(since))).one()
    return float(total or 0.0)


def recent_snapshot_times(session: Session, limit: int) -> list[datetime]:
    """The times of the newest ``limit`` equity snapshots, oldest first."""
    query = select(EquitySnapshotRow.time).order_by(col(EquitySnapshotRow.time).desc()).limit(limit)
    return sorted(utc(t) for t in session.exec(query))


def verify(session: Session) -> list[str]:
    """Recompute the totals from the trades and the equity snapshots and store whatever differs.
    Returns what differed, in words (empty: they agreed)."""
    if session.get_bind().dialect.name == "postgresql":
        # Another instance booking a trade meanwhile waits: its row and its totals land after
        # this check, never between the recount and the rewrite (SQLite: a write from a stale
        # read is refused, so the check fails and is logged instead).
        session.execute(text(f"LOCK TABLE {', '.join(TOTALS_TABLES)} IN SHARE ROW EXCLUSIVE MODE"))
    differences = []
    expected = {
        strategy: StrategyTotals(strategy, int(trades), int(wins or 0), float(pnl or 0.0))
        for strategy, trades, wins, pnl in session.exec(
            select(
                TradeRow.strategy,
                func.count(),
                func.sum(case((col(TradeRow.pnl) > 0, 1), else_=0)),
                func.sum(TradeRow.pnl),
            ).group_by(TradeRow.strategy)
        )
    }
    stored = {t.strategy: t for t in strategy_totals(session)}
    for name in sorted(set(expected) | set(stored)):
        want, have = expected.get(name), stored.get(name)
        if want is not None and have is not None and _same_trades(want, have):
            continue
        differences.append(
            f"trades of {name}: stored {_trades_text(have)}, the trades say {_trades_text(want)}"
        )
        row = session.get(TradeTotalRow, name)
        if want is None:
            session.delete(row)
            continue
        row = row or TradeTotalRow(strategy=name)
        row.trades, row.wins, row.pnl = want.trades, want.wins, want.pnl
        session.add(row)
    days: dict[str, EquityDay] = {}
    recomputed = _recompute_equity(session, days)
    differences += _verify_days(session, days)
    differences += _verify_trade_days(session)
    equity_row = session.get(EquityTotalRow, 1)
    have_stats = _stats(equity_row)
    if not _same_stats(recomputed, have_stats):
        differences.append(
            f"equity curve: stored {have_stats.snapshots} snapshots, the snapshots say {recomputed.snapshots}"
            if have_stats.snapshots != recomputed.snapshots
            else "equity curve statistics"
        )
        _store_stats(session, recomputed, equity_row)
    return differences


# ---------------------------------------------------------------------- helpers


def _verify_days(session: Session, expected: dict[str, EquityDay]) -> list[str]:
    stored = {r.day: r for r in session.exec(select(EquityDayRow))}
    wrong = 0
    for key in sorted(set(expected) | set(stored)):
        want, row = expected.get(key), stored.get(key)
        if row is not None and want is not None and _same_day(_equity_day(row), want):
            continue
        wrong += 1
        if want is None:
            session.delete(row)
            continue
        row = row or EquityDayRow(
            day=key, open_time=want.open_time, open=0.0, close_time=want.close_time, close=0.0, high=0.0
        )
        row.open_time, row.open, row.close_time, row.close, row.high = (
            want.open_time,
            want.open,
            want.close_time,
            want.close,
            want.high,
        )
        session.add(row)
    return [f"equity by day: {wrong} of {len(expected)} days"] if wrong else []


def _same_day(a: EquityDay, b: EquityDay) -> bool:
    return (
        a.open_time == b.open_time
        and a.close_time == b.close_time
        and _close(a.open, b.open)
        and _close(a.close, b.close)
        and _close(a.high, b.high)
    )


def _verify_trade_days(session: Session) -> list[str]:
    expected: dict[str, TradeDay] = {}
    query = select(TradeRow.exit_time, TradeRow.pnl).order_by(col(TradeRow.exit_time), col(TradeRow.id))
    for when, pnl in session.exec(query.execution_options(yield_per=5000)):
        key = _day(when)
        d = expected.get(key) or TradeDay(key, 0, 0, 0.0)
        expected[key] = TradeDay(key, d.trades + 1, d.wins + (1 if pnl > 0 else 0), d.pnl + pnl)
    stored = {r.day: r for r in session.exec(select(TradeDayRow))}
    wrong = 0
    for key in sorted(set(expected) | set(stored)):
        want, row = expected.get(key), stored.get(key)
        if (
            row is not None
            and want is not None
            and (row.trades, row.wins) == (want.trades, want.wins)
            and _close(row.pnl, want.pnl)
        ):
            continue
        wrong += 1
        if want is None:
            session.delete(row)
            continue
        row = row or TradeDayRow(day=key)
        row.trades, row.wins, row.pnl = want.trades, want.wins, want.pnl
        session.add(row)
    return [f"trades by day: {wrong} of {len(expected)} days"] if wrong else []


def _stats(row: EquityTotalRow | None) -> EquityStats:
    if row is None:
        return EquityStats()
    values = {name: getattr(row, name) for name in _STATS_FIELDS}
    values["first_time"], values["last_time"] = aware(row.first_time), aware(row.last_time)
    return EquityStats(**values)


def _store_stats(session: Session, stats: EquityStats, row: EquityTotalRow | None) -> None:
    row = row or EquityTotalRow(id=1)
    for name in _STATS_FIELDS:
        setattr(row, name, getattr(stats, name))
    session.add(row)


def _recompute_equity(session: Session, days: dict[str, EquityDay] | None = None) -> EquityStats:
    """The statistics from every snapshot, in time order (one streamed pass); with ``days``, each
    UTC day's close and high gathered into it as well."""
    stats = EquityStats()
    query = select(EquitySnapshotRow.time, EquitySnapshotRow.equity).order_by(
        col(EquitySnapshotRow.time), col(EquitySnapshotRow.id)
    )
    for when, equity in session.exec(query.execution_options(yield_per=5000)):
        when = utc(when)
        stats = stats.add(when, equity)
        if days is not None:
            key = _day(when)
            day = days.get(key)
            days[key] = EquityDay.first(when, equity) if day is None else day.add(when, equity)
    return stats


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=TOLERANCE, abs_tol=1e-9)


def _same_trades(a: StrategyTotals, b: StrategyTotals) -> bool:
    return a.trades == b.trades and a.wins == b.wins and _close(a.pnl, b.pnl)


def _same_stats(a: EquityStats, b: EquityStats) -> bool:
    return all(
        getattr(a, name) == getattr(b, name)
        if name in ("snapshots", "returns", "first_time", "last_time")
        else _close(getattr(a, name), getattr(b, name))
        for name in _STATS_FIELDS
    )


def _trades_text(t: StrategyTotals | None) -> str:
    return "nothing" if t is None else f"{t.trades} trades, {t.wins} wins, P&L {t.pnl:,.2f}"
