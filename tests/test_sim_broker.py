"""The simulated exchange: fills, protective exits, commission, refusals, idempotency, reporting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from bot.bars import NS, Bars, Timeframe
from bot.brokers.base import OrderRejected
from bot.brokers.rules import fill_price
from bot.brokers.sim import SimBroker, first_touch
from bot.clock import ManualClock
from bot.data.synthetic import SyntheticMarket
from bot.domain import ExitReason, OrderIntent, OrderStatus, OrderType, Side
from storage import migrate
from storage.db import Database
from storage.revisions import ensure_newest

START = datetime(2026, 3, 2, 14, 30, 20, tzinfo=UTC)
MINUTE = Timeframe(60)


@pytest.fixture
def exchange(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'sim.db'}")
    migrate.upgrade(db)
    clock = ManualClock(START)
    market = SyntheticMarket()
    broker = SimBroker(db, market, clock, timeframe=MINUTE, starting_cash=10_000, commission=0.001)
    return broker, market, clock


def buy(qty, cid="b1", stop=None, target=None, symbol="AAPL"):
    return OrderIntent(cid, symbol, Side.BUY, qty, stop_loss=stop, take_profit=target, strategy="t")


def on_the_penny_grid(price: float) -> bool:
    return abs(price * 100 - round(price * 100)) < 1e-6


def test_market_order_fills_at_the_next_price_with_commission(exchange):
    broker, market, clock = exchange
    price = fill_price("AAPL", market.price_at("AAPL", clock.now()))  # the nearest cent
    assert on_the_penny_grid(price) and abs(price - market.price_at("AAPL", clock.now())) <= 0.005
    order = broker.submit(buy(10))
    assert order.status is OrderStatus.FILLED
    assert order.filled_avg_price == pytest.approx(price)
    account = broker.account()
    assert account.cash == pytest.approx(10_000 - 10 * price * 1.001)
    (fill,) = broker.sync(clock.now()).fills
    assert fill.commission == pytest.approx(10 * price * 0.001)
    assert fill.fill_id == "sim-b1"


def test_the_same_client_order_id_never_fills_twice(exchange):
    broker, _market, _clock = exchange
    first = broker.submit(buy(5))
    again = broker.submit(buy(5))
    assert again.broker_order_id == first.broker_order_id
    assert broker.positions()[0].qty == 5


def test_refusals_say_why(exchange):
    broker, _market, _clock = exchange
    with pytest.raises(OrderRejected, match="insufficient cash"):
        broker.submit(buy(1000))
    with pytest.raises(OrderRejected, match="no short selling"):
        broker.submit(OrderIntent("s1", "AAPL", Side.SELL, 1))
    assert broker.get_order_by_client_id("s1").status is OrderStatus.REJECTED


def test_fills_are_reported_until_acknowledged(exchange):
    broker, _market, clock = exchange
    broker.submit(buy(1))
    assert [f.fill_id for f in broker.sync(clock.now()).fills] == ["sim-b1"]
    assert [f.fill_id for f in broker.sync(clock.now()).fills] == ["sim-b1"]  # not acknowledged yet
    broker.acknowledge(["sim-b1"])
    assert broker.sync(clock.now()).fills == []


@pytest.mark.parametrize(
    "step", [timedelta(hours=12), timedelta(seconds=90)], ids=["one-sync", "sync-mid-bar"]
)
@pytest.mark.parametrize("kind", ["stop", "target"])
def test_protective_exit_on_the_first_bar_that_reaches_the_level(exchange, kind, step):
    """Whether the exchange is synced once or every 90 s (mid-bar), no bar is skipped."""
    broker, market, clock = exchange
    entry = market.price_at("AAPL", clock.now())
    stop, target = (entry * 0.997, entry * 10) if kind == "stop" else (entry * 0.1, entry * 1.003)
    broker.submit(buy(10, stop=stop, target=target))
    broker.acknowledge([f.fill_id for f in broker.sync(clock.now()).fills])
    later = START + timedelta(hours=12)
    # what the exchange should do, worked out from the bars themselves
    first_bar = MINUTE.floor(START) + timedelta(minutes=1)
    bars = market.fetch(["AAPL"], MINUTE, first_bar, MINUTE.floor(later))["AAPL"]
    hits = np.flatnonzero(bars.low <= stop) if kind == "stop" else np.flatnonzero(bars.high >= target)
    assert len(hits), "the synthetic market should reach a 0.3% level within 12 hours"
    i = hits[0]
    expected = fill_price("AAPL", min(bars.open[i], stop) if kind == "stop" else max(bars.open[i], target))
    fills = []
    while not fills and clock.now() < later:
        clock.set(min(clock.now() + step, later))
        fills = broker.sync(clock.now()).fills
    (fill,) = fills
    assert fill.exit_reason is (ExitReason.STOP_LOSS if kind == "stop" else ExitReason.TAKE_PROFIT)
    assert fill.price == pytest.approx(expected) and on_the_penny_grid(fill.price)
    assert fill.time == datetime.fromtimestamp(int(bars.time[i]) / NS, tz=UTC)
    assert broker.positions() == []


def bars(open_, high, low):
    n = len(open_)
    return Bars(
        np.arange(n, dtype=np.int64) * 60 * NS,
        np.array(open_, float),
        np.array(high, float),
        np.array(low, float),
        np.array(open_, float),
        np.ones(n),
    )


def test_first_touch_prefers_the_stop_when_one_bar_touches_both():
    assert first_touch(bars([100, 100], [101, 106], [99, 94]), stop=95, target=105) == (
        1,
        95,
        ExitReason.STOP_LOSS,
    )


def test_first_touch_fills_a_gap_at_the_open():
    assert first_touch(bars([100, 93], [101, 94], [99, 92]), stop=95, target=105) == (
        1,
        93,
        ExitReason.STOP_LOSS,
    )
    assert first_touch(bars([100, 107], [101, 108], [99, 106]), stop=95, target=105) == (
        1,
        107,
        ExitReason.TAKE_PROFIT,
    )
    assert first_touch(bars([100], [104], [96]), stop=95, target=105) is None


def test_an_order_placed_at_a_bar_start_is_checked_on_that_bar(tmp_path):
    """A bar that starts when the order is placed lies wholly after it: its low can hit the stop.
    A bar the order was placed in the middle of is skipped (part of its range came before)."""
    from tests.replay import ReplayMarket

    t0 = int(START.timestamp()) // 60 * 60 * NS
    rows = Bars(t0 + np.arange(3, dtype=np.int64) * 60 * NS, *(np.array(v, float) for v in (
        [100, 100, 100], [101, 101, 101], [95, 99.5, 99.5], [100, 100, 100], [1, 1, 1]
    )))  # fmt: skip
    market = ReplayMarket({"AAPL": rows}, MINUTE)
    for placed, expected in ((0, 1), (30, 0)):
        db = Database(f"sqlite:///{tmp_path / f'sim{placed}.db'}")
        ensure_newest(db)
        clock = ManualClock(datetime.fromtimestamp(t0 / NS, tz=UTC) + timedelta(seconds=placed))
        broker = SimBroker(db, market, clock, timeframe=MINUTE, starting_cash=10_000)
        broker.submit(buy(1, stop=96.0, target=110.0))
        clock.advance(minutes=3)
        exits = [f for f in broker.sync(clock.now()).fills if f.exit_reason is ExitReason.STOP_LOSS]
        assert len(exits) == expected, f"placed {placed} s into the bar"
        if exits:
            assert exits[0].price == 96.0 and exits[0].time == datetime.fromtimestamp(t0 / NS, tz=UTC)


@pytest.mark.parametrize(
    ("price", "filled"),
    [(241.95653, 241.96), (241.23066, 241.23), (100.005, 100.01), (0.123456, 0.1235), (0.99996, 1.0)],
)
def test_a_stock_fills_on_the_exchanges_tick_grid(price, filled):
    """A cent at $1 and above, $0.0001 below (the prices Alpaca accepts); nearest tick, halves up."""
    assert fill_price("AAPL", price) == pytest.approx(filled, abs=1e-9)


def test_crypto_fills_at_the_price_as_it_is(exchange):
    broker, market, clock = exchange
    order = broker.submit(buy(0.01, symbol="BTC/USD"))
    assert order.filled_avg_price == market.price_at("BTC/USD", clock.now())
    assert fill_price("BTC/USD", 43_210.123456) == 43_210.123456


def test_every_stock_fill_is_on_the_penny_grid(exchange):
    """Market, protective and limit fills alike, over a day of the synthetic market."""
    broker, market, clock = exchange
    broker.submit(buy(5, "m1", stop=1.0, target=10_000.0))
    limit = market.price_at("MSFT", clock.now()) * 1.01  # off the grid: the fill is on it all the same
    broker.submit(OrderIntent("l1", "MSFT", Side.BUY, 2, order_type=OrderType.LIMIT, limit_price=limit))
    broker.submit(buy(3, "p1", symbol="SPY"))
    entry = broker.get_order_by_client_id("p1").filled_avg_price
    broker.submit(OrderIntent("p1-x", "SPY", Side.SELL, 3, stop_loss=None))
    clock.set(START + timedelta(hours=2))
    fills = broker.sync(clock.now()).fills
    assert len(fills) >= 4
    assert all(on_the_penny_grid(f.price) for f in fills), [f.price for f in fills]
    assert on_the_penny_grid(entry)


def test_a_trades_pnl_is_recomputed_from_the_prices_shown(tmp_path):
    """Issue 18, point 1: /trades showed prices to the cent while fills were sub-penny, so
    (exit - entry) x qty missed the P&L shown by up to a cent a share."""
    import re

    from bot.commands import Caller
    from tests.helpers import make_app

    app, clock = make_app(
        tmp_path / "bot.db",
        TRADEBOT_SYMBOLS="AAPL,MSFT",
        TRADEBOT_STRATEGIES="supertrend:period=10,multiplier=100",
    )
    console = Caller("console", chat_id=0, name="console")
    checked = 0
    for k, symbol in enumerate(["AAPL", "MSFT"] * 3):
        clock.advance(minutes=7)
        asked = app.router.handle(f"/buy {symbol} 40", console)
        assert app.router.confirm(asked.confirmation.token, console).text.startswith("Done: Bought")
        clock.advance(minutes=13 + k)
        app.service.sync()
        asked = app.router.handle(f"/sell {symbol} all", console)
        assert app.router.confirm(asked.confirmation.token, console).text.startswith("Done: Sold")
    shown = app.router.handle("/trades 10", console).text
    for line in shown.splitlines()[1:]:
        match = re.search(r" (\d+): ([\d,.]+) -> ([\d,.]+) P&L ([+-][\d,.]+) ", line)
        assert match, line
        qty, entry, exit_, pnl = (float(g.replace(",", "")) for g in match.groups())
        assert round((exit_ - entry) * qty, 2) == pnl, line
        checked += 1
    assert checked == 6
