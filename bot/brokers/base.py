"""The broker interface. The simulator and Alpaca implement it; only the service calls it.

Every method is synchronous and may block on I/O: async callers run the service in a
worker thread (``asyncio.to_thread``), never on the event loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable

from bot.domain import Account, Fill, Order, OrderIntent, Position, StopCover
from bot.risk import QtyRules


class BrokerError(Exception):
    """The broker failed or refused. ``retriable`` is True for transport failures, where the
    order may or may not exist at the broker: look it up by client id before anything else."""

    def __init__(self, message: str, *, retriable: bool = False) -> None:
        super().__init__(message)
        self.retriable = retriable


class OrderRejected(BrokerError):
    """The broker received the order and said no; the reason is its words."""


class AuthenticationError(BrokerError):
    """The credentials are wrong. Never fall back to another broker on this."""


@dataclass(frozen=True, slots=True)
class BrokerUpdate:
    """What changed at the broker since the last ``sync``: new fills, order status changes, and
    problems the trader must hear about (e.g. a protective stop the broker refused)."""

    fills: list[Fill]
    orders: list[Order]
    alerts: list[str] = field(default_factory=list)


@runtime_checkable
class Broker(Protocol):
    name: str  # "sim", "alpaca"
    mode: str  # "sim", "paper" or "live"

    def account(self) -> Account: ...

    def positions(self) -> list[Position]:
        """Open positions as the broker sees them (the truth the database follows)."""
        ...

    def open_orders(self) -> list[Order]: ...

    def submit(self, intent: OrderIntent) -> Order:
        """Send an order. Raises ``OrderRejected`` when refused, ``BrokerError`` otherwise."""
        ...

    def get_order_by_client_id(self, client_order_id: str) -> Order | None: ...

    def cancel(self, client_order_id: str) -> Order:
        """Cancel what is left of an open order (what filled stays filled); the next ``sync``
        reports it ``canceled``. Returns the order as the broker has it afterwards; an order that
        is already final is returned as it is. Raises ``OrderRejected`` when there is no such order.
        """
        ...

    def sync(self, now: datetime) -> BrokerUpdate:
        """Advance to ``now`` (the simulator fills and triggers stops here) and report changes.

        Fills stay in every later update until ``acknowledge`` names them, so a crash between
        ``sync`` and recording loses nothing (the service skips fill ids it already has).
        """
        ...

    def acknowledge(self, fill_ids: list[str]) -> None:
        """The service has durably recorded these fills: stop reporting them."""
        ...

    def report_fills_since(self, since: datetime | None) -> None:
        """Called once before the first ``sync`` after a start: the books hold every fill up to
        ``since`` (their last fill, or their oldest open order; None when they hold neither).
        A broker that reads fills back from a history (Alpaca's account activities) reads from
        there on, so fills from a long outage are reported too."""
        ...

    def ensure_protection(self, positions: list[Position]) -> list[str]:
        """Every cycle and at reconciliation: check at the broker that every position it holds has
        a working stop for its whole quantity, and repair what does not (``positions``: the books,
        for the stop and target levels the broker does not show). Returns what was done or is
        wrong, for alerts."""
        ...

    def check_protection(self, positions: list[Position]) -> list[StopCover]:
        """The same invariant, read only, one ``StopCover`` per position the broker holds: for
        /status, the web status and ``tradebot doctor``."""
        ...

    def is_tradable_now(self, symbol: str, now: datetime) -> bool:
        """False while ``symbol``'s market is closed (stocks outside hours; crypto is 24/7)."""
        ...

    def latest_price(self, symbol: str, now: datetime) -> float | None: ...

    def qty_rules(self, symbol: str) -> QtyRules:
        """The quantities this broker takes for ``symbol``: its smallest order, its increment, and
        whether it takes a sell of a whole position below that (else such a remainder is dust
        that cannot be sold). The service checks a trader's order against them before asking."""
        ...
