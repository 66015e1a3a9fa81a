"""Every table, in one module. Rows stay inside ``storage``: the repository maps them to domain types.

Times are stored as UTC; the repository hands out aware datetimes whatever the database returns.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index
from sqlmodel import Field, SQLModel


class OrderRow(SQLModel, table=True):
    __tablename__ = "orders"
    # The API lists orders newest first (by id), filtered by symbol or strategy (migration 0005).
    __table_args__ = (
        Index("ix_orders_symbol_id", "symbol", "id"),
        Index("ix_orders_strategy_id", "strategy", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    client_order_id: str = Field(index=True, unique=True, max_length=128)
    broker_order_id: str | None = Field(default=None, index=True)
    symbol: str
    side: str
    qty: float
    order_type: str = "market"
    limit_price: float | None = None
    stop_loss: float | None = None
    take_profit: float | None = None
    status: str = Field(index=True)
    filled_qty: float = 0.0
    filled_avg_price: float | None = None
    strategy: str = "manual"
    reason: str = ""
    exit_reason: str | None = None
    error: str | None = None
    created_at: datetime
    updated_at: datetime


class FillRow(SQLModel, table=True):
    __tablename__ = "fills"
    __table_args__ = (Index("ix_fills_time", "time"),)  # the last fill on record, after a restart

    id: int | None = Field(default=None, primary_key=True)
    fill_id: str = Field(index=True, unique=True)
    client_order_id: str = Field(index=True)
    symbol: str
    side: str
    qty: float
    price: float
    commission: float = 0.0
    exit_reason: str | None = None
    time: datetime


class PositionRow(SQLModel, table=True):
    __tablename__ = "positions"

    symbol: str = Field(primary_key=True)
    qty: float
    avg_price: float
    stop_loss: float | None = None
    take_profit: float | None = None
    strategy: str = "manual"
    opened_at: datetime
    last_price: float | None = None
    commission: float = 0.0  # paid so far on this position, charged to the trade on exit


class TradeRow(SQLModel, table=True):
    __tablename__ = "trades"
    # Newest first is (exit_time, id) descending, alone or within a symbol or strategy (0005).
    __table_args__ = (
        Index("ix_trades_exit_time_id", "exit_time", "id"),
        Index("ix_trades_symbol_exit_time_id", "symbol", "exit_time", "id"),
        Index("ix_trades_strategy_exit_time_id", "strategy", "exit_time", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    symbol: str
    strategy: str
    qty: float
    entry_time: datetime
    entry_price: float
    exit_time: datetime
    exit_price: float
    pnl: float
    commission: float = 0.0
    exit_reason: str


class TradeTotalRow(SQLModel, table=True):
    """Running totals of the closed trades of one strategy, updated in the transaction that books
    each trade (``repository.add_trade``), so /pnl never sums the whole history; checked against
    the trades, and rebuilt from them if they differ, at every start (``repository.totals``)."""

    __tablename__ = "trade_totals"

    strategy: str = Field(primary_key=True, max_length=200)
    trades: int = 0
    wins: int = 0  # P&L above 0
    pnl: float = 0.0


class EquityTotalRow(SQLModel, table=True):
    """Running statistics of the equity curve (one row), updated with each snapshot: the first and
    last point, the running peak and deepest drawdown, and the simple returns' count, mean, sum of
    squared deviations (Welford) and sum of squared losses (Sortino's downside)."""

    __tablename__ = "equity_totals"

    id: int = Field(default=1, primary_key=True)
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


class EquityDayRow(SQLModel, table=True):
    """The equity curve one UTC day at a time: its first and last snapshot and highest, kept with
    each snapshot, so /equity draws a year as 365 points and the recent days in full."""

    __tablename__ = "equity_days"

    day: str = Field(primary_key=True, max_length=10)  # YYYY-MM-DD, UTC
    open_time: datetime  # the day's first snapshot: where /profit's periods start from
    open: float
    close_time: datetime
    close: float
    high: float


class TradeDayRow(SQLModel, table=True):
    """The closed trades of one UTC exit day, added up as each is booked: /profit's days, weeks
    and months without reading the trades (checked and rebuilt at start with the other totals)."""

    __tablename__ = "trade_days"

    day: str = Field(primary_key=True, max_length=10)  # YYYY-MM-DD of the exit, UTC
    trades: int = 0
    wins: int = 0
    pnl: float = 0.0


class EquitySnapshotRow(SQLModel, table=True):
    __tablename__ = "equity_snapshots"

    id: int | None = Field(default=None, primary_key=True)
    time: datetime = Field(index=True)
    equity: float
    cash: float


class SignalRow(SQLModel, table=True):
    __tablename__ = "signals"

    id: int | None = Field(default=None, primary_key=True)
    strategy: str
    symbol: str = Field(index=True)
    side: str
    bar_time: datetime
    price: float
    reason: str = ""
    outcome: str = ""  # placed, blocked: <reason>, duplicate
    created_at: datetime


class EventRow(SQLModel, table=True):
    """The audit log, and the outbox alerts are delivered from."""

    __tablename__ = "events"
    # The audit log newest first within a kind, and a kind counted since a time (0005).
    __table_args__ = (Index("ix_events_kind_id", "kind", "id"), Index("ix_events_kind_time", "kind", "time"))

    id: int | None = Field(default=None, primary_key=True)
    time: datetime = Field(index=True)
    kind: str
    severity: str = "info"
    symbol: str | None = None
    message: str
    data: str = "{}"  # JSON


class SettingRow(SQLModel, table=True):
    """Small persistent state: paused, risk overrides, the last cycle, alert preferences."""

    __tablename__ = "settings"

    key: str = Field(primary_key=True)
    value: str  # JSON


class FeedCursorRow(SQLModel, table=True):
    """How far one consumer of the event feed has got: the id of the last event it delivered.

    ``consumer`` names it, transport first (``telegram:<chat id>``). Moved only forward, and only
    after the consumer delivered the events up to it (see ``bot/service/feed.py``).
    """

    __tablename__ = "feed_cursors"

    consumer: str = Field(primary_key=True, max_length=100)
    event_id: int
    updated_at: datetime


# --- the simulated exchange's own books (the broker side of the simulator) ---


class SimAccountRow(SQLModel, table=True):
    __tablename__ = "sim_account"

    id: int = Field(default=1, primary_key=True)
    cash: float
    starting_cash: float
    last_sync: datetime | None = None


class SimPositionRow(SQLModel, table=True):
    __tablename__ = "sim_positions"

    symbol: str = Field(primary_key=True)
    qty: float
    avg_price: float
    stop_loss: float | None = None
    take_profit: float | None = None
    entry_client_order_id: str = ""
    opened_at: datetime


class SimOrderRow(SQLModel, table=True):
    __tablename__ = "sim_orders"

    id: int | None = Field(default=None, primary_key=True)
    client_order_id: str = Field(index=True, unique=True, max_length=128)
    symbol: str
    side: str
    qty: float
    order_type: str = "market"
    limit_price: float | None = None
    stop_loss: float | None = None
    take_profit: float | None = None
    status: str
    filled_qty: float = 0.0
    filled_avg_price: float | None = None
    commission: float = 0.0
    exit_reason: str | None = None
    reported: bool = False  # its latest status handed to the client through sync()
    submitted_at: datetime
    filled_at: datetime | None = None
    reject_reason: str | None = None


class SimFillRow(SQLModel, table=True):
    """One execution at the simulated exchange, reported until the client acknowledges it."""

    __tablename__ = "sim_fills"

    id: int | None = Field(default=None, primary_key=True)
    fill_id: str = Field(index=True, unique=True, max_length=200)
    client_order_id: str = Field(index=True, max_length=128)
    qty: float
    price: float
    commission: float = 0.0
    time: datetime
    acknowledged: bool = False


# --- which process may trade ---


class LeaseRow(SQLModel, table=True):
    """One row per lease: the process named in ``holder`` trades until ``expires_at`` unless it renews.

    Times are Unix seconds from the database's clock on Postgres and the host's clock on SQLite
    (see ``bot/lease.py``).
    """

    __tablename__ = "leases"

    name: str = Field(primary_key=True, max_length=64)
    holder: str = Field(max_length=200)  # host/pid/random of the holding process
    acquired_at: float
    renewed_at: float
    expires_at: float
