"""Crypto at the fake Alpaca: asset look-ups, fees taken from what is received, buying power.

Rules and their sources:

- **Asset look-up** (``GET /v2/assets/{symbol}``). A pair is ``BTC/USD``, and a slash in a URL
  path is a path separator: alpaca-py#537 reports ``/v2/positions/BTC/USD`` answering 404 while
  ``/v2/positions/BTCUSD`` works, and nothing says the assets endpoint differs.
  ``slash_asset_404`` (default True, the harsher reading) makes ``/v2/assets/BTC/USD`` answer
  404; False answers it. The compact ``BTCUSD`` always answers, with ``"symbol": "BTC/USD"``
  (alpaca-docs ``content/trading/crypto-trading.md``: "where BTC/USD was previously referred to
  as BTCUSD. Our API has made proper changes to support the legacy convention").
- **Fees** (alpaca-docs ``content/crypto/activities.md``, "Crypto Fees": 25 bps at tier 1 via the
  Trading API, "charged on the credited crypto asset/fiat (what you receive) per trade"; "Buy
  ETH/USD, you receive ETH, the fee is denominated in ETH"; "Sell ETH/USD, you receive USD, the fee
  is denominated in USD"). A buy of 0.1 BTC leaves a position of 0.09975 while the order's
  ``filled_qty`` and its FILL activity say 0.1 (alpaca-py#374, Petersoj/alpaca-java#148). The coin
  fee is rounded up to 9 decimals (bennycode/trading-signals#1353 measured 0.001254903 executed,
  0.001251765 received: 0.000003138 = 0.0025 x 0.001254903 rounded up); a USD fee is rounded up to
  the cent (bennycode/trading-signals#1350: 0.1418... billed 0.15). Both leave at once: the
  position or the cash never holds the fee. ``crypto_fee_bps`` sets the rate (every execution is
  charged it: the newer maker/taker schedule, alpaca.markets/support crypto-maker-taker FAQ, bills
  takers 25 bps at tier 1 and resting makers 15; the fake charges the higher rate on both).
- **CFEE activities** (same page): "Fees are currently calculated and posted end of day. If you
  query on same day of trade you might not get results." One ``CFEE`` row per execution, listed
  by ``GET /v2/account/activities/CFEE`` (and ``/v2/account/activities?activity_types=CFEE``)
  once its New York day has ended on the fake's clock; shaped as the page's example (``qty``
  negative in the coin, ``net_amount`` "0"; a USD fee as ``net_amount`` negative, ``qty`` "0": the
  fake's reading, no public example shows one). No ``order_id``: a fee cannot be matched to its
  order (bennycode/trading-signals#1350).
- **Buying power** (``content/trading/crypto-trading.md``, "Margin and Short Selling":
  "Cryptocurrencies are non-marginable ... orders are evaluated against
  ``non_marginable_buying_power``"). ``non_marginable_buying_power`` is the cash less what open
  buy orders hold; a crypto buy beyond it is refused with 403 "insufficient balance for USD
  (requested: X, available: Y)" (the wording of the coin refusal, issue 9's review). A stock buy
  is checked against ``buying_power`` (cash times the account's multiplier).
"""

from __future__ import annotations

import math
import uuid
from datetime import datetime, time, timedelta
from decimal import ROUND_CEILING, Decimal
from typing import TYPE_CHECKING, Any

from tests.fakes.alpaca.market import NEW_YORK
from tests.fakes.alpaca.orders import FakeOrder, compact, iso, num

if TYPE_CHECKING:
    from tests.fakes.alpaca.server import FakeAlpaca

QUOTES = ("USDT", "USDC", "USD", "BTC")
COINS = {
    "AAVE", "AVAX", "BAT", "BCH", "BTC", "CRV", "DOGE", "DOT", "ETH", "GRT", "LINK", "LTC", "MKR",
    "PEPE", "SHIB", "SOL", "SUSHI", "TRUMP", "UNI", "USDC", "USDT", "XRP", "XTZ", "YFI",
}  # fmt: skip
COIN = Decimal("0.000000001")
CENT = Decimal("0.01")


def pair_of(fake: FakeAlpaca, name: str) -> str | None:
    """The pair ``name`` means (``BTC/USD`` for ``BTC/USD`` or ``BTCUSD``), or None for a stock."""
    if "/" in name:
        return name
    known = {compact(s): s for s in (*fake.assets, *fake.bars, *fake.prices, *fake.positions) if "/" in s}
    if name in known:
        return known[name]
    for quote in QUOTES:
        base = name[: -len(quote)]
        if name.endswith(quote) and base in COINS:
            return f"{base}/{quote}"
    return None


def asset_answer(fake: FakeAlpaca, name: str) -> tuple[int, Any]:
    """``GET /v2/assets/{name}``: a stock, a pair by its compact name, or (unless
    ``slash_asset_404``) by its slashed one."""
    if "/" in name and fake.slash_asset_404:
        return 404, {"code": 40410000, "message": f"asset not found for {name.split('/')[0]}"}
    pair = pair_of(fake, name)
    return 200, fake.asset(pair or name)


# ----------------------------------------------------------------------------- fees


def _up(value: Decimal, step: Decimal) -> Decimal:
    return (value / step).to_integral_value(rounding=ROUND_CEILING) * step


def settle(fake: FakeAlpaca, order: FakeOrder, qty: float, price: float) -> tuple[float, float]:
    """What one execution does to the position (signed quantity) and to the cash, fees taken."""
    if not order.is_crypto:
        signed = qty if order.side == "buy" else -qty
        return signed, -signed * price
    rate = Decimal(str(fake.crypto_fee_bps)) / Decimal(10_000)
    exact = Decimal(repr(qty))
    if order.side == "buy":
        fee = _up(exact * rate, COIN)
        _owe(fake, order, coin=fee, price=price)
        return float(exact - fee), -qty * price
    notional = Decimal(repr(qty)) * Decimal(repr(price))
    fee = _up(notional * rate, CENT)
    _owe(fake, order, usd=fee, price=price)
    return -qty, float(notional - fee)


def _owe(
    fake: FakeAlpaca, order: FakeOrder, *, price: float, coin: Decimal = Decimal(0), usd: Decimal = Decimal(0)
) -> None:
    now = fake.clock.now()
    day = now.astimezone(NEW_YORK).date()
    fake.crypto_fees.append(
        {
            "id": f"{day:%Y%m%d}000000000::{uuid.uuid4()}",
            "activity_type": "CFEE",
            "date": day.isoformat(),
            "net_amount": num(-float(usd)) if usd else "0",
            "description": "Coin Pair Transaction Fee (USD)"
            if usd
            else "Coin Pair Transaction Fee (Non USD)",
            "symbol": compact(order.symbol),
            "qty": num(-float(coin)) if coin else "0",
            "price": num(price),
            "status": "executed",
            "_posted_at": iso(datetime.combine(day + timedelta(days=1), time(0), NEW_YORK)),
        }
    )


def fee_activities(fake: FakeAlpaca) -> list[dict[str, Any]]:
    """The CFEE rows whose day has ended on the fake's clock, newest first."""
    now = iso(fake.clock.now())
    rows = [r for r in fake.crypto_fees if r["_posted_at"] <= now]
    return [{k: v for k, v in r.items() if not k.startswith("_")} for r in reversed(rows)]


# ----------------------------------------------------------------------------- buying power


def open_buys(fake: FakeAlpaca) -> float:
    """What open buy orders hold of the cash (their limit, or the last price for market orders)."""
    held = 0.0
    for order in fake.all_orders():
        if order.side == "buy" and order.is_open and order.parent is None:
            held += order.remaining * (order.limit_price or fake.last_price(order.symbol))
    return held


def non_marginable_buying_power(fake: FakeAlpaca) -> float:
    return max(fake.cash - open_buys(fake), 0.0)


def buy_refusal(fake: FakeAlpaca, symbol: str, qty: float, price: float) -> tuple[int, Any] | None:
    """403 when a buy needs more than the buying power its asset class may use."""
    cost = qty * price
    if "/" in symbol:
        available = non_marginable_buying_power(fake)
        if cost > available + 1e-9:
            quote = symbol.split("/")[1]
            message = f"insufficient balance for {quote} (requested: {cost:g}, available: {available:g})"
            return 403, {"code": 40310000, "message": message}
        return None
    if cost > max(fake.cash, 0.0) * float(fake.multiplier) + 1e-9 or math.isnan(cost):
        return 403, {"code": 40310000, "message": "insufficient buying power"}
    return None
