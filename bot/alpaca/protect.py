"""Protective orders at Alpaca: placing them so none is ever silently dropped, and the crypto guard.

**Placing.** ``place_protective`` sends a stop/target order under a deterministic client id. If
Alpaca answers 422 "client_order_id must be unique", the order under that id is looked up: still
working, it is adopted; filled, it is returned as it is; canceled, expired or rejected (a stop
canceled earlier, then re-armed after a restart under the same id), a new id is used and the
caller is told, for an alert. A client id is unique forever at Alpaca, even after a cancel
(orders.md: "Each order has a unique identifier provided by the client").

**Stocks** carry their stop and target as a bracket's legs. When they must be put back (an exit
refused after the legs were canceled, a partial sell that canceled them, a reconciliation that
finds none working), an OCO sell for the quantity held replaces them (orders.md, "OCO Orders":
type limit, ``take_profit.limit_price`` and ``stop_loss.stop_price``), or a lone GTC stop when
no target is on record.

**Crypto** takes no brackets or OCO (orders.md, "crypto orders not allowed for advanced
order_class"). After a crypto entry fills, a GTC stop-limit sell guards the stop at Alpaca (it
works while the bot is down; its limit sits ``CRYPTO_STOP_LIMIT_SLIPPAGE`` below the stop); the
target is watched on every sync against the latest trade price, which then cancels the stop and
sells at market. A take-profit limit cannot rest beside the stop: the open stop holds the coins
("insufficient balance", see ``bot.alpaca.rules``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from alpaca.trading.enums import OrderClass, TimeInForce
from alpaca.trading.enums import OrderSide as AlpacaSide
from alpaca.trading.requests import (
    LimitOrderRequest,
    MarketOrderRequest,
    StopLimitOrderRequest,
    StopLossRequest,
    StopOrderRequest,
    TakeProfitRequest,
)

from bot.alpaca.convert import STOP_TYPES, as_float, is_open, status
from bot.alpaca.rules import floor_qty
from bot.brokers.base import BrokerError, OrderRejected
from bot.domain import ExitReason, OrderStatus, client_order_id
from bot.risk import QtyRules

log = logging.getLogger(__name__)

CRYPTO_STOP_LIMIT_SLIPPAGE = 0.01


class Venue(Protocol):
    """What protection needs from the broker (``AlpacaBroker`` implements it)."""

    def submit_raw(self, request: Any) -> Any: ...

    def find(self, client_order_id: str) -> Any | None: ...

    def order_by_id(self, order_id: str) -> Any: ...

    def held(self, symbol: str) -> float: ...

    def price(self, symbol: str) -> float | None: ...

    def release(self, symbol: str, orders: list[Any]) -> None: ...

    def grid(self, symbol: str, price: float) -> float: ...

    def qty_rules(self, symbol: str) -> QtyRules: ...


def place_protective(venue: Venue, build: Callable[[str], Any], ids: Callable[[int], str]) -> tuple[Any, str]:
    """Send ``build(ids(0))``; on a 422 "unique" whose order is no longer working, ``build(ids(1))``.
    Returns the working (or filled) order and a note for an alert ("" when nothing unusual)."""
    note = ""
    for attempt in range(3):
        coid = ids(attempt)
        raw = venue.submit_raw(build(coid))
        if raw is not None:
            return raw, note
        existing = venue.find(coid)
        if existing is None:
            raise BrokerError(
                f"protective order {coid}: Alpaca says it exists but cannot find it", retriable=True
            )
        if is_open(existing) or status(existing) is OrderStatus.FILLED:
            return existing, note
        note = (
            f"its earlier protective order {coid} is {existing.status.value} at Alpaca; a new one was placed"
        )
        log.warning("protective order %s is %s: placing a new one", coid, existing.status.value)
    raise BrokerError(f"protective order {ids(0)}: no usable client id after 3 tries", retriable=True)


def stock_protection_request(
    symbol: str, qty: float, stop: float | None, target: float | None, coid: str
) -> Any:
    """An OCO (stop and target), or a lone stop or target, GTC, selling ``qty``."""
    fields: dict[str, Any] = {
        "symbol": symbol,
        "qty": qty,
        "side": AlpacaSide.SELL,
        "time_in_force": TimeInForce.GTC,
        "client_order_id": coid,
    }
    if stop is not None and target is not None:
        return LimitOrderRequest(
            order_class=OrderClass.OCO,
            take_profit=TakeProfitRequest(limit_price=target),
            stop_loss=StopLossRequest(stop_price=stop),
            **fields,
        )
    if stop is not None:
        return StopOrderRequest(stop_price=stop, **fields)
    return LimitOrderRequest(limit_price=target, **fields)


def protect_stock(
    venue: Venue, symbol: str, qty: float, stop: float | None, target: float | None, key: str
) -> tuple[Any, str]:
    """Put a stock position's stop and target back at Alpaca. Raises when it cannot."""
    if qty <= 0 or (stop is None and target is None):
        raise OrderRejected(f"{symbol}: nothing to protect")
    stop = venue.grid(symbol, stop) if stop is not None else None
    target = venue.grid(symbol, target) if target is not None else None
    whole = float(int(qty))  # OCO legs, like brackets, take whole shares
    if whole <= 0:
        raise OrderRejected(
            f"{symbol}: {qty} shares is less than one whole share; Alpaca takes no fractional OCO"
        )

    def ids(n: int) -> str:
        return client_order_id("protect", symbol, key, stop, target, whole, n)

    return place_protective(
        venue, lambda coid: stock_protection_request(symbol, whole, stop, target, coid), ids
    )


# --------------------------------------------------------------------------- the crypto guard


@dataclass
class CryptoGuard:
    """A crypto position's protection, kept until the position is closed."""

    key: str  # the entry's client id, or a re-arm key after a restart
    entry_order_id: str  # "" when re-armed: protect what is held
    symbol: str
    stop: float | None
    target: float | None
    stop_client_order_id: str | None = None  # "" when there is no stop to place
    qty: float = 0.0

    def stop_ids(self, n: int) -> str:
        return f"{self.key}-sl" if n == 0 else client_order_id("guard", self.key, n) + "-sl"

    def exit_id(self, reason: ExitReason) -> str:
        return f"{self.key}-{'tp' if reason is ExitReason.TAKE_PROFIT else 'sl-mkt'}"


def crypto_stop_request(guard: CryptoGuard, stop: float, limit: float, coid: str) -> Any:
    return StopLimitOrderRequest(
        symbol=guard.symbol,
        qty=guard.qty,
        side=AlpacaSide.SELL,
        time_in_force=TimeInForce.GTC,  # crypto takes gtc or ioc only
        stop_price=stop,
        limit_price=limit,
        client_order_id=coid,
    )


def run_guard(venue: Venue, guard: CryptoGuard) -> tuple[bool, str]:
    """One sync's work for one guard. Returns (keep the guard, a note for an alert or "")."""
    note = ""
    if guard.stop_client_order_id is None:
        held = venue.held(guard.symbol)
        if guard.entry_order_id:
            entry = venue.order_by_id(guard.entry_order_id)
            if is_open(entry):
                return True, ""  # wait until the entry is final, then protect what filled
            guard.qty = min(as_float(entry.filled_qty) or 0.0, held)
        else:
            guard.qty = held
        # the fee came out of the coins: what is held sits off the pair's increment (0.09975 of 0.1)
        guard.qty = floor_qty(guard.qty, venue.qty_rules(guard.symbol).step)
        if guard.qty <= 0:
            return False, ""
        if guard.stop is None:
            guard.stop_client_order_id = ""
        else:
            stop = venue.grid(guard.symbol, guard.stop)
            limit = venue.grid(guard.symbol, stop * (1 - CRYPTO_STOP_LIMIT_SLIPPAGE))
            raw, note = place_protective(
                venue, lambda coid: crypto_stop_request(guard, stop, limit, coid), guard.stop_ids
            )
            guard.stop_client_order_id = str(raw.client_order_id)
            log.info(
                "crypto stop-limit %s guards %s %s at %s", raw.client_order_id, guard.qty, guard.symbol, stop
            )
    price = venue.price(guard.symbol)
    if price is None:
        return True, note
    stop_order = venue.find(guard.stop_client_order_id) if guard.stop_client_order_id else None
    if stop_order is not None and not is_open(stop_order):
        if status(stop_order) is OrderStatus.FILLED:
            return False, note  # the stop did its job
        guard.stop_client_order_id = None  # canceled outside the bot: place it again next time
        return (
            True,
            note + f"; {guard.symbol}'s stop was {stop_order.status.value} at Alpaca: placing it again",
        )
    reason = None
    if guard.target is not None and price >= guard.target:
        reason = ExitReason.TAKE_PROFIT
    elif stop_order is not None and price <= (as_float(stop_order.limit_price) or 0.0):
        reason = ExitReason.STOP_LOSS  # gapped through the stop-limit's limit: get out at market
    if reason is None:
        return True, note
    if stop_order is not None:
        venue.release(guard.symbol, [stop_order])
    request = MarketOrderRequest(
        symbol=guard.symbol,
        qty=guard.qty,
        side=AlpacaSide.SELL,
        time_in_force=TimeInForce.GTC,
        client_order_id=guard.exit_id(reason),
    )
    raw, more = place_protective(venue, lambda coid: request, lambda n: guard.exit_id(reason))
    log.info("crypto %s for %s at %s: market exit %s sent", reason.value, guard.symbol, price, raw.id)
    return False, note + more


def working_stop(orders: list[Any]) -> Any | None:
    return next((o for o in orders if o.type in STOP_TYPES and is_open(o)), None)
