"""A confirmation does exactly what it showed, or refuses and asks the new question (issue 18, point 2).

`/flatten` asked "close all 2 positions (BTC/USD, MSFT)"; confirmed 37 s later, it closed 5. Here
each dangerous command is asked, the state changes between the question and the answer, and the
answer must do nothing but show the new question (with a confirmation of its own). The real app on
a SQLite file (the simulated exchange), through the command router every transport calls; the
Alpaca-world test of /cancel runs alpaca-py against the strict fake Alpaca server.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from bot.commands import Caller, CommandRouter
from bot.domain import Side
from bot.plugins import Registry
from tests.alpaca_world import AlpacaWorld
from tests.fakes.alpaca import FakeAlpaca
from tests.helpers import make_app


@pytest.fixture
def bot(tmp_path):
    app, clock = make_app(
        tmp_path / "bot.db",
        TRADEBOT_SYMBOLS="AAPL,MSFT,BTC/USD",
        # Bands 100 ATRs wide never flip: only the tests' own orders open positions.
        TRADEBOT_STRATEGIES="supertrend:period=10,multiplier=100",
    )
    clock.advance(minutes=1)
    app.engine.tick()
    return app, clock


def ann(clock, message_id=None, chat_id=1, transport="telegram"):
    return Caller(
        transport, chat_id=chat_id, user_id=7, name="ann", sent_at=clock.now(), message_id=message_id
    )


def bob(clock, message_id=None):
    """Someone else acting in between (another chat, another transport)."""
    return Caller("web", chat_id=2, name="bob", sent_at=clock.now(), message_id=message_id)


def act(app, caller, text):
    """Ask and confirm at once: the state change between someone else's question and answer."""
    asked = app.router.handle(text, caller)
    assert asked.confirmation is not None, asked.text
    done = app.router.confirm(asked.confirmation.token, caller)
    assert done.confirmation is None and not done.text.startswith("Not done"), done.text
    return done


def held(app):
    return {p.symbol: p.qty for p in app.service.positions()}


def test_flatten_asked_for_two_refuses_when_a_third_opened_and_asks_again(bot):
    app, clock = bot
    act(app, bob(clock, 1), "/buy AAPL 3")
    act(app, bob(clock, 2), "/buy BTC/USD 0.01")
    asked = app.router.handle("/flatten", ann(clock, 10))
    assert asked.text == "Confirm: close all 2 positions (3 AAPL, 0.01 BTC/USD) at market?"
    act(app, bob(clock, 3), "/buy MSFT 2")  # a third position opens before the answer
    clock.advance(seconds=37)

    refused = app.router.confirm(asked.confirmation.token, ann(clock, 10))
    assert refused.confirmation is not None
    assert refused.text == (
        "Not done: things changed since you were asked to close all 2 positions (3 AAPL, 0.01 BTC/USD) "
        "at market.\nConfirm: close all 3 positions (3 AAPL, 0.01 BTC/USD, 2 MSFT) at market?"
    )
    assert (
        refused.confirmation.prompt
        == "Confirm: close all 3 positions (3 AAPL, 0.01 BTC/USD, 2 MSFT) at market?"
    )
    assert refused.confirmation.replaces.startswith("Not done: things changed")
    assert held(app) == {"AAPL": 3, "BTC/USD": 0.01, "MSFT": 2}  # nothing was sold
    # The old question is used up; the new one does what it says.
    assert app.router.confirm(asked.confirmation.token, ann(clock, 10)).text.startswith("Nothing to confirm")
    done = app.router.confirm(refused.confirmation.token, ann(clock, 10))
    assert done.text.count("Done: Sold") == 3, done.text
    assert held(app) == {}


def test_flatten_asked_for_two_refuses_when_one_closed_meanwhile(bot):
    app, clock = bot
    act(app, bob(clock, 1), "/buy AAPL 3")
    act(app, bob(clock, 2), "/buy MSFT 2")
    asked = app.router.handle("/flatten", ann(clock, 10))
    act(app, bob(clock, 3), "/sell MSFT all")
    refused = app.router.confirm(asked.confirmation.token, ann(clock, 10))
    assert refused.confirmation is not None
    assert refused.confirmation.prompt == "Confirm: close the 1 position (3 AAPL) at market?"
    assert held(app) == {"AAPL": 3}


def test_flatten_with_nothing_left_says_so_and_does_nothing(bot):
    app, clock = bot
    act(app, bob(clock, 1), "/buy AAPL 3")
    asked = app.router.handle("/flatten", ann(clock, 10))
    act(app, bob(clock, 2), "/sell AAPL all")
    answer = app.router.confirm(asked.confirmation.token, ann(clock, 10))
    assert answer.confirmation is None
    assert answer.text == (
        "Not done: close the 1 position (3 AAPL) at market is no longer possible.\n"
        "No open positions: nothing to close."
    )


def test_sell_all_asked_at_10_refuses_when_the_position_became_15(bot):
    """The position grows while the question waits: the simulated exchange fills at most 10 of an
    order per bar (``max_fill_qty``), so a buy of 15 holds 10 at first and 15 one bar later."""
    app, clock = bot
    app.broker.max_fill_qty = 10
    act(app, bob(clock, 1), "/buy AAPL 15")
    assert held(app) == {"AAPL": 10}
    asked = app.router.handle("/sell AAPL all", ann(clock, 10))
    assert asked.text == "Confirm: sell all 10 AAPL at market?"
    clock.advance(minutes=1)
    app.service.sync()  # the rest of the buy fills at the next bar's open
    assert held(app) == {"AAPL": 15}

    refused = app.router.confirm(asked.confirmation.token, ann(clock, 10))
    assert refused.confirmation is not None
    assert refused.confirmation.prompt == "Confirm: sell all 15 AAPL at market?"
    assert refused.text.startswith("Not done: things changed since you were asked to sell all 10 AAPL")
    assert held(app) == {"AAPL": 15}
    app.broker.max_fill_qty = None
    done = app.router.confirm(refused.confirmation.token, ann(clock, 10))
    assert done.text.startswith("Done: Sold 15 AAPL"), done.text
    assert held(app) == {}


def test_sell_of_a_quantity_still_does_that_quantity_when_the_position_grew(bot):
    """`/sell AAPL 4` showed 4: a larger position does not change what 4 means."""
    app, clock = bot
    app.broker.max_fill_qty = 10
    act(app, bob(clock, 1), "/buy AAPL 15")
    asked = app.router.handle("/sell AAPL 4", ann(clock, 10))
    clock.advance(minutes=1)
    app.service.sync()
    app.broker.max_fill_qty = None
    done = app.router.confirm(asked.confirmation.token, ann(clock, 10))
    assert done.text.startswith("Done: Sold 4 AAPL"), done.text
    assert held(app) == {"AAPL": 11}


def test_risk_set_refuses_when_the_limit_was_changed_meanwhile(bot):
    app, clock = bot
    asked = app.router.handle("/risk set max_open_trades 3", ann(clock))
    assert asked.text == "Confirm: set max_open_trades from 5 to 3?"
    act(app, bob(clock), "/risk set max_open_trades 4")
    refused = app.router.confirm(asked.confirmation.token, ann(clock))
    assert refused.confirmation is not None
    assert refused.confirmation.prompt == "Confirm: set max_open_trades from 4 to 3?"
    assert app.service.limits().max_open_trades == 4
    assert (
        app.router.confirm(refused.confirmation.token, ann(clock)).text
        == "Risk limit max_open_trades is now 3."
    )


def test_risk_reset_all_refuses_when_another_limit_was_overridden_meanwhile(bot):
    app, clock = bot
    app.service.set_risk("max_open_trades", 3, by="bob")
    asked = app.router.handle("/risk reset all", ann(clock))
    assert asked.text == "Confirm: reset max_open_trades from 3 to 5?"
    app.service.set_risk("stop_loss_pct", 3, by="bob")
    refused = app.router.confirm(asked.confirmation.token, ann(clock))
    assert refused.confirmation is not None
    assert refused.confirmation.prompt == (
        "Confirm: reset stop_loss_pct from 3 to 2, max_open_trades from 3 to 5?"
    ) or refused.confirmation.prompt == (
        "Confirm: reset max_open_trades from 3 to 5, stop_loss_pct from 3 to 2?"
    )
    assert (app.service.limits().max_open_trades, app.service.limits().stop_loss_pct) == (3, 3)
    done = app.router.confirm(refused.confirmation.token, ann(clock))
    assert done.text.startswith("Back to the configured values: ")
    assert (app.service.limits().max_open_trades, app.service.limits().stop_loss_pct) == (5, 2)


def test_buy_is_the_same_action_whatever_else_changed(bot):
    """A buy's question shows a symbol and a quantity: another position opening changes neither."""
    app, clock = bot
    asked = app.router.handle("/buy AAPL 2", ann(clock, 10))
    act(app, bob(clock, 1), "/buy MSFT 1")
    done = app.router.confirm(asked.confirmation.token, ann(clock, 10))
    assert done.text.startswith("Done: Bought 2 AAPL"), done.text
    assert held(app) == {"AAPL": 2, "MSFT": 1}


def test_nothing_changes_between_the_check_and_the_action(bot):
    """The check and the action run under the service's lock: an order from another thread
    waits until the confirmed action is done, so the flatten sells exactly what it showed."""
    app, clock = bot
    act(app, bob(clock, 1), "/buy AAPL 3")
    asked = app.router.handle("/flatten", ann(clock, 10))
    service = app.service
    original = service.flatten
    started, other_done = threading.Event(), threading.Event()

    def slow_flatten(*args, **kwargs):
        started.set()
        other_done.wait(0.5)  # the other order would land here without the lock
        return original(*args, **kwargs)

    service.flatten = slow_flatten  # type: ignore[method-assign]

    def other_buy():
        started.wait(5)
        service.place_manual("MSFT", Side.BUY, 2, "other-thread", by="bob")
        other_done.set()

    thread = threading.Thread(target=other_buy)
    thread.start()
    done = app.router.confirm(asked.confirmation.token, ann(clock, 10))
    thread.join(10)
    assert done.text.count("Done: Sold") == 1 and "AAPL" in done.text, done.text
    assert held(app) == {"MSFT": 2}  # bought after the flatten, not sold by it


# --------------------------------------------------------------------- /cancel ORDER_ID (Alpaca)

MONDAY = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)  # 10:00 in New York: the market is open


@pytest.fixture
def world(db):
    with FakeAlpaca() as fake:
        fake.prices.update({"AAPL": 100.0})
        fake.illiquid.add("AAPL")  # the orders work until a test fills them
        yield AlpacaWorld(fake, db, MONDAY)


def test_cancel_refuses_when_the_order_filled_more_meanwhile(world):
    outcome = world.service.place_manual("AAPL", Side.BUY, 10, "msg-1")
    cid = outcome.order.client_order_id
    world.fake.fill(cid, price=100.0, qty=4)
    world.service.sync()
    commands = CommandRouter(world.service, Registry(), world.clock)
    caller = Caller("console", chat_id=1, name="ann", sent_at=world.clock.now())
    asked = commands.handle(f"/cancel {cid}", caller)
    assert asked.confirmation.prompt == (
        f"Confirm: cancel buy 10 AAPL (partially_filled, 4 filled; what filled stays) {cid}?"
    )
    world.fake.fill(cid, price=100.0, qty=3)  # 3 more fill at the exchange before the answer
    world.service.sync()
    refused = commands.confirm(asked.confirmation.token, caller)
    assert refused.confirmation is not None
    assert refused.confirmation.prompt == (
        f"Confirm: cancel buy 10 AAPL (partially_filled, 7 filled; what filled stays) {cid}?"
    )
    assert world.fake.order(cid).status == "partially_filled"  # not canceled
    done = commands.confirm(refused.confirmation.token, caller)
    assert done.text.startswith("Canceled: buy 10 AAPL canceled by ann; 7 filled before"), done.text
    assert world.fake.order(cid).status == "canceled"


def test_cancel_of_an_order_that_filled_meanwhile_is_refused(world):
    outcome = world.service.place_manual("AAPL", Side.BUY, 10, "msg-1")
    cid = outcome.order.client_order_id
    commands = CommandRouter(world.service, Registry(), world.clock)
    caller = Caller("console", chat_id=1, name="ann", sent_at=world.clock.now())
    asked = commands.handle(f"/cancel {cid}", caller)
    world.fake.fill(cid, price=100.0)
    world.service.sync()
    answer = commands.confirm(asked.confirmation.token, caller)
    assert answer.confirmation is None
    assert answer.text.startswith("Not done: cancel buy 10 AAPL")
    assert "filled already" in answer.text
