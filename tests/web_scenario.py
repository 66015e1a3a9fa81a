"""A trading history for the dashboard's browser tests, made the real way: strategies' signals and
a trader's orders through the service into the simulated exchange and the books (SQLite).

Five weeks of round trips by two strategies, some won and some lost, over two months (so the
daily, weekly and monthly profit tables each have several rows); today a closed trade, two open
positions, and a working order (the exchange fills at most ``PART`` per bar); then the market
moves for 20 minutes with no cycle since, so a page that mixed the last cycle's marks with
current prices would disagree with itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.app import App
from bot.clock import ManualClock
from bot.domain import Side, Signal
from tests.browser import PASSWORD
from tests.helpers import make_app

FIRST_DAY = datetime(2026, 1, 26, 15, 0, tzinfo=UTC)  # a Monday
# (days after FIRST_DAY, symbol, which strategy): one round trip of three hours each
ROUND_TRIPS = [
    (0, "BTC/USD", 0),
    (3, "ETH/USD", 1),
    (9, "BTC/USD", 1),
    (16, "ETH/USD", 0),
    (24, "BTC/USD", 0),
    (31, "ETH/USD", 1),
    (34, "BTC/USD", 0),
    (35, "ETH/USD", 0),  # today: 2026-03-02
]
PART = 1.0  # the exchange's liquidity: at most this much of one order per bar


@dataclass
class Scenario:
    app: App
    clock: ManualClock
    working: str  # the client order id of the order still working


def _bar(now: datetime) -> datetime:
    return now.replace(second=0, microsecond=0) - timedelta(minutes=1)


def build(db: Path, **settings: str) -> Scenario:
    clock = ManualClock(FIRST_DAY)
    app, _ = make_app(
        db,
        clock,
        TRADEBOT_SYMBOLS="AAPL,BTC/USD,ETH/USD",
        TRADEBOT_STRATEGIES="supertrend;bollinger",
        TRADEBOT_WEB_PORT="0",
        TRADEBOT_WEB_PASSWORD=PASSWORD,
        **settings,
    )
    labels = [s.label for s in app.strategies]
    for day, symbol, which in ROUND_TRIPS:
        clock.set(FIRST_DAY + timedelta(days=day))
        for side in (Side.BUY, Side.SELL):
            now = clock.now()
            price = app.broker.latest_price(symbol, now)
            outcome = app.service.on_signal(Signal(labels[which], symbol, side, _bar(now), price))
            assert outcome.status == "placed", outcome.message
            clock.advance(hours=3)
    for symbol, qty in (("AAPL", 12), ("BTC/USD", 0.05)):
        assert app.service.place_manual(symbol, Side.BUY, qty, f"seed-{symbol}", by="ann").status == "filled"
    app.broker.max_fill_qty = PART  # type: ignore[attr-defined]
    outcome = app.service.place_manual("ETH/USD", Side.BUY, 3 * PART, "seed-eth", by="ann")
    assert outcome.order is not None and outcome.order.status == "partially_filled", outcome
    clock.advance(minutes=20)  # the market moves; no cycle, no sync
    return Scenario(app, clock, outcome.order.client_order_id)
