"""Read-only answers of the service's public API: what /status, /pnl, /risk and friends show.

Named dataclasses rather than dicts, so the console, Telegram and the tests read the same object.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, TypeVar

from bot.domain import Order, OutcomeStatus, Position, StopCover, TradingState

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class EquityHistory:
    """The equity curve as /equity draws it: each UTC day before the newest ``detail`` snapshots
    as its closing point (with the day's high, for the running peak), those snapshots in full; and
    the deepest drawdown of the whole curve, from the running totals."""

    points: tuple[tuple[datetime, float, float], ...]  # time, equity, highest since the previous point
    max_drawdown_pct: float
    detail: int


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list read newest first: at most the page size of ``items``, and the cursor
    of the next (older) page, ``next_before``: the id of the last item shown, None when there are
    no older ones. Asking for ``before=next_before`` continues exactly where this page stopped,
    whatever was added meanwhile (new rows are newer: they go on page one)."""

    items: list[T]
    next_before: int | None


@dataclass(frozen=True, slots=True)
class Pause:
    """A pause outlives the run that made it: who paused, when, and what it has held back."""

    since: datetime | None
    by: str
    blocked: int = 0  # strategy entries blocked since (counted, not alerted one by one)


@dataclass(frozen=True, slots=True)
class StatusView:
    mode: str  # sim, paper, live
    broker: str
    paused: bool
    trading_state: TradingState
    equity: float
    cash: float
    positions: int
    open_orders: int
    last_tick: datetime | None
    data_problems: dict[str, str]  # symbol -> why it was skipped on the last tick
    symbols: tuple[str, ...]
    strategies: tuple[str, ...]
    timeframe: str
    now: datetime
    clock_speed: float = 1.0
    real_now: datetime | None = None  # the wall clock, when ``now`` is the simulated market's clock
    pause: Pause | None = None  # set while paused
    instance: str = ""  # this process and the trading lease: active, standby (who trades), shutting down
    limits: dict[str, float] = field(default_factory=dict)  # the risk limits in force
    limit_origins: dict[str, LimitOrigin] = field(default_factory=dict)
    # Equity now minus at the UTC day's start (``PnlReport.today_pnl``, without reading every trade).
    today_pnl: float = 0.0
    books_behind: str | None = None  # why the books miss what the broker has (no entries until reconciled)
    holdings: tuple[Position, ...] = ()  # the positions, priced as ``equity`` is (one snapshot)
    # Every position's stop as the broker has it (the invariant).
    protection: tuple[StopCover, ...] = ()
    protection_error: str = ""  # why the stops could not be read at the broker ("" when they were)


@dataclass(frozen=True, slots=True)
class StrategyPnl:
    strategy: str
    trades: int
    pnl: float
    win_rate: float


@dataclass(frozen=True, slots=True)
class PnlReport:
    today_pnl: float  # equity change since the start of the UTC day
    today_realized: float
    total_realized: float
    unrealized: float
    equity: float
    starting_equity: float | None
    return_pct: float
    sharpe: float | None  # None until the equity history is long enough to mean something
    max_drawdown_pct: float
    win_rate: float
    trades: int
    per_strategy: tuple[StrategyPnl, ...] = ()
    sortino: float | None = None  # like sharpe
    history: str = ""  # when sharpe is None: how much equity history there is so far


@dataclass(frozen=True, slots=True)
class LimitOrigin:
    """Where a risk limit in force came from: the configuration (``source``: default, .env or
    environment, giving ``configured``), or a ``/risk set`` override by ``by`` at ``at``."""

    source: str
    configured: float
    by: str = ""
    at: datetime | None = None

    @property
    def overridden(self) -> bool:
        return self.at is not None or bool(self.by)


@dataclass(frozen=True, slots=True)
class RiskView:
    limits: dict[str, float]
    defaults: dict[str, float]  # the configured values (environment, .env or default)
    bounds: dict[str, tuple[float, float]]
    paused: bool
    day_loss_pct: float  # how far equity is below the day's start (negative: above)
    portfolio_risk_pct: float
    open_trades: int
    origins: dict[str, LimitOrigin] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SignalRecord:
    """A strategy's signal as recorded, with what came of it (placed, blocked: why, duplicate...)."""

    strategy: str
    symbol: str
    side: str
    bar_time: datetime
    price: float
    outcome: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class OrderOutcome:
    """What happened to one requested order: placed (maybe filled), blocked, duplicate, failed..."""

    status: OutcomeStatus
    symbol: str
    message: str
    order: Order | None = None


@dataclass(frozen=True, slots=True)
class TickReport:
    started: datetime
    finished: datetime
    signals: int = 0
    orders: list[OrderOutcome] = field(default_factory=list)
    data_problems: dict[str, str] = field(default_factory=dict)
    strategy_errors: dict[str, str] = field(default_factory=dict)
