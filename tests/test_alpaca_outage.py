"""A restart after a long outage: every fill Alpaca made meanwhile is recorded once, as trades, not
only adopted by reconciliation. The service on alpaca-py's clients against the strict fake."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.domain import Side
from tests.alpaca_world import AlpacaWorld
from tests.fakes.alpaca import FakeAlpaca

MONDAY = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)  # 10:00 in New York
NEXT_MONDAY = MONDAY + timedelta(days=7)


@pytest.fixture
def world(db):
    with FakeAlpaca() as fake:
        fake.prices.update({"AAPL": 100.0, "MSFT": 50.0})
        yield AlpacaWorld(fake, db, MONDAY)


def test_a_week_of_fills_while_the_bot_was_down_is_recorded_once(world):
    outcome = world.service.place_manual("AAPL", Side.BUY, 120, "msg-1")  # fills inside the POST at 100
    coid = outcome.order.client_order_id
    world.service.sync()
    assert world.position("AAPL").qty == 120
    # the process dies. During the week its take-profit leg fills, one share at a time: more
    # FILL activities than one page holds (100), spread over days, none of them seen by the bot
    target = next(leg for leg in world.fake.order(coid).legs if leg.type == "limit")
    for i in range(120):
        world.fake.clock.set(MONDAY + timedelta(days=1 + i // 30, hours=i % 30 / 6))
        world.fake.fill(target.client_order_id, price=104.0 + i / 100, qty=1)
    world.set_time(NEXT_MONDAY)

    world.restart()
    assert world.service.reconcile() == []  # nothing to adopt: every fill was recorded
    exits = [f for f in world.fills() if f.side == "sell"]
    assert len(exits) == 120 and len({f.fill_id for f in exits}) == 120
    assert sum(f.qty for f in exits) == 120
    assert world.position("AAPL") is None
    trades = world.trades()
    assert len(trades) == 120 and sum(t.qty for t in trades) == 120
    assert sum(t.pnl for t in trades) == pytest.approx(sum(4.0 + i / 100 for i in range(120)))
    assert {t.exit_reason for t in trades} == {"take_profit"}
    # a second restart reads the same week again and records nothing twice
    world.restart()
    assert world.service.sync() == 0 and len(world.fills()) == 121


def test_with_nothing_on_record_the_first_sync_looks_back_a_day(world):
    world.service.sync()
    (query,) = world.fake.requests_to("GET", "/v2/account/activities/FILL")
    after = datetime.fromisoformat(query.query["after"].replace("Z", "+00:00"))
    assert after == MONDAY - timedelta(days=1, minutes=1)  # a minute's margin for late postings


def test_the_reading_starts_at_the_oldest_order_still_open(world):
    """An order placed before the last recorded fill, still open when the bot went down: its fills
    are read however old they are."""
    world.fake.illiquid.add("AAPL")
    resting = world.service.place_manual("AAPL", Side.BUY, 5, "msg-early")  # market: open till filled
    world.set_time(MONDAY + timedelta(days=2))
    world.service.place_manual("MSFT", Side.BUY, 3, "msg-later")  # fills inside the POST at 50
    world.service.sync()
    world.restart()
    world.set_time(MONDAY + timedelta(days=9))
    world.service.sync()
    (query,) = world.fake.requests_to("GET", "/v2/account/activities/FILL")[-1:]
    after = datetime.fromisoformat(query.query["after"].replace("Z", "+00:00"))
    assert after == resting.order.created_at - timedelta(minutes=1)
