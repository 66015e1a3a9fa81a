"""The simulated exchange filling in parts (``max_fill_qty``), and its executions kept across the
upgrade that gave them a table of their own (``sim_fills``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from bot.bars import Timeframe
from bot.brokers.rules import fill_price
from bot.brokers.sim import SimBroker
from bot.clock import ManualClock
from bot.data.synthetic import SyntheticMarket
from bot.domain import OrderIntent, OrderStatus, Side
from storage import migrate
from storage.db import Database

START = datetime(2026, 3, 2, 14, 30, 20, tzinfo=UTC)
MINUTE = Timeframe(60)


def exchange(url: str, clock: ManualClock, **kw) -> SimBroker:
    return SimBroker(Database(url), SyntheticMarket(), clock, timeframe=MINUTE, starting_cash=10_000, **kw)


def test_no_cap_by_default_fills_at_once(database_url):
    migrate.upgrade(Database(database_url))
    clock = ManualClock(START)
    broker = exchange(database_url, clock)
    assert broker.submit(OrderIntent("b1", "AAPL", Side.BUY, 30)).status is OrderStatus.FILLED
    assert [f.fill_id for f in broker.sync(clock.now()).fills] == ["sim-b1"]


def test_the_rest_of_a_market_order_fills_at_the_open_of_each_later_bar(database_url):
    migrate.upgrade(Database(database_url))
    clock = ManualClock(START)
    market = SyntheticMarket()
    broker = exchange(database_url, clock, max_fill_qty=4)
    broker.submit(OrderIntent("b1", "AAPL", Side.BUY, 10))
    clock.set(START + timedelta(minutes=5))
    fills = broker.sync(clock.now()).fills
    bar_open = [market.fetch(["AAPL"], MINUTE, START.replace(second=0) + timedelta(minutes=m), START.replace(second=0) + timedelta(minutes=m + 1))["AAPL"].open[0] for m in (1, 2)]  # fmt: skip
    assert [(f.fill_id, f.qty) for f in fills] == [("sim-b1-4", 4), ("sim-b1-8", 4), ("sim-b1-10", 2)]
    expected = [market.price_at("AAPL", START), *bar_open]
    assert [f.price for f in fills] == pytest.approx([fill_price("AAPL", p) for p in expected])  # cents


def test_a_sells_rest_is_canceled_once_nothing_is_left_to_sell(database_url):
    migrate.upgrade(Database(database_url))
    clock = ManualClock(START)
    broker = exchange(database_url, clock, max_fill_qty=4)
    broker.submit(OrderIntent("b1", "AAPL", Side.BUY, 4))
    broker.submit(OrderIntent("b2", "AAPL", Side.BUY, 4))
    broker.submit(OrderIntent("s1", "AAPL", Side.SELL, 6))  # 4 now, the rest at the next bar
    broker.submit(OrderIntent("s2", "AAPL", Side.SELL, 4))  # takes the other 4 at once
    clock.set(START + timedelta(minutes=3))
    orders = {o.client_order_id: o for o in broker.sync(clock.now()).orders}
    assert (orders["s1"].status, orders["s1"].filled_qty) == (OrderStatus.CANCELED, 4)
    assert "nothing left to sell" in (orders["s1"].error or "")
    assert broker.positions() == []


def test_the_rest_of_an_order_executes_before_a_stop_later_in_the_same_sync(database_url):
    """A bar's open comes before anything that happens inside it: a sell's remainder executes at
    the next bar's open even when the stop is hit later and both are seen in one sync."""
    migrate.upgrade(Database(database_url))
    clock = ManualClock(START)
    price = SyntheticMarket().price_at("AAPL", START)
    broker = exchange(database_url, clock, max_fill_qty=4)
    broker.submit(OrderIntent("b1", "AAPL", Side.BUY, 4, stop_loss=price * 0.997, take_profit=price * 10))
    broker.submit(OrderIntent("b2", "AAPL", Side.BUY, 4))
    broker.submit(OrderIntent("s1", "AAPL", Side.SELL, 6))
    clock.set(START + timedelta(hours=12))
    fills = broker.sync(clock.now()).fills
    sells = [(f.client_order_id, f.qty) for f in fills if f.side is Side.SELL]
    assert sells == [("s1", 4), ("s1", 2), ("b1-sl", 2)]
    assert broker.get_order_by_client_id("s1").status is OrderStatus.FILLED


def test_a_fill_not_yet_acknowledged_before_the_upgrade_is_still_reported(storage_url):
    database = Database(storage_url)
    migrate.upgrade(database, "0003")
    with database.engine.begin() as connection:
        connection.execute(text("INSERT INTO sim_account (id, cash, starting_cash) VALUES (1, 9000, 10000)"))
        for coid, reported in (("old-acked", True), ("old-pending", False)):
            connection.execute(
                text(
                    "INSERT INTO sim_orders (client_order_id, symbol, side, qty, order_type, status, filled_qty,"
                    " filled_avg_price, commission, reported, submitted_at, filled_at) VALUES (:c, 'AAPL',"
                    " 'buy', 5, 'market', 'filled', 5, 100, 0.5, :r, :t, :t)"
                ),
                {"c": coid, "r": reported, "t": START},
            )
    migrate.upgrade(database)
    clock = ManualClock(START + timedelta(seconds=5))
    broker = SimBroker(database, SyntheticMarket(), clock, timeframe=MINUTE)
    (fill,) = broker.sync(clock.now()).fills
    assert (fill.fill_id, fill.qty, fill.price, fill.commission) == ("sim-old-pending", 5, 100, 0.5)
    assert fill.time == START
    broker.acknowledge([fill.fill_id])
    assert broker.sync(clock.now()).fills == []
    database.dispose()
