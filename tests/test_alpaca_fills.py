"""Fills on Alpaca, recorded by the service exactly once each, whichever road brings them.

The service on a real database (SQLite, and Postgres with TEST_DATABASE_URL), alpaca-py's
TradingClient and TradingStream against the strict fake (``tests/fakes/alpaca``). An order of
10 shares executes in three parts (3 at 100, 3 at 101, 4 at 102): by the trading stream, by FILL
activities, by both in either order, with same-millisecond activities in either order, and
under every reading of a trade update's ``price`` and ``qty`` (``tests/fakes/alpaca/stream.py``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy
from sqlalchemy import event

from bot.domain import EventKind, Side
from storage.db import DatabaseError
from tests.alpaca_world import AlpacaWorld, StreamThread, wait_until
from tests.fakes.alpaca import FakeAlpaca, FakeTradingStream

MONDAY = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)  # 10:00 in New York: the market is open
PARTS = [(3.0, 100.0), (3.0, 101.0), (4.0, 102.0)]
AVERAGE = sum(q * p for q, p in PARTS) / 10  # 101.1


@pytest.fixture
def world(db):
    with FakeAlpaca() as fake:
        fake.prices.update({"AAPL": 100.0, "BTC/USD": 50_000.0})
        fake.illiquid.add("AAPL")  # the tests execute AAPL's order in parts by hand
        yield AlpacaWorld(fake, db, MONDAY)


def place(world: AlpacaWorld) -> str:
    outcome = world.service.place_manual("AAPL", Side.BUY, 10, "msg-10")
    assert outcome.status == "placed", outcome.message
    return outcome.order.client_order_id


def execute(world: AlpacaWorld, coid: str, part: int, *, same_ms: bool = False) -> None:
    qty, price = PARTS[part]
    if not same_ms:
        world.fake.clock.set(MONDAY + timedelta(seconds=part + 1))
    world.fake.fill(coid, price=price, qty=qty)


def assert_recorded_once(world: AlpacaWorld, coid: str) -> None:
    fills = [f for f in world.fills() if f.client_order_id == coid]
    assert sorted((f.qty, f.price) for f in fills) == PARTS
    assert len({f.fill_id for f in fills}) == 3
    order = world.order(coid)
    assert order.filled_qty == 10 and order.filled_avg_price == pytest.approx(AVERAGE)
    position = world.position("AAPL")
    assert position.qty == 10 and position.avg_price == pytest.approx(AVERAGE)
    bought = [e for e in world.service.recent_events(100) if e.kind is EventKind.ORDER_FILLED]
    assert sorted(e.data["qty"] for e in bought) == [3.0, 3.0, 4.0]  # one alert per execution


def fill_events(stream: StreamThread) -> int:
    return sum(str(getattr(u.event, "value", u.event)) in ("fill", "partial_fill") for u in stream.handled)


# --------------------------------------------------------------------------- one road at a time


@pytest.mark.parametrize("reverse", [False, True], ids=["same-ms-as-listed", "same-ms-reversed"])
def test_by_activities_alone_same_millisecond_in_either_order(world, reverse):
    world.fake.same_ms_reversed = reverse
    coid = place(world)
    for part in range(3):
        execute(world, coid, part, same_ms=True)  # three executions in one millisecond
    world.service.sync()
    world.service.sync()
    assert_recorded_once(world, coid)


@pytest.mark.parametrize("price_mode", ["execution", "average"])
@pytest.mark.parametrize("qty_mode", ["execution", "cumulative"])
def test_by_the_stream_first_then_the_activities(world, price_mode, qty_mode):
    """The stream runs ahead of the activities endpoint. Each update is recorded at once when it
    can be placed exactly; under every reading of ``price`` and ``qty`` the amounts come out
    right, and the activities, posted later, add nothing twice."""
    stream = FakeTradingStream(world.fake)
    stream.price_mode, stream.qty_mode = price_mode, qty_mode
    world.fake.activities_held = True
    with StreamThread(world) as thread:
        coid = place(world)
        for part in range(3):
            execute(world, coid, part)
            wait_until(lambda n=part + 1: fill_events(thread) >= n, what="trade updates handled")
        from_stream = [f for f in world.fills() if f.client_order_id == coid]
        if qty_mode == "execution":
            assert sorted((f.qty, f.price) for f in from_stream) == PARTS  # at once, from the stream
        else:  # a cumulative qty places only the first execution; the rest wait for the activities
            assert [(f.qty, f.price) for f in from_stream] == [PARTS[0]]
        world.fake.post_activities()
        world.service.sync()
    assert_recorded_once(world, coid)


def test_by_the_activities_first_then_the_stream(world):
    stream = FakeTradingStream(world.fake)
    stream.paused = True  # the stream is down while the executions happen
    with StreamThread(world) as thread:
        coid = place(world)
        for part in range(3):
            execute(world, coid, part)
        world.service.sync()
        assert_recorded_once(world, coid)
        stream.release()  # it reconnects and delivers what it kept
        wait_until(lambda: fill_events(thread) >= 3, what="the late trade updates handled")
    assert_recorded_once(world, coid)


def test_by_both_roads_interleaved(world):
    """Part 1 by the stream, part 2 by the activities while the stream is down, part 3 by the
    stream after it is back (with part 2's update arriving late, before it)."""
    stream = FakeTradingStream(world.fake)
    world.fake.activities_held = True
    with StreamThread(world) as thread:
        coid = place(world)
        execute(world, coid, 0)
        wait_until(lambda: fill_events(thread) >= 1)
        stream.paused = True
        execute(world, coid, 1)
        world.fake.post_activities()
        world.service.sync()
        world.fake.activities_held = True
        execute(world, coid, 2)
        stream.release()
        wait_until(lambda: fill_events(thread) >= 3)
        world.fake.post_activities()
        world.service.sync()
    assert_recorded_once(world, coid)


# --------------------------------------------------------------------------- a fill is never lost


def test_a_database_failure_while_recording_loses_no_fill(world):
    """The second execution's insert fails: the sync fails, nothing is acknowledged, and the next
    sync (the database back) records the second and third once, the first not again."""
    coid = place(world)
    for part in range(3):
        execute(world, coid, part)
    inserts = {"fills": 0}

    def fail_second_fill(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("INSERT INTO FILLS"):
            inserts["fills"] += 1
            if inserts["fills"] == 2:
                raise sqlalchemy.exc.OperationalError(statement, parameters, Exception("disk I/O error"))

    event.listen(world.db.engine, "before_cursor_execute", fail_second_fill)
    try:
        with pytest.raises(DatabaseError):
            world.service.sync()
    finally:
        event.remove(world.db.engine, "before_cursor_execute", fail_second_fill)
    assert [(f.qty, f.price) for f in world.fills()] == [PARTS[0]]  # the first is in, the rest wait
    assert len(world.broker.sync(MONDAY).fills) == 3  # nothing was acknowledged
    world.service.sync()
    assert_recorded_once(world, coid)
    assert world.broker.sync(MONDAY).fills == []  # acknowledged now


# --------------------------------------------------------------------------- crypto stops


def test_a_crypto_stop_whose_id_alpaca_has_under_a_canceled_order_is_placed_anew_and_alerted(world):
    """After a restart the crypto guard re-arms under a deterministic id. If Alpaca already has that
    id for a stop that was canceled (by hand in the dashboard, while the bot was down), the 422
    "client_order_id must be unique" is looked up: a new stop goes in under a new id, and the
    trader is told. Before, the 422 counted as "placed" and the position was left without a stop."""
    world.fake.illiquid.add("BTC/USD")  # the entry fills after the bot's sync, then the bot dies
    outcome = world.service.place_manual("BTC/USD", Side.BUY, 0.1, "msg-btc")
    entry = outcome.order.client_order_id
    world.fake.fill(entry, price=50_000.0)
    # the process dies before its next sync placed the stop; the restart re-arms the guard
    world.restart()
    world.service.reconcile()
    world.service.sync()
    (first_stop,) = [o for o in world.fake.top_orders() if o.type == "stop_limit"]
    assert first_stop.is_open and first_stop.client_order_id != f"{entry}-sl"
    # the trader cancels that stop in Alpaca's dashboard while the bot is down again
    world.fake.cancel(first_stop.client_order_id)
    world.restart()
    world.service.reconcile()
    world.service.sync()
    working = [o for o in world.fake.top_orders() if o.type == "stop_limit" and o.is_open]
    assert len(working) == 1 and working[0].client_order_id != first_stop.client_order_id
    # 0.1 less Alpaca's 25 bps fee (0.09975), floored to the pair's 0.0001 increment
    assert (working[0].qty, working[0].stop_price) == (0.0997, first_stop.stop_price)
    kinds = (EventKind.BROKER_ERROR, EventKind.PROTECTION, EventKind.RECONCILE_DIFF)
    alerts = [e.message for e in world.service.recent_events(50) if e.kind in kinds]
    assert any(first_stop.client_order_id in a and "canceled" in a and "new one" in a for a in alerts), alerts
