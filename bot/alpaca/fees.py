"""Alpaca's crypto fees, booked on each fill: Alpaca's orders and FILL activities show none.

alpaca-docs ``content/crypto/activities.md``, "Crypto Fees": the fee is "charged on the credited
crypto asset/fiat (what you receive) per trade", 25 bps at tier 1 via the Trading API. So:

- a **buy** pays in the coin: 0.1 BTC bought leaves 0.09975 BTC (alpaca-py#374). The fill keeps
  its quantity (the order's, 0.1) and carries ``fee_qty`` (0.00025, rounded up to 9 decimals as
  Alpaca rounds it, bennycode/trading-signals#1353), so the books hold what Alpaca holds; its
  ``commission`` is that fee's value at the fill's price;
- a **sell** pays in dollars: ``commission`` = notional x rate, rounded up to the cent
  (bennycode/trading-signals#1350).

The rate is ``ALPACA_CRYPTO_FEE_BPS`` (25: tier 1, and the taker fee of the newer maker/taker
schedule; a higher tier makes the books hold a hair less than Alpaca, which reconciliation
corrects and says). Alpaca posts the real fees as ``CFEE`` activities at the end of the day,
without the order they belong to; stocks trade without commission.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import ROUND_CEILING, Decimal

from bot.domain import Fill, Side, is_crypto

DEFAULT_CRYPTO_FEE_BPS = 25.0
_COIN = Decimal("0.000000001")
_CENT = Decimal("0.01")


def _up(value: Decimal, step: Decimal) -> Decimal:
    return (value / step).to_integral_value(rounding=ROUND_CEILING) * step


def with_crypto_fee(fill: Fill, bps: float) -> Fill:
    """``fill`` with Alpaca's fee booked on it (a stock fill, or a zero rate, unchanged)."""
    if not is_crypto(fill.symbol) or bps <= 0:
        return fill
    rate = Decimal(str(bps)) / 10_000
    qty, price = Decimal(repr(fill.qty)), Decimal(repr(fill.price))
    if fill.side is Side.BUY:
        coins = _up(qty * rate, _COIN)
        return replace(fill, fee_qty=float(coins), commission=float(coins * price))
    return replace(fill, commission=float(_up(qty * price * rate, _CENT)))
