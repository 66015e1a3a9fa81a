"""The JSON shapes of ``/api/v1`` (pydantic models: FastAPI documents them at ``/api/docs``).

Converters from the service's domain dataclasses live beside each model, so a field added to
a view shows up in one place. Times are ISO 8601 UTC; money is in the account's currency.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from bot.domain import CoverState, Event, Order, OrderStatus, Position, StopCover, Trade
from bot.periods import Period, PeriodProfit


class StopCoverOut(BaseModel):
    """One position's stop as the broker has it: the invariant "a working stop for the whole quantity"."""

    symbol: str
    qty: float = Field(description="held at the broker; negative: short")
    covered: float = Field(description="the quantity working stops (a held stop leg included) will sell")
    stop: float | None
    target: float | None
    state: CoverState = Field(
        description="protected, dust, unprotected, excess (stops beyond what is held) or short"
    )
    ok: bool = Field(description="true when protected (or too small for any stop)")
    note: str = Field(description="how it is covered, or what is wrong, in words")

    @classmethod
    def of(cls, cover: StopCover) -> StopCoverOut:
        return cls(
            symbol=cover.symbol,
            qty=cover.qty,
            covered=cover.covered,
            stop=cover.stop,
            target=cover.target,
            state=cover.state,
            ok=cover.ok,
            note=cover.note,
        )


class StatusOut(BaseModel):
    mode: str = Field(description="sim, paper or live")
    broker: str
    state: str = Field(description="active, paused, halted (daily loss limit) or standby")
    paused: bool
    paused_by: str | None = Field(None, description="who paused, while paused")
    paused_since: datetime | None = None
    blocked_since_pause: int = Field(0, description="strategy entries held back since the pause")
    read_only: bool = Field(description="true on a standby instance: it shows, but does not trade or act")
    instance: str = Field(description="this process and the trading lease, in words")
    equity: float
    cash: float
    today_pnl: float
    positions: int
    open_orders: int
    last_cycle: datetime | None
    data_problems: dict[str, str]
    symbols: list[str]
    strategies: list[str]
    timeframe: str
    now: datetime
    clock_speed: float
    books_behind: str | None = Field(
        None,
        description="why the books miss what the broker has: no new entries until a reconciliation succeeds",
    )
    protection: list[StopCoverOut] = Field(
        default_factory=list, description="every position's stop as the broker has it (read at the broker)"
    )
    protection_error: str = Field("", description="why the stops could not be read at the broker, if so")


class PositionOut(BaseModel):
    symbol: str
    qty: float
    avg_price: float
    market_price: float | None
    unrealized_pnl: float
    unrealized_pct: float
    market_value: float
    stop_loss: float | None
    take_profit: float | None
    strategy: str
    opened_at: datetime | None

    @classmethod
    def of(cls, p: Position) -> PositionOut:
        price = p.market_price if p.market_price is not None else p.avg_price
        return cls(
            symbol=p.symbol,
            qty=p.qty,
            avg_price=p.avg_price,
            market_price=p.market_price,
            unrealized_pnl=p.unrealized_pnl,
            unrealized_pct=(price / p.avg_price - 1) * 100 if p.avg_price else 0.0,
            market_value=p.market_value,
            stop_loss=p.stop_loss,
            take_profit=p.take_profit,
            strategy=p.strategy,
            opened_at=p.opened_at,
        )


class OrderOut(BaseModel):
    client_order_id: str
    symbol: str
    side: str
    qty: float
    status: str
    type: str
    filled_qty: float
    filled_avg_price: float | None
    stop_loss: float | None
    take_profit: float | None
    strategy: str
    reason: str
    exit_reason: str | None
    created_at: datetime | None
    updated_at: datetime | None
    error: str | None
    cancelable: bool = Field(
        False,
        description="working at the broker: DELETE /api/v1/orders/{client_order_id} may cancel what is left "
        "(pending_submit waits for reconciliation)",
    )

    @classmethod
    def of(cls, o: Order) -> OrderOut:
        return cls(
            client_order_id=o.client_order_id,
            symbol=o.symbol,
            side=o.side.value,
            qty=o.qty,
            status=o.status.value,
            type=o.order_type.value,
            filled_qty=o.filled_qty,
            filled_avg_price=o.filled_avg_price,
            stop_loss=o.stop_loss,
            take_profit=o.take_profit,
            strategy=o.strategy,
            reason=o.reason,
            exit_reason=o.exit_reason.value if o.exit_reason else None,
            created_at=o.created_at,
            updated_at=o.updated_at,
            error=o.error,
            cancelable=o.status.is_open and o.status is not OrderStatus.PENDING_SUBMIT,
        )


class TradeOut(BaseModel):
    symbol: str
    strategy: str
    qty: float
    entry_time: datetime
    entry_price: float
    exit_time: datetime
    exit_price: float
    pnl: float
    return_pct: float
    exit_reason: str
    commission: float

    @classmethod
    def of(cls, t: Trade) -> TradeOut:
        cost = t.entry_price * t.qty
        return cls(
            symbol=t.symbol,
            strategy=t.strategy,
            qty=t.qty,
            entry_time=t.entry_time,
            entry_price=t.entry_price,
            exit_time=t.exit_time,
            exit_price=t.exit_price,
            pnl=t.pnl,
            return_pct=t.pnl / cost * 100 if cost else 0.0,
            exit_reason=t.exit_reason,
            commission=t.commission,
        )


class EventOut(BaseModel):
    id: int | None
    time: datetime
    kind: str
    severity: str
    symbol: str | None
    message: str
    data: dict[str, Any]

    @classmethod
    def of(cls, e: Event) -> EventOut:
        return cls(
            id=e.id,
            time=e.time,
            kind=e.kind.value,
            severity=e.severity.value,
            symbol=e.symbol,
            message=e.message,
            data=e.data,
        )


class StrategyPnlOut(BaseModel):
    strategy: str
    trades: int
    pnl: float
    win_rate: float


class PnlOut(BaseModel):
    today_pnl: float
    today_realized: float
    total_realized: float
    unrealized: float
    equity: float
    starting_equity: float | None
    return_pct: float
    sharpe: float | None = Field(description="null until the equity history is long enough to mean something")
    sortino: float | None
    history: str = Field(description="when sharpe is null: how much equity history there is so far")
    max_drawdown_pct: float
    win_rate: float
    trades: int
    per_strategy: list[StrategyPnlOut]


class OverviewOut(BaseModel):
    status: StatusOut
    positions: list[PositionOut]
    orders: list[OrderOut]
    events: list[EventOut]


class EquityPoint(BaseModel):
    time: datetime
    equity: float
    drawdown_pct: float = Field(description="percent below the running peak (0 at a new high)")


class EquityOut(BaseModel):
    points: list[EquityPoint]
    max_drawdown_pct: float


class Marker(BaseModel):
    time: int = Field(description="bar start, seconds since the epoch (UTC)")
    price: float
    kind: str = Field(description="entry, exit_win or exit_loss")


class BarsOut(BaseModel):
    symbol: str
    timeframe: str
    time: list[int] = Field(description="bar starts, seconds since the epoch (UTC)")
    open: list[float]
    high: list[float]
    low: list[float]
    close: list[float]
    volume: list[float]
    lines: dict[str, list[float | None]] = Field(description="each strategy line, one value per bar")
    markers: list[Marker]
    position: PositionOut | None = Field(description="the open position: entry, stop and target lines")


class RiskLimitOut(BaseModel):
    name: str
    value: float
    default: float
    minimum: float
    maximum: float
    source: str = Field(description="where the value comes from: built-in default, environment, /risk set")


class RiskOut(BaseModel):
    limits: list[RiskLimitOut]
    paused: bool
    portfolio_risk_pct: float
    max_portfolio_risk_pct: float
    day_loss_pct: float
    daily_loss_limit_pct: float
    open_trades: int
    max_open_trades: float


class ParamOut(BaseModel):
    name: str
    value: float
    default: float
    minimum: float | None
    maximum: float | None
    help: str


class StrategyOut(BaseModel):
    label: str
    name: str
    description: str
    params: list[ParamOut]
    trades: int
    pnl: float
    win_rate: float
    last_signal: str | None = Field(description="the last signal: side, symbol and what came of it")
    last_signal_time: datetime | None
    errors: list[str]


class ConfirmationOut(BaseModel):
    id: str
    prompt: str = Field(description="the exact action: symbols, quantities, order ids, values")
    expires_at: datetime
    expires_in: float = Field(
        description="seconds it stays valid from this answer: count down from it rather than from "
        "expires_at against a clock that may differ from the server's"
    )
    replaces: str = Field(
        "",
        description="set when a confirmation was refused because the state changed since its "
        "question: why it was not done (this new question replaces it)",
    )


class RiskSetIn(BaseModel):
    name: str = Field(examples=["max_open_trades"])
    value: float = Field(examples=[3])


class OrderIn(BaseModel):
    side: str = Field(pattern="^(buy|sell)$", examples=["buy"])
    symbol: str = Field(min_length=1, max_length=20, examples=["AAPL"])
    qty: str = Field(description="a positive number; for a sell also 'all'", examples=["10"])


class ActionOut(BaseModel):
    text: str = Field(description="what the bot answered, as Telegram and the console show it")
    confirmation: ConfirmationOut | None = Field(
        description="set when the action waits for POST /api/v1/confirmations/{id}"
    )


class HealthOut(BaseModel):
    ok: bool
    role: str = Field(description="active (holds the trading lease) or standby")
    version: str


class PeriodOut(BaseModel):
    start: datetime = Field(description="the period's first instant (UTC)")
    label: str = Field(examples=["2026-03-02", "2026-W10", "2026-03"])
    pnl: float = Field(
        description="realized: the P&L of the trades that exited in the period, after commission"
    )
    trades: int
    wins: int = Field(description="trades with a P&L above zero")
    start_equity: float | None = Field(description="equity when the period began; null before any snapshot")
    return_pct: float | None = Field(description="pnl as a percentage of start_equity")

    @classmethod
    def of(cls, p: PeriodProfit) -> PeriodOut:
        return cls(
            start=p.start,
            label=p.label,
            pnl=p.pnl,
            trades=p.trades,
            wins=p.wins,
            start_equity=p.start_equity,
            return_pct=p.return_pct,
        )


class ProfitOut(BaseModel):
    period: Period
    periods: list[PeriodOut] = Field(description="newest first, periods without trades included")
    pnl: float = Field(description="the sum over these periods")
    trades: int


class LogLineOut(BaseModel):
    seq: int = Field(description="1, 2, 3... in the order logged since the process started")
    time: datetime = Field(description="the wall clock, UTC (not the simulated market's clock)")
    level: str = Field(description="DEBUG, INFO, WARNING, ERROR or CRITICAL")
    logger: str
    message: str = Field(description="as the log files have it: every configured secret masked")


class LogsOut(BaseModel):
    lines: list[LogLineOut] = Field(description="oldest first")
    last_seq: int = Field(description="the newest line's seq at any level: ask ?after= this next")
    kept: int = Field(description="how many lines the server keeps in memory (older ones are gone)")
