"""The transport-neutral command router: what the console and Telegram both rely on."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.commands import Caller
from tests.helpers import make_app


@pytest.fixture
def bot(tmp_path):
    app, clock = make_app(tmp_path / "bot.db", TRADEBOT_SYMBOLS="AAPL,BTC/USD")
    clock.advance(minutes=1)
    app.engine.tick()
    return app, clock


def chat(clock, chat_id=1, message_id=None, age_seconds=0):
    return Caller(
        "telegram",
        chat_id=chat_id,
        user_id=7,
        name="ann",
        sent_at=clock.now() - timedelta(seconds=age_seconds),
        message_id=message_id,
    )


def test_risk_set_asks_then_applies_and_persists(bot, tmp_path):
    app, clock = bot
    reply = app.router.handle("/risk set max_open_trades 3", chat(clock))
    assert reply.confirmation is not None and "set max_open_trades from 5 to 3" in reply.text
    assert app.service.limits().max_open_trades == 5  # not yet
    done = app.router.confirm(reply.confirmation.token, chat(clock))
    assert done.text == "Risk limit max_open_trades is now 3."
    restarted, _ = make_app(tmp_path / "bot.db", clock=clock)
    assert restarted.service.limits().max_open_trades == 3
    shown = restarted.router.handle("/risk", chat(clock)).text
    assert "max_open_trades: 3 (1..50) set by ann at " in shown and "(configured 5, default)" in shown


def test_risk_set_out_of_bounds_is_refused_without_asking(bot):
    app, clock = bot
    reply = app.router.handle("/risk set risk_per_trade_pct 50", chat(clock))
    assert reply.confirmation is None
    assert reply.text == "Not changed: risk_per_trade_pct must be between 0.1 and 5."


def test_confirmation_expires_and_belongs_to_its_chat(bot):
    app, clock = bot
    asked = app.router.handle("/buy AAPL 1", chat(clock, message_id=10))
    token = asked.confirmation.token
    assert (
        app.router.confirm(token, chat(clock, chat_id=2)).text == "This confirmation belongs to another chat."
    )
    clock.advance(seconds=61)
    expired = app.router.confirm(token, chat(clock))
    assert expired.text.startswith("Expired: buy 1 AAPL at market was not done.")
    assert app.service.positions() == []


def test_cancel_drops_the_pending_action(bot):
    app, clock = bot
    token = app.router.handle("/buy AAPL 1", chat(clock)).confirmation.token
    assert app.router.cancel(token, chat(clock)).text == "Canceled: buy 1 AAPL at market."
    assert app.router.confirm(token, chat(clock)).text.startswith("Nothing to confirm")


def test_a_replayed_buy_places_one_order(bot):
    app, clock = bot
    token = app.router.handle("/buy AAPL 2", chat(clock, message_id=42)).confirmation.token
    assert app.router.confirm(token, chat(clock, message_id=42)).text.startswith("Done: Bought 2 AAPL")
    # The same Telegram message delivered again after a crash: answered at once, nothing sent.
    again = app.router.handle("/buy AAPL 2", chat(clock, message_id=42))
    assert again.confirmation is None and again.text.startswith("Already done")
    # Likewise a replayed sell.
    pending = app.router.handle("/sell AAPL all", chat(clock, message_id=43)).confirmation.token
    assert app.router.confirm(pending, chat(clock, message_id=43)).text.startswith("Done: Sold 2 AAPL")
    replayed = app.router.handle("/sell AAPL all", chat(clock, message_id=43))
    assert replayed.text.startswith("Already done")
    assert app.service.positions() == []
    assert len(app.service.orders(open_only=False)) == 2  # one buy, one sell


def test_manual_buy_goes_through_the_risk_checks(bot):
    app, clock = bot
    reply = app.router.handle("/buy AAPL 100000", chat(clock, message_id=5))
    assert reply.confirmation is None  # answered at once, not after a question
    assert reply.text.startswith("Not bought: position value")
    assert app.service.positions() == []


def test_the_risk_checks_run_again_when_the_buy_is_confirmed(bot):
    app, clock = bot
    token = app.router.handle("/buy AAPL 2", chat(clock, message_id=5)).confirmation.token
    app.service.pause(by="ann")  # between the question and the answer
    reply = app.router.confirm(token, chat(clock, message_id=5))
    assert reply.text == (
        "Not done: buy 2 AAPL at market is no longer possible.\n"
        "Not bought: trading is paused: no new entries (exits still run)."
    )
    assert app.service.positions() == []


def test_sell_all_and_flatten(bot):
    app, clock = bot
    for message_id, text in ((1, "/buy AAPL 2"), (2, "/buy BTC/USD 0.01")):
        token = app.router.handle(text, chat(clock, message_id=message_id)).confirmation.token
        assert app.router.confirm(token, chat(clock, message_id=message_id)).text.startswith("Done: Bought")
    token = app.router.handle("/sell AAPL all", chat(clock, message_id=3)).confirmation.token
    assert app.router.confirm(token, chat(clock, message_id=3)).text.startswith("Done: Sold 2 AAPL")
    asked = app.router.handle("/flatten", chat(clock, message_id=4))
    assert "close the 1 position (0.01 BTC/USD) at market?" in asked.text
    result = app.router.confirm(asked.confirmation.token, chat(clock, message_id=4))
    assert "Sold 0.01 BTC/USD" in result.text
    assert app.service.positions() == []
    assert [t.exit_reason for t in app.service.trades()] == ["flatten", "manual"]


def test_stale_state_changing_commands_are_ignored_but_reads_are_answered(bot):
    app, clock = bot
    stale = app.router.handle("/pause", chat(clock, age_seconds=300))
    assert stale.text.startswith("/pause ignored: sent while the bot was offline")
    assert not app.service.paused()
    assert app.router.handle("/status", chat(clock, age_seconds=300)).text.startswith("Mode:")


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("hello", "Commands start with '/'"),
        ("/buy AAPL", "Usage: /buy SYMBOL QTY"),
        ("/buy AAPL -3", "Usage: /buy SYMBOL QTY"),
        ("/sell AAPL lots", "Usage: /sell SYMBOL QTY|all"),
        ("/risk set x", "Usage: /risk [set NAME VALUE | reset NAME|all]"),
        ("/trades 0", "Usage: /trades [N]"),
        ("/status@tradebot_bot", "Mode:"),
    ],
)
def test_malformed_commands_get_a_clear_answer(bot, text, answer):
    app, clock = bot
    assert app.router.handle(text, chat(clock)).text.startswith(answer)


@pytest.mark.parametrize(
    ("typed", "answer"),
    [
        ("/posiitons", "Unknown command /posiitons: did you mean /positions? Send /help for the list."),
        ("/stauts", "Unknown command /stauts: did you mean /status? Send /help for the list."),
        ("/flaten", "Unknown command /flaten: did you mean /flatten? Send /help for the list."),
        ("/pos", "Unknown command /pos: did you mean /positions? Send /help for the list."),
        ("/xyzzy", "Unknown command /xyzzy. Send /help for the list."),
    ],
)
def test_a_mistyped_command_gets_the_near_one(bot, typed, answer):
    app, clock = bot
    assert app.router.handle(typed, chat(clock)).text == answer


def test_cancel_with_no_id_drops_the_waiting_question(bot):
    app, clock = bot
    assert app.router.handle("/cancel", chat(clock)).text.startswith(
        "Usage: /cancel [ORDER_ID|CONFIRMATION_ID]"
    )
    app.router.handle("/buy AAPL 1", chat(clock, message_id=1))
    assert app.router.handle("/cancel", chat(clock)).text == "Canceled: buy 1 AAPL at market."
    assert app.router.handle("/confirm", chat(clock)).text == "Nothing to confirm."
    first = app.router.handle("/buy AAPL 1", chat(clock, message_id=2)).confirmation.token
    second = app.router.handle("/buy BTC/USD 0.01", chat(clock, message_id=3)).confirmation.token
    assert app.router.handle("/cancel", chat(clock)).text == (
        "2 actions wait for confirmation; name one:\n"
        f"/cancel {first}: buy 1 AAPL at market\n/cancel {second}: buy 0.01 BTC/USD at market"
    )
    clock.advance(seconds=61)
    assert app.router.handle("/cancel", chat(clock)).text == (
        "Nothing to cancel.\nExpired: buy 1 AAPL at market was not done. Send the command again.\n"
        "Expired: buy 0.01 BTC/USD at market was not done. Send the command again."
    )
    assert app.service.positions() == []


def test_orders_show_when_each_was_placed_and_the_id_of_a_working_one(bot):
    app, clock = bot
    token = app.router.handle("/buy AAPL 2", chat(clock, message_id=1)).confirmation.token
    app.router.confirm(token, chat(clock, message_id=1))
    shown = app.router.handle("/orders all", chat(clock)).text.splitlines()
    assert shown[0] == "Recent orders (placed, simulated clock, UTC):"
    assert shown[1].startswith(f"{clock.now():%m-%d %H:%M:%S} buy 2 AAPL filled @ ")
    assert " id " not in shown[1]  # filled: nothing to cancel
    assert app.router.handle("/orders", chat(clock)).text == "No open orders."
