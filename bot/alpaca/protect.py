"""Protective orders at Alpaca: the requests, and placing them so none is ever silently dropped.

**Placing.** ``place_protective`` sends a stop/target order under a client id made for this
attempt (the caller's key: the orders it replaces, or the newest order on the symbol, so each
attempt has ids of its own and a position can always be protected again). A failure that may
pass (429, 5xx, transport) is retried on the venue's retry policy. If Alpaca answers 422
"client_order_id must be unique", the order under that id is looked up: still working (open or
``held``), it is adopted; otherwise (filled, canceled, expired, rejected, replaced) it never counts
as protection and the next id is used, and the caller is told, for an alert. A client id is unique
forever at Alpaca, even after a cancel (orders.md: "Each order has a unique identifier provided by
the client").

**Stocks** carry their stop and target as a bracket's legs. When they must be put back (an exit
refused after the legs were canceled, a partial sell, a reconciliation that finds none working),
an OCO sell replaces them (orders.md, "OCO Orders": type limit, ``take_profit.limit_price`` and
``stop_loss.stop_price``), or a lone GTC stop when no target is on record.

**Crypto** takes no brackets or OCO (orders.md, "crypto orders not allowed for advanced
order_class"). After a crypto entry fills, a GTC stop-limit sell guards the stop at Alpaca (it
works while the bot is down; its limit sits ``CRYPTO_STOP_LIMIT_SLIPPAGE`` below the stop) for
what is held, floored to the pair's ``min_trade_increment`` (the fee comes out of the coins: a buy
of 0.1 BTC leaves about 0.09975); the target is watched on every sync (``bot.alpaca.protection``).
A take-profit limit cannot rest beside the stop: the open stop holds the coins ("insufficient
balance", see ``bot.alpaca.rules``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

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

from bot.alpaca.convert import is_open
from bot.brokers.base import BrokerError, OrderRejected
from bot.domain import ExitReason, client_order_id

if TYPE_CHECKING:
    from bot.alpaca.venue import AlpacaVenue

log = logging.getLogger(__name__)

CRYPTO_STOP_LIMIT_SLIPPAGE = 0.01
MAX_IDS = 20  # client ids tried for one protective order before giving up


def place_protective(
    venue: AlpacaVenue, build: Callable[[str], Any], ids: Callable[[int], str]
) -> tuple[Any, str]:
    """Send ``build(ids(0))`` (retried while it may pass); on a 422 "unique" whose order is not
    working, ``build(ids(1))``, and so on. Returns the working order (or the one a lost answer
    placed) and a note for an alert ("" when nothing unusual). Raises ``BrokerError``."""
    note = ""
    for n in range(MAX_IDS):
        coid = ids(n)
        raw = venue.policy.call(
            lambda coid=coid: venue.submit_raw(build(coid)),  # type: ignore[misc]
            retry_if=_may_pass,
            sleep=venue.http.sleep,
            what=f"protective order {coid}",
        )
        if raw is not None:
            return raw, note
        existing = venue.find(coid)
        if existing is None:
            raise BrokerError(
                f"protective order {coid}: Alpaca says it exists but cannot find it", retriable=True
            )
        if is_open(existing):
            return existing, note
        state = str(getattr(existing.status, "value", existing.status))
        note = f"its earlier protective order {coid} is {state} at Alpaca (it protects nothing); a new one was placed"
        log.warning("protective order %s is %s: placing a new one", coid, state)
    raise BrokerError(f"protective order {ids(0)}: no free client id after {MAX_IDS} tries", retriable=True)


def _may_pass(exc: BaseException) -> bool:
    """429, 5xx, a transport failure: the same request may pass on another try."""
    return isinstance(exc, BrokerError) and exc.retriable and not isinstance(exc, OrderRejected)


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
    venue: AlpacaVenue, symbol: str, qty: float, stop: float | None, target: float | None, key: str
) -> tuple[Any, str]:
    """Put a stock position's stop and target at Alpaca for ``qty`` whole shares, under ids of the
    attempt ``key``. Raises when it cannot."""
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
    exits: int = 0  # market exits tried so far: each attempt has ids of its own

    def stop_ids(self, n: int) -> str:
        return f"{self.key}-sl" if n == 0 else client_order_id("guard", self.key, n) + "-sl"

    def exit_id(self, reason: ExitReason, n: int = 0) -> str:
        """The client id of market exit attempt ``self.exits`` (try ``n`` of it)."""
        suffix = "tp" if reason is ExitReason.TAKE_PROFIT else "sl-mkt"
        if self.exits <= 1 and n == 0:
            return f"{self.key}-{suffix}"
        return f"{client_order_id('guard', self.key, 'exit', self.exits, n)}-{suffix}"


def market_sell(symbol: str, qty: float, coid: str, *, crypto: bool) -> Any:
    """A market sell: GTC for crypto (gtc or ioc only), a day order for stocks (fractions allowed)."""
    return MarketOrderRequest(
        symbol=symbol,
        qty=qty,
        side=AlpacaSide.SELL,
        time_in_force=TimeInForce.GTC if crypto else TimeInForce.DAY,
        client_order_id=coid,
    )


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
