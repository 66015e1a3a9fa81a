"""What Alpaca would refuse, checked before sending, so the trader reads why in plain words.

Pure functions over an asset and the working orders; each rule names its source (the same
sources ``tests/fakes/alpaca`` cites for the fake's refusals):

- **Prices** (alpaca-docs ``content/trading/orders.md``, "Sub-penny increments"): a stock price of
  $1 or more takes 2 decimals, below $1 4 decimals. Crypto prices follow the pair's
  ``price_increment`` (the asset object, docs.alpaca.markets "Crypto Spot Trading").
- **Quantities**: crypto at least ``min_order_size`` and a multiple of ``min_trade_increment``;
  fractional stock quantities only on fractionable assets, simple market/day orders
  (orders.yaml: "Can be fractionable for only market and day order types"); brackets whole shares.
- **Wash trades**: a simple order is refused while an opposite-side order on the same symbol is
  open ("potential wash trade detected. use complex orders", 403/40310000; forum.alpaca.markets
  threads 13817 and 18200; 422/42210000 in Petersoj/alpaca-java#145). A complex order (a bracket
  entry) is what the refusal points to: it is not checked here.
- **Quantity held by open orders**: a sell beyond the position's ``qty_available`` (the position
  less what open sells hold) is refused ("insufficient qty available for order", Alpaca-API#90,
  QuantConnect/Lean#3875).
"""

from __future__ import annotations

import math
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Any

from bot.alpaca.convert import as_float, is_open, qty_key
from bot.brokers.base import OrderRejected

QTY_DECIMALS = 9


def price_step(price: float, *, crypto: bool, increment: float | None = None) -> float:
    """The price grid Alpaca accepts for ``price``."""
    if crypto:
        return increment if increment and increment > 0 else 0.01
    return 0.01 if price >= 1 else 0.0001


def round_price(price: float, step: float) -> float:
    """``price`` on Alpaca's grid ``step`` (nearest; halves away from zero)."""
    grid = Decimal(str(step))
    return float((Decimal(str(price)) / grid).quantize(Decimal(1), rounding=ROUND_HALF_UP) * grid)


def floor_qty(qty: float, step: float | None = None) -> float:
    """Round a quantity down to ``step`` (or to 9 decimals)."""
    grid = Decimal(str(step)) if step and step > 0 else Decimal(1).scaleb(-QTY_DECIMALS)
    floored = (Decimal(repr(qty)) / grid + Decimal("1e-9")).quantize(Decimal(1), rounding=ROUND_FLOOR)
    return float(floored * grid)


def is_multiple(value: float, step: float) -> bool:
    return (Decimal(repr(value)) % Decimal(str(step))) == 0


def check_tradable(what: str, symbol: str, asset: Any) -> None:
    if not asset.tradable or str(getattr(asset.status, "value", asset.status)) != "active":
        raise OrderRejected(f"{what}: Alpaca lists {symbol} as not tradable")


def crypto_qty(what: str, symbol: str, qty: float, asset: Any) -> float:
    """A crypto quantity floored to the pair's increment, refused below its minimum."""
    step = as_float(asset.min_trade_increment)
    floored = floor_qty(qty, step)
    minimum = as_float(asset.min_order_size)
    if floored <= 0:
        raise OrderRejected(f"{what}: rounds down to nothing at {symbol}'s quantity increment")
    if minimum and floored + 1e-12 < minimum:
        raise OrderRejected(f"{what}: below Alpaca's minimum order size of {qty_key(minimum)} for {symbol}")
    return floored


def stock_qty(what: str, symbol: str, qty: float, asset: Any, *, bracket: bool, market: bool) -> float:
    if float(qty).is_integer():
        return qty
    if bracket:
        raise OrderRejected(
            f"{what}: a stop-loss/take-profit bracket needs whole shares (Alpaca takes no fractional brackets)"
        )
    if not asset.fractionable:
        raise OrderRejected(f"{what}: {symbol} is not fractionable at Alpaca; use whole shares")
    if not market:
        raise OrderRejected(f"{what}: Alpaca takes fractional quantities on market orders only")
    return floor_qty(qty)


def check_positive(what: str, qty: float) -> None:
    if not math.isfinite(qty) or qty <= 0:
        raise OrderRejected(f"{what}: quantity must be positive")


def check_levels(what: str, *, stop: float | None, target: float | None, reference: float | None) -> None:
    """A long bracket's stop below and target above the price (orders.md, "Bracket Orders")."""
    if reference is None:
        return
    if stop is not None and stop >= reference:
        raise OrderRejected(f"{what}: stop-loss {stop:g} is not below the price {reference:g}")
    if target is not None and target <= reference:
        raise OrderRejected(f"{what}: take-profit {target:g} is not above the price {reference:g}")


def wash_conflict(buy: bool, working: list[Any]) -> Any | None:
    """The first open order on the other side, which would make Alpaca refuse this one."""
    for order in working:
        if is_open(order) and (str(order.side.value) == "buy") != buy:
            return order
    return None


def wash_message(what: str, symbol: str, other: Any) -> str:
    return (
        f"{what}: an open {other.side.value} order ({other.client_order_id}, {other.status.value}) for "
        f"{symbol} is still working; Alpaca refuses opposite-side orders as potential wash trades. "
        "Cancel it first"
    )


def sellable(what: str, symbol: str, qty: float, held: float) -> float:
    """An exit sells what is held: crypto buys pay their fee in the coin, so the position can be
    a hair smaller than the quantity bought."""
    if held <= 0:
        raise OrderRejected(f"{what}: no {symbol} position at Alpaca to sell (tradebot does not sell short)")
    if qty > held:
        if (qty - held) / qty > 0.01:
            raise OrderRejected(f"{what}: only {qty_key(held)} {symbol} held at Alpaca")
        return held
    return qty
