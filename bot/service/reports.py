"""Read-only reports: what /status, /positions, /pnl and /risk show, and the risk checks' inputs.

Nothing here writes. Every answer is a named dataclass from ``bot/views.py`` (or a domain type),
built from the database and the broker's account, so the console, Telegram, the web dashboard
and the tests all read the same object.
"""

from __future__ import annotations

import itertools
import logging
import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.brokers.base import Broker
from bot.clock import Clock
from bot.domain import Account, Order, Position, Side, Trade, TradingState
from bot.lease import TradingLease
from bot.periods import DayTotal, Period, PeriodProfit, profit_by_days, starts
from bot.risk import BOUNDS, PortfolioState, QtyRules, WorkingEntry, is_dust
from bot.service.store import SettingsStore
from bot.views import EquityHistory, Page, PnlReport, RiskView, StatusView, StrategyPnl, TickReport
from storage import repository as repo
from storage.db import Database

log = logging.getLogger(__name__)


class Reports:
    def __init__(
        self,
        db: Database,
        broker: Broker,
        clock: Clock,
        store: SettingsStore,
        lease: TradingLease,
        *,
        symbols: tuple[str, ...],
        strategies: tuple[str, ...],
        timeframe: str,
    ) -> None:
        self.db = db
        self.broker = broker
        self.clock = clock
        self.store = store
        self.lease = lease
        self.symbols = symbols
        self.strategies = strategies
        self.timeframe = timeframe
        self.last_tick: TickReport | None = None  # this process's last cycle (data health)

    def status(self) -> StatusView:
        now = self.clock.now()
        account, positions = self.marked(now)
        with self.db.session() as s:
            open_orders = repo.list_orders(s, open_only=True)
        paused = self.store.paused()
        state = TradingState.PAUSED if paused else TradingState.ACTIVE
        start_equity = self.day_start_equity(now)
        if not paused and _loss_pct(start_equity, account.equity) >= self.store.limits().daily_loss_limit_pct:
            state = TradingState.HALTED
        if self.lease.standby():
            state = TradingState.STANDBY
        return StatusView(
            mode=self.broker.mode,
            broker=self.broker.name,
            paused=paused,
            trading_state=state,
            equity=account.equity,
            cash=account.cash,
            positions=len(positions),
            open_orders=len(open_orders),
            last_tick=self.store.last_tick(),
            data_problems=dict(self.last_tick.data_problems) if self.last_tick else {},
            symbols=self.symbols,
            strategies=self.strategies,
            timeframe=self.timeframe,
            now=now,
            clock_speed=float(getattr(self.clock, "speed", 1.0)),
            real_now=datetime.now(UTC) if self.broker.mode == "sim" else None,
            pause=self.store.pause() if paused else None,
            instance=self.lease.describe(),
            limits=self.store.limits().as_dict(),
            limit_origins=self.store.origins(),
            today_pnl=account.equity - start_equity if start_equity is not None else 0.0,
            holdings=tuple(positions),
        )

    def positions(self) -> list[Position]:
        """The books' positions, marked at the last cycle (no broker call: the order path uses it)."""
        with self.db.session() as s:
            return repo.list_positions(s)

    def marked(self, now: datetime) -> tuple[Account, list[Position]]:
        """The account and the books' positions priced at one moment, so that one view's equity,
        today's P&L and unrealized P&L agree: each position at the broker's latest price for ``now``
        (its last mark when the broker has none), the equity as the cash plus those positions (the
        broker's own formula; the books follow its quantities at each reconciliation)."""
        account = self.broker.account()
        with self.db.session() as s:
            books = repo.list_positions(s)
        positions = []
        for position in books:
            price = self.broker.latest_price(position.symbol, now)
            if price is not None and math.isfinite(price):
                position = replace(position, market_price=price)
            positions.append(position)
        if positions:
            equity = account.cash + sum(p.market_value for p in positions)
            account = replace(account, equity=equity)
        return account, positions

    def position(self, symbol: str) -> Position | None:
        with self.db.session() as s:
            return repo.get_position(s, symbol)

    def trades(self, limit: int | None = 10) -> list[Trade]:
        with self.db.session() as s:
            return repo.list_trades(s, limit=limit)

    def order_page(self, *, limit: int, before: int | None = None, **filters: Any) -> Page[Order]:
        with self.db.session() as s:
            return repo.order_page(s, limit=limit, before=before, **filters)

    def trade_page(self, *, limit: int, before: int | None = None, **filters: Any) -> Page[Trade]:
        with self.db.session() as s:
            return repo.trade_page(s, limit=limit, before=before, **filters)

    def equity_curve(self) -> list[tuple[datetime, float]]:
        with self.db.session() as s:
            return repo.equity_curve(s)

    def equity_history(self) -> EquityHistory:
        """The curve for /equity: the newest ``EQUITY_DETAIL_POINTS`` snapshots in full, a point
        per UTC day before them (a year is some 365 + 500 points, not 300,000, and the cost is
        the same at every hour of the day)."""
        with self.db.session() as s:
            recent = repo.newest_equity(s, EQUITY_DETAIL_POINTS)
            days = repo.equity_days(s, before=recent[0][0]) if recent else []
            stats = repo.equity_stats(s)
        points = [(d.close_time, d.close, d.high) for d in days] + [(t, e, e) for t, e in recent]
        return EquityHistory(tuple(points), stats.max_drawdown_pct, EQUITY_DETAIL_POINTS)

    def pnl(self) -> PnlReport:
        """From the running totals the books keep as trades and snapshots are written
        (``storage.repository.totals``): what it reads does not grow with the history, but for
        today's trades (realized today) and the newest ``GAP_SAMPLE`` snapshot times."""
        now = self.clock.now()
        account, positions = self.marked(now)
        with self.db.session() as s:
            per = [t for t in repo.strategy_totals(s) if t.trades]
            stats = repo.equity_stats(s)
            today_realized = repo.realized_since(s, _day_start(now))
            times = repo.recent_snapshot_times(s, GAP_SAMPLE)
        start_equity = self.day_start_equity(now)
        current = stats.add(now, account.equity)  # the curve and the equity now, as /pnl shows it
        trades = sum(t.trades for t in per)
        first = stats.first_equity
        ratios = _ratios(stats, current, times, now)
        return PnlReport(
            today_pnl=account.equity - start_equity if start_equity is not None else 0.0,
            today_realized=today_realized,
            total_realized=sum(t.pnl for t in per),
            unrealized=sum(p.unrealized_pnl for p in positions),
            equity=account.equity,
            starting_equity=first,
            return_pct=(account.equity / first - 1) * 100 if first else 0.0,
            sharpe=ratios[0],
            sortino=ratios[1],
            history=ratios[2],
            max_drawdown_pct=current.max_drawdown_pct,
            win_rate=100.0 * sum(t.wins for t in per) / trades if trades else 0.0,
            trades=trades,
            per_strategy=tuple(
                StrategyPnl(t.strategy, t.trades, t.pnl, 100.0 * t.wins / t.trades) for t in per
            ),
        )

    def profit(self, period: Period, count: int) -> list[PeriodProfit]:
        """Realized profit of the last ``count`` days, weeks or months, newest first."""
        now = self.clock.now()
        first = starts(now, period, count)[-1]
        with self.db.session() as s:  # per-day totals: at most a row per day shown, whatever the history
            days = repo.trade_days(s, since=first)
            equity_days = repo.equity_days(s, since=first)
            before = repo.last_equity_day_before(s, first)
        totals = [
            DayTotal(datetime.fromisoformat(d.day).replace(tzinfo=UTC), d.trades, d.wins, d.pnl) for d in days
        ]
        # Each day's first and last snapshot: all that ``equity_at`` reads of the curve.
        curve = [(before.close_time, before.close)] if before is not None else []
        for day in equity_days:
            curve += [(day.open_time, day.open), (day.close_time, day.close)]
        return profit_by_days(totals, curve, period, now, count)

    def risk_view(self) -> RiskView:
        account, positions = self.marked(self.clock.now())
        limits = self.store.limits()
        with self.db.session() as s:
            entries = [o for o in repo.list_orders(s, open_only=True, limit=500) if o.side is Side.BUY]
        working = self.working_entries(entries, self.clock.now())
        risk = sum(p.risk_to_stop for p in positions) + sum(
            w.risk_to_stop for w in working if math.isfinite(w.price)
        )
        return RiskView(
            limits=limits.as_dict(),
            defaults=self.store.default_limits.as_dict(),
            bounds=dict(BOUNDS),
            paused=self.store.paused(),
            day_loss_pct=self.daily_loss_pct(account.equity, self.clock.now()),
            portfolio_risk_pct=risk / account.equity * 100 if account.equity > 0 else 0.0,
            open_trades=len(positions) + len({w.symbol for w in working} - {p.symbol for p in positions}),
            origins=self.store.origins(),
        )

    def portfolio_state(self, equity: float, cash: float, now: datetime) -> PortfolioState:
        """What the risk checks need to judge one more entry."""
        with self.db.session() as s:
            # Dust (a position too small to order) neither blocks an entry nor counts as a trade.
            held = repo.list_positions(s)
        positions = tuple(p for p in held if not is_dust(p.symbol, p.qty, self._qty_rules(p.symbol)))
        with self.db.session() as s:
            entries = [o for o in repo.list_orders(s, open_only=True, limit=500) if o.side is Side.BUY]
        return PortfolioState(
            equity=equity,
            cash=cash,
            positions=positions,
            day_start_equity=self.day_start_equity(now),
            paused=self.store.paused(),
            working=self.working_entries(entries, now),
        )

    def _qty_rules(self, symbol: str) -> QtyRules:
        """The broker's quantity rules; the simulator's finer ones when the broker cannot say (a
        symbol it no longer lists): then less counts as dust, so more counts toward the limits."""
        try:
            return self.broker.qty_rules(symbol)
        except Exception as exc:
            log.warning(
                "quantity rules for %s unavailable (%s): judging dust by the finer default", symbol, exc
            )
            return QtyRules.default(symbol)

    def working_entries(self, entries: list[Order], now: datetime) -> tuple[WorkingEntry, ...]:
        """What is left of each open entry order, priced at its limit, else the latest price."""
        working = []
        for order in entries:
            left = order.qty - order.filled_qty
            if left <= 1e-9 * max(order.qty, 1.0):
                continue
            price = order.limit_price or self.broker.latest_price(order.symbol, now)
            working.append(
                WorkingEntry(order.symbol, left, math.nan if price is None else price, order.stop_loss)
            )
        return tuple(working)

    def day_start_equity(self, now: datetime) -> float | None:
        """The equity at the UTC day's first cycle (its first snapshot since 00:00, taken after that
        cycle's fills and before any entry); before the day's first cycle, the last one before."""
        start = _day_start(now)
        with self.db.session() as s:
            first = repo.first_equity_since(s, start)
            return first if first is not None else repo.last_equity_before(s, start)

    def daily_loss_pct(self, equity: float, now: datetime) -> float:
        """How far ``equity`` is below the UTC day's start, in percent (negative: above)."""
        return _loss_pct(self.day_start_equity(now), equity)


def _loss_pct(start: float | None, equity: float) -> float:
    """How far ``equity`` is below ``start``, in percent (negative: above); 0 without a start."""
    if not start:
        return 0.0
    return (start - equity) / start * 100


def _day_start(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


# Sharpe and Sortino from a few snapshots, annualised, are noise with a decimal point (one trade
# gave "Sharpe -63.46"): they are shown once the history has this many returns over this span.
RATIO_MIN_RETURNS = 30
RATIO_MIN_SPAN = timedelta(days=1)


EQUITY_DETAIL_POINTS = 500  # /equity shows the newest snapshots one by one, earlier days by day

# The snapshots' spacing (which annualises Sharpe and Sortino) is the median gap of this many newest.
GAP_SAMPLE = 200


def _ratios(
    stats: repo.EquityStats, current: repo.EquityStats, times: list[datetime], now: datetime
) -> tuple[float | None, float | None, str]:
    """(Sharpe, Sortino, "") with enough equity history; otherwise (None, None, what there is).
    ``stats``: the stored curve's; ``current``: with the equity now added."""
    changes = current.snapshots - 1
    span = now - stats.first_time if stats.first_time is not None else timedelta(0)
    if changes < RATIO_MIN_RETURNS or span < RATIO_MIN_SPAN:
        hours = span.total_seconds() / 3600
        return None, None, f"{changes} equity snapshots over {hours:.1f} h"
    per_year = _periods_per_year(times)
    return current.sharpe(per_year), current.sortino(per_year), ""


def _periods_per_year(times: list[datetime]) -> float:
    """Annualisation from the snapshots' median spacing (they are not evenly spaced)."""
    if len(times) < 3:
        return 252.0
    gaps = sorted((b - a).total_seconds() for a, b in itertools.pairwise(times))
    median = gaps[len(gaps) // 2]
    return 365 * 86400 / median if median > 0 else 252.0
