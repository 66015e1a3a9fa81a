"""One contract, two brokers: the simulated exchange and Alpaca (alpaca-py over HTTP to the strict
fake Alpaca server) must behave alike wherever the service relies on them, so they cannot drift.

Each test runs on both venues. A venue is a broker plus what the test needs to drive its market:
``next_bar`` lets one bar pass (the simulator runs its bars; the fake Alpaca executes the next part
of an order that fills in parts), ``restart`` builds a new broker object over the same account and
books, as a new process would. Both venues fill at most ``PART`` of one order per bar, so a larger
order fills in several executions.

Every entry carries a stop and a target, as every entry the bot sends does, and after every money
path the invariant is checked at the venue (``assert_protected``): every position it holds has a
working stop for its whole quantity, by the broker's own ``check_protection`` and, on Alpaca,
independently by the fake's own state (a held stop leg counts; a working bracket entry's legs
count for what it has filled).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alpaca.trading.client import TradingClient

from bot.alpaca.broker import AlpacaBroker
from bot.alpaca.http import AlpacaHttp
from bot.bars import Timeframe
from bot.brokers.base import Broker, BrokerUpdate, OrderRejected
from bot.brokers.rules import fill_price
from bot.brokers.sim import SimBroker
from bot.clock import ManualClock
from bot.data.synthetic import SyntheticMarket
from bot.domain import Fill, Order, OrderIntent, OrderStatus, OrderType, Position, Side
from storage import migrate
from storage.db import Database
from tests.fakes.alpaca import FakeAlpaca

START = datetime(2026, 3, 2, 15, 0, 20, tzinfo=UTC)  # a Monday, 10:00 in New York: the market is open
MINUTE = Timeframe(60)
PART = 4.0  # the most of one order either venue executes per bar
SYMBOL = "AAPL"


@dataclass
class Venue:
    name: str
    broker: Any
    clock: ManualClock
    market_price: Any  # () -> the price a market order executes at now
    extras: dict[str, Any] = field(default_factory=dict)

    def next_bar(self) -> None:
        """Let the bar after the current one close (one more part of a large order executes)."""
        floor = self.clock.now().replace(second=0, microsecond=0)
        aligned = floor == self.clock.now()
        self.clock.set(floor + timedelta(minutes=1 if aligned else 2))
        if self.name == "alpaca":
            fake: FakeAlpaca = self.extras["fake"]
            fake.clock.set(self.clock.now())
            fake.trade()

    def sync(self) -> BrokerUpdate:
        return self.broker.sync(self.clock.now())

    def restart(self) -> None:
        self.broker = self.extras["build"]()
        self.broker.report_fills_since(None)


def _sim(tmp_path) -> Iterator[Venue]:
    db = Database(f"sqlite:///{tmp_path / 'sim.db'}")
    migrate.upgrade(db)
    clock = ManualClock(START)
    market = SyntheticMarket()

    def build() -> SimBroker:
        return SimBroker(db, market, clock, timeframe=MINUTE, starting_cash=100_000, max_fill_qty=PART)

    # The exchange's tick grid: stocks fill at the nearest cent (bot.brokers.rules.fill_price).
    yield Venue(
        "sim",
        build(),
        clock,
        lambda: fill_price(SYMBOL, market.price_at(SYMBOL, clock.now())),
        {"build": build},
    )
    db.dispose()


def _alpaca() -> Iterator[Venue]:
    with FakeAlpaca() as fake:
        fake.clock.set(START)
        fake.prices[SYMBOL] = 240.0
        fake.auto_fill, fake.fill_step = True, PART
        clock = ManualClock(START)

        def build() -> AlpacaBroker:
            http = AlpacaHttp(timeout=5, sleep=lambda s: None)
            client = http.install(TradingClient("test-key", "test-secret", paper=True, url_override=fake.url))
            return AlpacaBroker(client, paper=True, http=http, cancel_wait=2.0, sleep=lambda s: None)

        yield Venue("alpaca", build(), clock, lambda: fake.prices[SYMBOL], {"build": build, "fake": fake})


@pytest.fixture(params=["sim", "alpaca"])
def venue(request, tmp_path) -> Iterator[Venue]:
    yield from (_sim(tmp_path) if request.param == "sim" else _alpaca())


def buy(qty: float, coid: str = "tb-contract-1", *, near: float = 240.0, **kw: Any) -> OrderIntent:
    """An entry with its stop 10 % and its target 10 % from ``near`` (the limit, or about the price)."""
    level = kw.get("limit_price") or near
    kw.setdefault("stop_loss", round(level * 0.9, 2))
    kw.setdefault("take_profit", round(level * 1.1 + 50, 2))  # above the price on both venues
    return OrderIntent(coid, SYMBOL, Side.BUY, qty, strategy="contract", **kw)


def sell(qty: float, coid: str = "tb-contract-s", **kw: Any) -> OrderIntent:
    return OrderIntent(coid, SYMBOL, Side.SELL, qty, strategy="contract", **kw)


def fills_of(update: BrokerUpdate, coid: str) -> list[Fill]:
    return [f for f in update.fills if f.client_order_id == coid]


def held(broker: Broker) -> float:
    return sum(p.qty for p in broker.positions() if p.symbol == SYMBOL)


def assert_protected(venue: Venue) -> None:
    """The invariant, at the venue: a working stop for every position's whole quantity."""
    covers = venue.broker.check_protection([])
    held_now = {p.symbol: p.qty for p in venue.broker.positions() if abs(p.qty) > 1e-9}
    assert {c.symbol: c.qty for c in covers} == held_now
    for cover in covers:
        assert cover.ok and cover.qty > 0, cover
    if venue.name == "alpaca":  # the fake's own state says the same, without the bot's reading
        fake: FakeAlpaca = venue.extras["fake"]
        with fake.lock:
            for symbol, position in fake.positions.items():
                assert position.qty > 0, f"{symbol} short at Alpaca"
                stops = sum(
                    o.remaining
                    for o in fake.all_orders()
                    if o.symbol == symbol
                    and o.is_stop
                    and o.is_live
                    and (o.parent is None or o.parent.side == "sell" or o.parent.status == "filled")
                )
                entries = sum(
                    o.filled_qty
                    for o in fake.top_orders()
                    if o.symbol == symbol and o.side == "buy" and o.is_open and o.legs
                )
                assert position.qty <= stops + entries + 1e-9, (symbol, position.qty, stops, entries)
                assert stops <= position.qty + 1e-9, (symbol, position.qty, stops)


# --------------------------------------------------------------------------- submit


def test_it_is_a_broker(venue):
    assert isinstance(venue.broker, Broker)


def test_submit_returns_the_order_under_our_client_id_and_never_places_it_twice(venue):
    placed = venue.broker.submit(buy(2))
    assert (placed.client_order_id, placed.symbol, placed.side, placed.qty) == (
        "tb-contract-1",
        SYMBOL,
        Side.BUY,
        2,
    )
    assert placed.broker_order_id
    again = venue.broker.submit(buy(2))  # a resend after a timeout, a replayed signal
    assert again.broker_order_id == placed.broker_order_id
    found = venue.broker.get_order_by_client_id("tb-contract-1")
    assert found is not None and found.broker_order_id == placed.broker_order_id
    assert venue.broker.get_order_by_client_id("tb-never-sent") is None
    assert held(venue.broker) == 2  # one order's worth, not two
    assert_protected(venue)


# --------------------------------------------------------------------------- fill


def test_a_market_order_fills_and_the_fill_is_reported(venue):
    price = venue.market_price()
    venue.broker.submit(buy(3))
    update = venue.sync()
    (fill,) = fills_of(update, "tb-contract-1")
    assert (fill.symbol, fill.side, fill.qty) == (SYMBOL, Side.BUY, 3)
    assert fill.price == pytest.approx(price) and fill.time.tzinfo is not None
    order = venue.broker.get_order_by_client_id("tb-contract-1")
    assert order.status is OrderStatus.FILLED and order.filled_qty == 3
    assert order.filled_avg_price == pytest.approx(price)
    assert held(venue.broker) == 3
    assert "tb-contract-1" not in {o.client_order_id for o in venue.broker.open_orders()}
    assert_protected(venue)


# --------------------------------------------------------------------------- partial fill


def test_an_order_larger_than_a_bar_fills_in_parts_each_reported_once(venue):
    venue.broker.submit(buy(10))
    seen: dict[str, Fill] = {}
    statuses: list[OrderStatus] = []
    for _ in range(3):
        update = venue.sync()
        new = [f for f in fills_of(update, "tb-contract-1") if f.fill_id not in seen]
        assert len(new) == 1, [f.fill_id for f in update.fills]
        seen.update({f.fill_id: f for f in new})
        venue.broker.acknowledge([f.fill_id for f in new])
        statuses.append(venue.broker.get_order_by_client_id("tb-contract-1").status)
        assert_protected(venue)  # a partly filled bracket entry: its own legs cover what it filled
        venue.next_bar()
    assert [f.qty for f in seen.values()] == [PART, PART, 10 - 2 * PART]
    assert statuses == [OrderStatus.PARTIALLY_FILLED, OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED]
    order = venue.broker.get_order_by_client_id("tb-contract-1")
    notional = sum(f.qty * f.price for f in seen.values())
    assert order.filled_qty == 10 and order.filled_avg_price == pytest.approx(notional / 10)
    assert held(venue.broker) == 10
    assert fills_of(venue.sync(), "tb-contract-1") == []  # all acknowledged: nothing more
    assert_protected(venue)


def test_a_partly_filled_order_is_open_until_its_last_part(venue):
    venue.broker.submit(buy(6))
    venue.sync()
    working = {o.client_order_id: o for o in venue.broker.open_orders()}
    assert working["tb-contract-1"].status is OrderStatus.PARTIALLY_FILLED
    assert working["tb-contract-1"].filled_qty == PART
    venue.next_bar()
    venue.sync()
    assert "tb-contract-1" not in {o.client_order_id for o in venue.broker.open_orders()}
    assert_protected(venue)


# --------------------------------------------------------------------------- cancel


def test_cancel_stops_a_resting_order_and_sync_reports_it(venue):
    far_below = round(venue.market_price() * 0.5, 2)
    venue.broker.submit(buy(1, order_type=OrderType.LIMIT, limit_price=far_below))
    venue.sync()
    assert "tb-contract-1" in {o.client_order_id for o in venue.broker.open_orders()}
    canceled = venue.broker.cancel("tb-contract-1")
    assert canceled.status is OrderStatus.CANCELED and canceled.filled_qty == 0
    reported = [o for o in venue.sync().orders if o.client_order_id == "tb-contract-1"]
    assert [o.status for o in reported] == [OrderStatus.CANCELED]
    assert "tb-contract-1" not in {o.client_order_id for o in venue.broker.open_orders()}
    venue.next_bar()
    assert [o for o in venue.sync().orders if o.client_order_id == "tb-contract-1"] == []  # said once
    assert_protected(venue)


def test_cancel_keeps_what_filled_and_stops_the_rest(venue):
    venue.broker.submit(buy(10))
    (first,) = fills_of(venue.sync(), "tb-contract-1")
    canceled = venue.broker.cancel("tb-contract-1")
    assert canceled.status is OrderStatus.CANCELED and canceled.filled_qty == PART
    # the bracket's legs went with its entry: the part held is protected again at the next check,
    # from the levels on record (the service passes its books)
    books = Position(SYMBOL, PART, 240.0, stop_loss=216.0, take_profit=314.0)
    venue.broker.ensure_protection([books])
    venue.next_bar()
    update = venue.sync()
    assert [f.fill_id for f in fills_of(update, "tb-contract-1")] == [first.fill_id]  # nothing new
    assert held(venue.broker) == PART
    assert_protected(venue)


def test_cancel_of_a_filled_order_returns_it_filled_and_of_an_unknown_one_refuses(venue):
    venue.broker.submit(buy(2))
    venue.sync()
    assert venue.broker.cancel("tb-contract-1").status is OrderStatus.FILLED
    with pytest.raises(OrderRejected):
        venue.broker.cancel("tb-never-sent")
    assert_protected(venue)


# --------------------------------------------------------------------------- reject


def test_a_buy_beyond_the_cash_is_rejected_with_a_reason(venue):
    with pytest.raises(OrderRejected) as refused:
        venue.broker.submit(buy(10_000))
    assert "insufficient" in str(refused.value)
    assert held(venue.broker) == 0
    assert fills_of(venue.sync(), "tb-contract-1") == []
    assert_protected(venue)


def test_a_sell_of_what_is_not_held_is_rejected(venue):
    with pytest.raises(OrderRejected):
        venue.broker.submit(sell(1))
    assert held(venue.broker) == 0
    assert_protected(venue)


# --------------------------------------------------------------------------- exits


def test_a_partial_sell_leaves_the_rest_protected(venue):
    venue.broker.submit(buy(PART))
    venue.sync()
    venue.broker.submit(sell(1))
    venue.sync()
    assert held(venue.broker) == PART - 1
    assert_protected(venue)


def test_a_whole_sell_leaves_nothing_to_protect(venue):
    venue.broker.submit(buy(PART))
    venue.sync()
    venue.broker.submit(sell(PART))
    venue.sync()
    assert held(venue.broker) == 0 and venue.broker.check_protection([]) == []
    assert_protected(venue)


# --------------------------------------------------------------------------- acknowledge


def test_a_fill_is_reported_again_until_it_is_acknowledged(venue):
    venue.broker.submit(buy(2))
    venue.broker.submit(buy(1, coid="tb-contract-2"))
    first = venue.sync()
    ids = {f.client_order_id: f.fill_id for f in first.fills}
    assert set(ids) == {"tb-contract-1", "tb-contract-2"}
    venue.next_bar()
    assert {f.fill_id for f in venue.sync().fills} == set(ids.values())  # not acknowledged: again
    venue.broker.acknowledge([ids["tb-contract-1"]])
    assert [f.fill_id for f in venue.sync().fills] == [ids["tb-contract-2"]]
    venue.broker.acknowledge([ids["tb-contract-2"]])
    assert venue.sync().fills == []
    assert_protected(venue)


# --------------------------------------------------------------------------- restart


def test_a_restarted_broker_finds_what_the_old_one_left(venue):
    venue.broker.submit(buy(2))
    far_below = round(venue.market_price() * 0.5, 2)
    venue.broker.submit(buy(1, coid="tb-contract-rest", order_type=OrderType.LIMIT, limit_price=far_below))
    venue.broker.submit(buy(1, coid="tb-contract-2"))
    update = venue.sync()
    ids = {f.client_order_id: f.fill_id for f in update.fills}
    venue.broker.acknowledge([ids["tb-contract-1"]])  # the service recorded one, then the process died

    venue.restart()
    assert_protected(venue)
    again = {f.fill_id for f in venue.sync().fills}
    assert ids["tb-contract-2"] in again  # never acknowledged: reported again, same id
    assert held(venue.broker) == 3
    assert "tb-contract-rest" in {o.client_order_id for o in venue.broker.open_orders()}
    found: Order | None = venue.broker.get_order_by_client_id("tb-contract-1")
    assert found is not None and found.status is OrderStatus.FILLED
    resent = venue.broker.submit(buy(2))  # the old process's order, replayed: not placed twice
    assert resent.broker_order_id == found.broker_order_id and held(venue.broker) == 3
    assert_protected(venue)
