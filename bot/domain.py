"""Domain types shared by every part of tradebot. No I/O here.

Commands are imperative (``OrderIntent``), events are past tense (``EventKind.ORDER_FILLED``).
Broker adapters and the storage repository both translate into these types, so nothing
outside ``bot/brokers`` sees an alpaca-py object and nothing outside ``storage`` sees a row.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"


class OrderStatus(StrEnum):
    PENDING_SUBMIT = "pending_submit"  # written before the broker is called (write-ahead)
    SUBMIT_FAILED = "submit_failed"  # transport failed and the broker has no such order
    NEW = "new"
    ACCEPTED = "accepted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    REJECTED = "rejected"  # the broker said no
    EXPIRED = "expired"

    @property
    def is_open(self) -> bool:
        return self in _OPEN_STATUSES


_OPEN_STATUSES = frozenset(
    {OrderStatus.PENDING_SUBMIT, OrderStatus.NEW, OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED}
)


class TradingState(StrEnum):
    """What the bot does with new entries now (exits, stops and targets run in every state but standby)."""

    ACTIVE = "active"  # trading
    PAUSED = "paused"  # /pause: no new entries until /resume
    HALTED = "halted"  # the daily loss limit was reached: no new entries until the next UTC day
    STANDBY = "standby"  # another instance holds the trading lease: this one does not trade


class OutcomeStatus(StrEnum):
    """What became of one requested order (``views.OrderOutcome``)."""

    PLACED = "placed"  # the broker accepted it
    BOOKS_BEHIND = "books_behind"  # the broker accepted it, our books failed to record it (yet)
    FILLED = "filled"  # ... and it filled at once
    BLOCKED = "blocked"  # not sent: a risk check, the market hours, the lease, bad input
    DUPLICATE = "duplicate"  # its client_order_id was placed before: not sent again
    REJECTED = "rejected"  # the broker refused it
    FAILED = "failed"  # the transport failed and the broker has no such order: may be sent again
    IGNORED = "ignored"  # nothing to do (already holding, no position to exit)
    CANCELED = "canceled"  # /cancel: what was left of a working order is canceled at the broker


class ExitReason(StrEnum):
    SIGNAL = "signal"
    STOP_LOSS = "stop_loss"
    TAKE_PROFIT = "take_profit"
    MANUAL = "manual"
    FLATTEN = "flatten"
    END_OF_DATA = "end_of_data"  # backtest only: closed at the last bar


def is_crypto(symbol: str) -> bool:
    """Crypto pairs are written with a slash (``BTC/USD``), as Alpaca's orders and data use."""
    return "/" in symbol


def client_order_id(*parts: object) -> str:
    """A deterministic order id: the same parts always give the same id.

    For strategy orders the parts are (strategy, symbol, bar time, side), so a retried,
    replayed or duplicated signal maps to an order that already exists and is never sent twice.
    """
    key = "|".join(p.isoformat() if isinstance(p, datetime) else str(p) for p in parts)
    digest = hashlib.sha256(key.encode()).hexdigest()[:24]
    prefix = "".join(ch for ch in str(parts[0]) if ch.isalnum())[:12] if parts else ""
    return f"tb-{prefix or 'x'}-{digest}"


@dataclass(frozen=True, slots=True)
class Signal:
    """What a strategy wants on a closed bar: enter (BUY) or exit (SELL) ``symbol``."""

    strategy: str
    symbol: str
    side: Side
    bar_time: datetime  # start of the closed bar the signal was computed on, UTC
    price: float  # that bar's close
    reason: str = ""
    stop_loss: float | None = None
    take_profit: float | None = None

    @property
    def client_order_id(self) -> str:
        return client_order_id(self.strategy, self.symbol, self.bar_time, self.side.value)


@dataclass(frozen=True, slots=True)
class OrderIntent:
    """An order the service has approved and sized, ready for a broker."""

    client_order_id: str
    symbol: str
    side: Side
    qty: float
    order_type: OrderType = OrderType.MARKET
    limit_price: float | None = None
    stop_loss: float | None = None
    take_profit: float | None = None
    strategy: str = "manual"
    reason: str = ""
    exit_reason: ExitReason | None = None  # set on orders that close a position


@dataclass(slots=True)
class Order:
    client_order_id: str
    symbol: str
    side: Side
    qty: float
    status: OrderStatus
    order_type: OrderType = OrderType.MARKET
    broker_order_id: str | None = None
    limit_price: float | None = None
    stop_loss: float | None = None
    take_profit: float | None = None
    filled_qty: float = 0.0
    filled_avg_price: float | None = None
    strategy: str = "manual"
    reason: str = ""
    exit_reason: ExitReason | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Fill:
    """An execution reported by a broker. ``fill_id`` is unique per execution at that broker."""

    fill_id: str
    client_order_id: str
    symbol: str
    side: Side
    qty: float
    price: float
    time: datetime
    commission: float = 0.0  # in the account's currency (a fee paid in coins, at the fill's price)
    exit_reason: ExitReason | None = None  # set when a protective stop or target filled
    fee_qty: float = 0.0  # of ``qty``, what the broker kept as its fee: the position grows by the rest


@dataclass(frozen=True, slots=True)
class Position:
    symbol: str
    qty: float
    avg_price: float
    market_price: float | None = None
    stop_loss: float | None = None
    take_profit: float | None = None
    strategy: str = "manual"
    opened_at: datetime | None = None

    @property
    def market_value(self) -> float:
        return self.qty * (self.market_price if self.market_price is not None else self.avg_price)

    @property
    def unrealized_pnl(self) -> float:
        if self.market_price is None:
            return 0.0
        return (self.market_price - self.avg_price) * self.qty

    @property
    def risk_to_stop(self) -> float:
        """What the position would lose from its current price if its stop were hit (0 if none)."""
        if self.stop_loss is None:
            price = self.market_price if self.market_price is not None else self.avg_price
            return abs(self.qty) * price  # no stop: all of it is at risk
        price = self.market_price if self.market_price is not None else self.avg_price
        return max(0.0, (price - self.stop_loss) * self.qty)


class CoverState(StrEnum):
    """One position's protection at the broker (the invariant: a working stop for its whole quantity)."""

    PROTECTED = "protected"  # working stops (a held one counts) cover every share that can carry one
    DUST = "dust"  # too small for any stop the broker takes (a crypto remainder, a fraction of a share)
    UNPROTECTED = "unprotected"  # some or all of it has no working stop
    EXCESS = "excess"  # stops for more than is held: a fall would sell into a short
    SHORT = "short"  # tradebot never sells short: no stop protects this; close it


@dataclass(frozen=True, slots=True)
class StopCover:
    """The invariant for one position, as read at the broker: what is held, what working stops
    cover (held stop legs, a working bracket entry's legs for what it filled, a working exit)."""

    symbol: str
    qty: float  # held at the broker; negative: short
    covered: float  # the quantity working stops (or a working exit) will sell
    stop: float | None
    target: float | None
    state: CoverState
    note: str = ""  # how it is covered, or what is wrong, in words

    @property
    def ok(self) -> bool:
        return self.state in (CoverState.PROTECTED, CoverState.DUST)


@dataclass(frozen=True, slots=True)
class Trade:
    """A closed round trip."""

    symbol: str
    strategy: str
    qty: float
    entry_time: datetime
    entry_price: float
    exit_time: datetime
    exit_price: float
    pnl: float
    exit_reason: str
    commission: float = 0.0


@dataclass(frozen=True, slots=True)
class Account:
    cash: float
    equity: float
    buying_power: float
    currency: str = "USD"


class EventKind(StrEnum):
    ORDER_PLACED = "order_placed"
    ORDER_FILLED = "order_filled"
    ORDER_REJECTED = "order_rejected"
    ORDER_CANCELED = "order_canceled"
    RISK_BLOCKED = "risk_blocked"
    STOP_HIT = "stop_hit"
    TARGET_HIT = "target_hit"
    STRATEGY_ERROR = "strategy_error"
    ORDER_FAILED = "order_failed"  # the order path raised (the broker's state may be unknown)
    CYCLE_FAILED = "cycle_failed"  # an engine cycle raised
    RECONCILIATION_FAILED = "reconciliation_failed"
    BOOKS_BEHIND = "books_behind"  # an order was placed, the books failed to record it: no entries
    BOOKS_CAUGHT_UP = "books_caught_up"  # a reconciliation brought them back: entries allowed again
    LEASE_LOST = "lease_lost"  # another instance took over trading
    DATABASE_DOWN = "database_down"  # the database failed under a running bot (bot/outage.py)
    DATABASE_BACK = "database_back"  # ... and answers again
    DATA_OUTAGE = "data_outage"
    DATA_RECOVERED = "data_recovered"
    PAUSED = "paused"
    RESUMED = "resumed"
    RISK_CHANGED = "risk_changed"
    RECONCILE_DIFF = "reconcile_diff"
    BROKER_ERROR = "broker_error"  # the broker failed or reported a problem
    # A position's stop at the broker: put back, or missing (no alert group: always sent).
    PROTECTION = "protection"
    DAILY_SUMMARY = "daily_summary"
    UNAUTHORIZED = "unauthorized"
    STARTED = "started"
    STOPPED = "stopped"
    INFO = "info"


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Event:
    kind: EventKind
    message: str
    time: datetime
    severity: Severity = Severity.INFO
    symbol: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    id: int | None = None  # set once stored
