"""/cancel ORDER_ID: a trader cancels what is left of one of the bot's working orders.

Through the command router (what Telegram, the console and the web dashboard all call) over the
service on a real database, alpaca-py against the strict fake Alpaca server, where an order
works until the exchange fills it (``FakeAlpaca.fill``). The confirmation step is the one every
dangerous command has; a protective leg of an open position is refused with the way out.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.commands import Caller, CommandRouter
from bot.domain import EventKind, OrderStatus, Side
from bot.plugins import Registry
from tests.alpaca_world import AlpacaWorld
from tests.fakes.alpaca import FakeAlpaca

MONDAY = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)  # 10:00 in New York: the market is open


@pytest.fixture
def world(db):
    with FakeAlpaca() as fake:
        fake.prices.update({"AAPL": 100.0, "MSFT": 50.0})
        fake.illiquid.add("AAPL")  # AAPL's orders work until a test fills them
        yield AlpacaWorld(fake, db, MONDAY)


def router(world: AlpacaWorld) -> CommandRouter:
    return CommandRouter(world.service, Registry(), world.clock)


def ann(world: AlpacaWorld, message_id: int | None = None) -> Caller:
    return Caller(
        "console", chat_id=1, user_id=7, name="ann", sent_at=world.clock.now(), message_id=message_id
    )


def buy(world: AlpacaWorld, qty: float, request: str) -> str:
    outcome = world.service.place_manual("AAPL", Side.BUY, qty, request)
    assert outcome.status == "placed", outcome.message
    return outcome.order.client_order_id


def test_cancel_asks_then_cancels_the_rest_of_a_working_entry(world):
    cid = buy(world, 10, "msg-1")
    world.fake.fill(cid, price=100.0, qty=4)  # a partial fill; 6 still working at the exchange
    world.service.sync()
    commands = router(world)
    listed = commands.handle("/orders", ann(world)).text
    assert f"buy 10 AAPL partially_filled (4 filled @ 100.00) [manual] id {cid}" in listed

    asked = commands.handle(f"/cancel {cid}", ann(world))
    assert asked.confirmation is not None
    assert asked.text.startswith(
        f"Confirm: cancel buy 10 AAPL (partially_filled, 4 filled; what filled stays) {cid}?"
    )
    assert world.fake.order(cid).status == "partially_filled"  # nothing happens before the answer

    done = commands.confirm(asked.confirmation.token, ann(world))
    assert done.text == "Canceled: buy 10 AAPL canceled by ann; 4 filled before and stay held"
    assert world.fake.order(cid).status == "canceled"
    assert world.service.order(cid).status is OrderStatus.CANCELED
    [position] = world.service.positions()
    assert (position.symbol, position.qty) == ("AAPL", 4)
    [canceled] = world.service.recent_events(10, kind=EventKind.ORDER_CANCELED)
    assert canceled.symbol == "AAPL"
    # The exchange canceled the bracket's legs with its entry: the 4 shares held are protected
    # again at once (a stop and a target for 4), not at the next reconciliation.
    working = [o for o in world.fake.all_orders() if o.symbol == "AAPL" and o.is_live]
    assert sorted((o.type, o.qty) for o in working) == [("limit", 4), ("stop", 4)], working
    [put_back] = world.service.recent_events(10, kind=EventKind.PROTECTION)
    assert "put back" in put_back.message and "4 shares" in put_back.message


def test_cancel_refuses_what_cannot_be_canceled_without_asking(world):
    commands = router(world)
    unknown = commands.handle("/cancel tb-manual-0000", ann(world))
    assert unknown.confirmation is None
    assert unknown.text == (
        "Not canceled: no order tb-manual-0000 on record or at the broker (/orders lists the open ones)."
    )
    cid = buy(world, 2, "msg-2")
    world.fake.fill(cid, price=100.0)
    world.service.sync()
    filled = commands.handle(f"/cancel {cid}", ann(world))
    assert filled.confirmation is None
    assert filled.text == f"Not canceled: order {cid} is filled already: nothing left to cancel."
    assert commands.handle("/cancel", ann(world)).text.startswith("Usage: /cancel [ORDER_ID|CONFIRMATION_ID]")


def test_a_protective_leg_of_an_open_position_is_not_canceled(world):
    cid = buy(world, 5, "msg-3")
    world.fake.fill(cid, price=100.0)  # the bracket's entry filled: its stop and target are live
    world.service.sync()
    legs = world.fake.order(cid).legs
    assert legs and all(leg.status in ("new", "accepted", "held") for leg in legs)
    commands = router(world)
    for leg in legs:
        reply = commands.handle(f"/cancel {leg.client_order_id}", ann(world))
        assert reply.confirmation is None
        assert reply.text == (
            f"Not canceled: {leg.client_order_id} protects the open AAPL position (its stop-loss or "
            "take-profit): canceling it would leave the position unprotected. /sell AAPL all or /flatten "
            "closes the position and its protection with it."
        )
    assert all(world.fake.order(leg.client_order_id).is_live for leg in legs)


def test_cancel_with_a_confirmation_id_still_drops_that_question(world):
    commands = router(world)
    asked = commands.handle("/buy MSFT 1", ann(world, message_id=5))
    token = asked.confirmation.token
    assert commands.handle(f"/cancel {token}", ann(world)).text == "Canceled: buy 1 MSFT at market."
    assert commands.confirm(token, ann(world)).text == "Nothing to confirm: unknown or already used."
    assert world.fake.top_orders() == []  # nothing was sent


def test_a_stale_cancel_is_ignored(world):
    cid = buy(world, 1, "msg-4")
    old = Caller(
        "telegram", chat_id=1, user_id=7, name="ann", sent_at=world.clock.now() - timedelta(minutes=5)
    )
    reply = router(world).handle(f"/cancel {cid}", old)
    assert reply.text.startswith("/cancel ignored: sent while the bot was offline")
    assert world.fake.order(cid).is_open
