"""What the pages and ``/api/v1`` show, read through ``TradingService``'s public methods only.

Synchronous (the service is): FastAPI runs the endpoints that call it in worker threads. The
web layer never reads ``storage`` itself.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel

from bot.bars import NS, Timeframe
from bot.charts import ChartData, ChartError
from bot.config import Settings
from bot.domain import EventKind
from bot.periods import Period
from bot.views import Page, StatusView
from bot.web import schemas as s
from bot.web.cache import ReadCache

if TYPE_CHECKING:
    from bot.app import App


class NotFound(LookupError):
    """What was asked for does not exist; the message says what."""


class Invalid(ValueError):
    """A parameter the bot cannot use (a timeframe of 999999d); the message says what is allowed."""


class Dashboard:
    def __init__(self, app: App) -> None:
        self.app = app
        self.cache = ReadCache(app.service)
        self.service: Any = self.cache  # reads memoized for a second, forgotten on every event
        app.service.feed.watch(self.cache.clear)
        self.charts = ChartData.from_app(app)

    # ------------------------------------------------------------------ overview

    def read_only(self) -> bool:
        return not self.app.lease.held or self.app.lease.draining

    def status(self) -> s.StatusOut:
        return self._status(self.service.status())

    def _status(self, view: StatusView) -> s.StatusOut:
        read_only = self.read_only()
        return s.StatusOut(
            mode=view.mode,
            broker=view.broker,
            state="standby" if read_only and not self.app.lease.draining else view.trading_state,
            paused=view.paused,
            paused_by=view.pause.by if view.pause else None,
            paused_since=view.pause.since if view.pause else None,
            blocked_since_pause=view.pause.blocked if view.pause else 0,
            read_only=read_only,
            instance=view.instance or self.app.lease.describe(),
            equity=view.equity,
            cash=view.cash,
            today_pnl=view.today_pnl,
            positions=view.positions,
            open_orders=view.open_orders,
            last_cycle=view.last_tick,
            data_problems=view.data_problems,
            books_behind=view.books_behind,
            symbols=list(view.symbols),
            strategies=list(view.strategies),
            timeframe=view.timeframe,
            now=view.now,
            clock_speed=view.clock_speed,
            protection=[s.StopCoverOut.of(c) for c in view.protection],
            protection_error=view.protection_error,
        )

    def overview(self) -> s.OverviewOut:
        view = self.service.status()  # one snapshot of prices: equity and the positions' P&L agree
        return s.OverviewOut(
            status=self._status(view),
            positions=[s.PositionOut.of(p) for p in view.holdings],
            orders=[s.OrderOut.of(o) for o in self.service.orders(open_only=True, limit=100)],
            events=self.events(limit=15),
        )

    def positions(self) -> list[s.PositionOut]:
        return [s.PositionOut.of(p) for p in self.service.marked_positions()]

    # ------------------------------------------------------------------ tables

    def orders(self, *, limit: int = 200, before: int | None = None, **filters: Any) -> list[s.OrderOut]:
        return self.order_page(limit=limit, before=before, **filters).items

    def order_page(
        self,
        *,
        open_only: bool = False,
        symbol: str | None = None,
        side: str | None = None,
        status: str | None = None,
        strategy: str | None = None,
        limit: int = 200,
        before: int | None = None,
    ) -> Page[s.OrderOut]:
        """One page of orders, newest first, filtered by the database (``before``: the cursor)."""
        page = self.service.order_page(
            limit=limit,
            before=before,
            open_only=open_only,
            symbol=symbol,
            side=side,
            status=status,
            strategy=strategy,
        )
        return Page([s.OrderOut.of(o) for o in page.items], page.next_before)

    def trades(self, *, limit: int = 500, before: int | None = None, **filters: Any) -> list[s.TradeOut]:
        return self.trade_page(limit=limit, before=before, **filters).items

    def trade_page(
        self,
        *,
        symbol: str | None = None,
        strategy: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        result: str | None = None,
        limit: int = 500,
        before: int | None = None,
    ) -> Page[s.TradeOut]:
        """One page of closed trades, newest first, filtered by the database."""
        try:
            page = self.service.trade_page(
                limit=limit,
                before=before,
                symbol=symbol,
                strategy=strategy,
                since=_aware(since),
                until=_aware(until),
                result=result,
            )
        except LookupError as exc:
            raise NotFound(str(exc).strip("'\"")) from None
        return Page([s.TradeOut.of(t) for t in page.items], page.next_before)

    def events(
        self, *, kind: str | None = None, before: int | None = None, limit: int = 100
    ) -> list[s.EventOut]:
        return self.event_page(kind=kind, before=before, limit=limit).items

    def event_page(
        self, *, kind: str | None = None, before: int | None = None, limit: int = 100
    ) -> Page[s.EventOut]:
        """One page of the audit log, newest first (``before``: the id of the last one shown)."""
        wanted = None
        if kind:
            try:
                wanted = EventKind(kind)
            except ValueError:
                raise NotFound(
                    f"no event kind {kind!r}: one of {', '.join(k.value for k in EventKind)}"
                ) from None
        events = self.service.recent_events(limit + 1, wanted, before)
        rows = [s.EventOut.of(e) for e in events[:limit]]
        return Page(rows, rows[-1].id if len(events) > limit else None)

    # ------------------------------------------------------------------ charts

    def equity(self) -> s.EquityOut:
        history = self.service.equity_history()
        points, peak = [], -math.inf
        for time, value, high in history.points:
            peak = max(peak, high, value)  # a day's high counts toward the peak its close is below
            points.append(s.EquityPoint(time=time, equity=value, drawdown_pct=_below(peak, value)))
        return s.EquityOut(points=points, max_drawdown_pct=history.max_drawdown_pct)

    def bars(self, symbol: str, timeframe: str | None = None) -> s.BarsOut:
        symbol = symbol.upper()
        if symbol not in self.service.symbols and not any(
            p.symbol == symbol for p in self.service.positions()
        ):
            raise NotFound(f"{symbol} is not traded here: one of {', '.join(self.service.symbols)}")
        frame = None
        if timeframe:
            try:
                frame = Timeframe.parse(timeframe)
            except ValueError as exc:
                raise Invalid(str(exc)) from None
        try:
            chart = self.charts.price(symbol, frame)
        except ChartError as exc:
            raise NotFound(str(exc)) from None
        bars = chart.bars
        markers = [
            s.Marker(
                time=m.time_ns // NS,
                price=m.price,
                kind="entry" if m.entry else ("exit_win" if m.won else "exit_loss"),
            )
            for m in sorted(chart.markers, key=lambda m: m.time_ns)
        ]
        position = next((p for p in self.service.marked_positions() if p.symbol == symbol), None)
        return s.BarsOut(
            symbol=symbol,
            timeframe=str(chart.timeframe),
            time=[int(t) // NS for t in bars.time],
            open=bars.open.tolist(),
            high=bars.high.tolist(),
            low=bars.low.tolist(),
            close=bars.close.tolist(),
            volume=bars.volume.tolist(),
            lines={label: _finite(line) for label, line in chart.lines.items()},
            markers=markers,
            position=s.PositionOut.of(position) if position else None,
        )

    def profit(self, period: Period, count: int) -> s.ProfitOut:
        rows = [s.PeriodOut.of(p) for p in self.service.profit(period, count)]
        return s.ProfitOut(
            period=period, periods=rows, pnl=sum(r.pnl for r in rows), trades=sum(r.trades for r in rows)
        )

    # ------------------------------------------------------------------ strategies and risk

    def strategies(self) -> list[s.StrategyOut]:
        pnl = {row.strategy: row for row in self.service.pnl().per_strategy}
        signals = self.service.recent_signals(500)
        errors = self.service.recent_events(200, EventKind.STRATEGY_ERROR)
        out = []
        for strategy in self.app.strategies:
            label = strategy.label
            mine = pnl.get(label)
            last = next((sig for sig in signals if sig.strategy == label), None)
            params = [
                s.ParamOut(
                    name=name,
                    value=float(getattr(strategy, name)),
                    default=float(param.default),
                    minimum=param.min,
                    maximum=param.max,
                    help=param.help,
                )
                for name, param in type(strategy).params.items()
            ]
            out.append(
                s.StrategyOut(
                    label=label,
                    name=strategy.name,
                    description=type(strategy).description,
                    params=params,
                    trades=mine.trades if mine else 0,
                    pnl=mine.pnl if mine else 0.0,
                    win_rate=mine.win_rate if mine else 0.0,
                    last_signal=f"{last.side} {last.symbol} at {last.price:,.2f}: {last.outcome}"
                    if last
                    else None,
                    last_signal_time=last.bar_time if last else None,
                    errors=[e.message for e in errors if label in e.message][:5],
                )
            )
        return out

    def risk(self) -> s.RiskOut:
        view = self.service.risk_view()
        changes = self.service.recent_events(200, EventKind.RISK_CHANGED)
        sources = limit_sources(self.app.settings, view.limits, view.defaults, [e.message for e in changes])
        limits = [
            s.RiskLimitOut(
                name=name,
                value=value,
                default=view.defaults[name],
                minimum=view.bounds[name][0],
                maximum=view.bounds[name][1],
                source=sources[name],
            )
            for name, value in view.limits.items()
        ]
        return s.RiskOut(
            limits=limits,
            paused=view.paused,
            portfolio_risk_pct=view.portfolio_risk_pct,
            max_portfolio_risk_pct=view.limits["max_portfolio_risk_pct"],
            day_loss_pct=view.day_loss_pct,
            daily_loss_limit_pct=view.limits["daily_loss_limit_pct"],
            open_trades=view.open_trades,
            max_open_trades=view.limits["max_open_trades"],
        )


def limit_sources(
    settings: Settings, limits: dict[str, float], defaults: dict[str, float], changes: Sequence[str]
) -> dict[str, str]:
    """Where each risk limit's value comes from, in words: /risk set (by whom), the environment or
    .env (which variable), or the built-in default. ``changes``: the RISK_CHANGED event messages,
    newest first."""
    out = {}
    for name, value in limits.items():
        variable = name.upper()
        if not math.isclose(value, defaults[name]):
            said = next((m for m in changes if m.startswith(f"Risk limit {name} set to")), "")
            out[name] = f"/risk set ({said.rstrip('.')})" if said else "/risk set"
        elif settings.is_set(variable):
            out[name] = f"{settings.source(variable).value} ({variable})"
        else:
            out[name] = "built-in default"
    return out


def to_csv(rows: Iterable[BaseModel], model: type[BaseModel]) -> str:
    """Rows of one model as CSV text, with a header line of its field names."""
    buffer = io.StringIO()
    names = list(model.model_fields)
    writer = csv.writer(buffer)
    writer.writerow(names)
    for row in rows:
        values: list[Any] = []
        for name in names:
            value = getattr(row, name)
            values.append(value.astimezone(UTC).isoformat() if isinstance(value, datetime) else value)
        writer.writerow(["" if v is None else v for v in values])
    return buffer.getvalue()


def _aware(moment: datetime | None) -> datetime | None:
    """A time without a zone (``?since=2026-03-02`` from a date picker) is read as UTC."""
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def _match(value: str | None, wanted: str | None) -> bool:
    return not wanted or (value or "").lower() == wanted.strip().lower()


def _below(peak: float, value: float) -> float:
    """Percent ``value`` is below ``peak`` (as ``metrics.drawdown_pct``: 0 without a positive peak)."""
    return (peak - value) / peak * 100.0 if peak > 0 else 0.0


def _finite(line: np.ndarray) -> list[float | None]:
    return [float(v) if math.isfinite(v) else None for v in line.tolist()]
