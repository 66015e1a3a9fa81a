"""The simulated exchange's fill rules, as pure functions.

``bot.brokers.sim`` (the exchange the bot trades on without Alpaca) and the portfolio
backtest (``bot.backtest.portfolio``) both call these, so a stop, a target, a fill price or a
buy the cash cannot pay for is decided the same way in both. Only numpy (and the domain's
enums) is imported.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from bot.domain import ExitReason, is_crypto

if TYPE_CHECKING:
    from bot.bars import Bars

EPSILON = 1e-9


def first_touch(
    bars: Bars, *, stop: float | None, target: float | None
) -> tuple[int, float, ExitReason] | None:
    """The first bar where a long position's stop or target is reached, the fill price and why.

    A bar that touches both counts as a stop (the conservative assumption); a bar that opens
    beyond a level fills at its open.
    """
    n = len(bars)
    if n == 0:
        return None
    stop_hits = bars.low <= stop if stop is not None else np.zeros(n, bool)
    target_hits = bars.high >= target if target is not None else np.zeros(n, bool)
    touched = np.flatnonzero(stop_hits | target_hits)
    if len(touched) == 0:
        return None
    i = int(touched[0])
    opening = float(bars.open[i])
    if stop is not None and stop_hits[i]:
        return i, min(opening, stop), ExitReason.STOP_LOSS
    if target is None:  # unreachable: only a level that is set can be touched
        return None
    return i, max(opening, target), ExitReason.TAKE_PROFIT


def fill_price(symbol: str, price: float) -> float:
    """The price an execution of ``symbol`` happens at when the market is at ``price``.

    Stocks trade on the exchange's tick grid: a cent at $1 and above, $0.0001 below (Alpaca
    refuses sub-penny prices there, alpaca-docs ``content/trading/orders.md``, "Sub-penny
    increments"), so a fill is rounded to the nearest tick (halves up) and a trade's P&L can be
    recomputed from the prices shown. Crypto prices are taken as they are.
    """
    if is_crypto(symbol) or not math.isfinite(price):
        return price
    ticks = 100 if price >= 1 else 10_000
    return math.floor(price * ticks + 0.5) / ticks


def buy_refusal(qty: float, price: float, cash: float, commission: float) -> str | None:
    """Why the exchange refuses a buy of ``qty`` at ``price`` (no margin: the cash must cover the
    notional plus commission), or None."""
    cost = qty * price * (1 + commission)
    if cost > cash + EPSILON:
        return f"insufficient cash: {cost:,.2f} needed, {cash:,.2f} available"
    return None
