"""Crypto books net of Alpaca's fees, end to end: the service on a real database, alpaca-py's clients
against the strict fake, whose account charges the documented fees (``tests/fakes/alpaca/crypto.py``).

A buy of 0.1 BTC leaves 0.09975 BTC (the fee comes out of the coins); a sell's fee comes out of the
dollars, rounded up to the cent. Neither the order nor its FILL activity shows a fee, so the bot
books it from ``ALPACA_CRYPTO_FEE_BPS`` (25, tier 1): the position is what Alpaca holds, both legs
carry their commission, and a round trip's P&L is what the account's cash says, to the cent.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.domain import EventKind, Side
from tests.alpaca_world import AlpacaWorld, StreamThread
from tests.fakes.alpaca import FakeAlpaca

MONDAY = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)


@pytest.fixture
def world(db):
    with FakeAlpaca() as fake:
        fake.prices.update({"BTC/USD": 50_000.0})
        # BTC/USD as Alpaca lists it today: quantities to 9 decimals, so all that is held can be sold
        fake.set_asset("BTC/USD", min_order_size="0.000026", min_trade_increment="0.000000001")
        fake.illiquid.add("BTC/USD")  # the tests fill each order by hand, at the price they choose
        yield AlpacaWorld(fake, db, MONDAY)


def round_trip(world: AlpacaWorld, sell_at: float) -> None:
    bought = world.service.place_manual("BTC/USD", Side.BUY, 0.1, "msg-buy")
    assert bought.status == "placed", bought.message
    world.fake.fill(bought.order.client_order_id, price=50_000.0)
    world.service.sync()
    world.fake.prices["BTC/USD"] = sell_at
    sold = world.service.place_manual("BTC/USD", Side.SELL, None, "msg-sell")
    assert sold.status == "placed", sold.message
    world.fake.fill(sold.order.client_order_id, price=sell_at)
    world.service.sync()


def test_a_crypto_buy_books_the_coins_alpaca_holds_and_the_fee_as_commission(world):
    bought = world.service.place_manual("BTC/USD", Side.BUY, 0.1, "msg-buy")
    world.fake.fill(bought.order.client_order_id, price=50_000.0)
    world.service.sync()
    position = world.position("BTC/USD")
    assert position.qty == pytest.approx(0.09975, abs=1e-12) == world.fake.positions["BTC/USD"].qty
    order = world.order(bought.order.client_order_id)
    assert order.filled_qty == 0.1  # the order says what was bought, as Alpaca's does
    (fill,) = world.fills()
    assert (fill.qty, fill.commission) == (0.1, pytest.approx(12.5))  # 0.00025 BTC at 50,000
    assert world.service.reconcile() == []  # the books and the broker agree: nothing "corrected"
    assert not [e for e in world.service.recent_events(50) if e.kind is EventKind.RECONCILE_DIFF]


@pytest.mark.parametrize(
    ("sell_at", "pnl", "commission"),
    [
        # 0.09975 x 51,000 = 5,087.25; fee 12.718125 -> 12.72: cash -5,000 + 5,087.25 - 12.72
        (51_000.0, 74.53, 25.22),
        # up 120 a coin (+11.97), yet a loss once both fees are paid (12.5, and 12.498675 -> 12.50)
        (50_120.0, -13.03, 25.00),
    ],
)
def test_a_round_trips_pnl_is_what_the_accounts_cash_says(world, sell_at, pnl, commission):
    cash = world.fake.cash
    round_trip(world, sell_at)
    assert world.position("BTC/USD") is None and "BTC/USD" not in world.fake.positions
    (trade,) = world.trades()
    assert round(trade.pnl, 2) == round(world.fake.cash - cash, 2) == pnl
    assert trade.qty == pytest.approx(0.09975) and round(trade.commission, 2) == commission
    report = world.service.pnl()
    assert round(report.total_realized, 2) == pnl
    assert report.win_rate == (100.0 if pnl > 0 else 0.0)
    sold = [f for f in world.fills() if f.side == "sell"]
    assert [round(f.commission, 2) for f in sold] == [round(commission - 12.5, 2)]


def test_a_partial_crypto_sell_keeps_the_rest_net_of_the_buys_fee(world):
    bought = world.service.place_manual("BTC/USD", Side.BUY, 0.1, "msg-buy")
    world.fake.fill(bought.order.client_order_id, price=50_000.0)
    world.service.sync()
    sold = world.service.place_manual("BTC/USD", Side.SELL, 0.05, "msg-half")
    world.fake.fill(sold.order.client_order_id, price=52_000.0)
    world.service.sync()
    position = world.position("BTC/USD")
    assert position.qty == pytest.approx(0.04975, abs=1e-12) == world.fake.positions["BTC/USD"].qty
    (trade,) = world.trades()
    # half of the coins held carries half of the buy's fee; the sell pays 6.50 (2,600 x 0.0025)
    share = 12.5 * 0.05 / 0.09975
    assert trade.pnl == pytest.approx(2_000 * 0.05 - share - 6.5)
    assert world.service.reconcile() == []


def test_the_fee_is_booked_once_whichever_road_brings_the_fill(world):
    """The trading stream first, then the same execution in the FILL activities: one fill, one fee."""
    with StreamThread(world) as stream:
        bought = world.service.place_manual("BTC/USD", Side.BUY, 0.1, "msg-buy")
        world.fake.fill(bought.order.client_order_id, price=50_000.0)
        stream.wait_for(2)  # new, fill
        world.service.sync()
    (fill,) = world.fills()
    assert (fill.qty, fill.commission) == (0.1, pytest.approx(12.5))
    assert world.position("BTC/USD").qty == pytest.approx(0.09975, abs=1e-12)
