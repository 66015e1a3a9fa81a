"""Manual orders are checked before the question, and quantities are real quantities.

Issue 10, point 6: an unknown or untradable symbol, a sell with no position, and an entry the
risk checks would block are answered at once, without a confirmation; `/confirm` with no ID
confirms the only pending action. Issue 12, point 4: a quantity below the asset's minimum or
increment, non-finite or absurdly large is refused before any confirmation (one test per attack
of the issue); an existing dust position is swept up by /flatten and blocks no entry.

The real app on a SQLite file (the simulated exchange keeps its own books there), driven
through the command router as the console and Telegram drive it.
"""

from __future__ import annotations

import sqlite3

import pytest

from bot.commands import Caller
from bot.domain import Position
from storage import repository as repo
from storage.models import SimPositionRow
from tests.helpers import make_app


@pytest.fixture
def bot(tmp_path):
    app, clock = make_app(tmp_path / "bot.db", TRADEBOT_SYMBOLS="AAPL,MSFT,BTC/USD")
    clock.advance(minutes=1)
    app.engine.tick()
    return app, clock


def chat(clock, message_id=None, chat_id=1):
    return Caller(
        "telegram", chat_id=chat_id, user_id=7, name="ann", sent_at=clock.now(), message_id=message_id
    )


def orders_in(tmp_path) -> int:
    with sqlite3.connect(tmp_path / "bot.db") as c:
        return (
            c.execute("SELECT count(*) FROM orders").fetchone()[0]
            + c.execute("SELECT count(*) FROM sim_orders").fetchone()[0]
        )


def buy(app, clock, text, message_id):
    """Ask, and confirm if asked; the reply a person reads."""
    reply = app.router.handle(text, chat(clock, message_id))
    if reply.confirmation is None:
        return reply.text
    return app.router.confirm(reply.confirmation.token, chat(clock, message_id)).text


# --------------------------------------------------------------------- answered before any question


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        # issue 10, point 6: an unconfigured symbol, a typo, no position to sell, a blocked entry
        ("/buy FOO 1", "Not bought: FOO is not a traded symbol (TRADEBOT_SYMBOLS: AAPL, MSFT, BTC/USD)."),
        ("/buy APPL 1", "Not bought: APPL is not a traded symbol (TRADEBOT_SYMBOLS: AAPL, MSFT, BTC/USD)."),
        ("/sell TSLA all", "Not sold: no TSLA position to sell."),
        ("/sell AAPL 3", "Not sold: no AAPL position to sell."),
        ("/buy AAPL 1000000", "Not bought: position value "),
        # issue 12, point 4: quantities that are not real quantities
        (
            "/buy BTC/USD 0.000000001",
            "Not bought: 0.000000001 BTC/USD is below the smallest order (0.000001 BTC).",
        ),
        ("/buy AAPL 1e-300", "Not bought: 1e-300 AAPL is below the smallest order (one share)."),
        ("/buy AAPL 0.5", "Not bought: 0.5 AAPL is below the smallest order (one share)."),
        ("/buy BTC/USD 0.0000015", "Not bought: 0.0000015 BTC/USD is not a multiple of 0.000001 BTC."),
        ("/buy AAPL 2.5", "Not bought: 2.5 AAPL is not a multiple of one share."),
        (
            "/buy AAPL 1e12",
            "Not bought: 1,000,000,000,000 is not a plausible quantity (at most 1,000,000,000 per order).",
        ),
        ("/buy AAPL inf", "Usage: /buy SYMBOL QTY\n'inf' is not a positive quantity."),
        ("/buy AAPL nan", "Usage: /buy SYMBOL QTY\n'nan' is not a positive quantity."),
        ("/buy AAPL 1e309", "Usage: /buy SYMBOL QTY\n'1e309' is not a positive quantity."),
        ("/sell AAPL -1", "Usage: /sell SYMBOL QTY|all\n'-1' is not a positive quantity or 'all'."),
    ],
)
def test_refused_at_once_without_a_question(bot, tmp_path, text, answer):
    app, clock = bot
    before = orders_in(tmp_path)
    reply = app.router.handle(text, chat(clock, message_id=1))
    assert reply.confirmation is None, reply.text
    assert reply.text.startswith(answer), reply.text
    assert orders_in(tmp_path) == before
    assert app.router.pending_for(chat(clock)) == []


def test_a_sell_below_the_minimum_is_refused_while_holding(bot):
    """Issue 12: `/sell MSFT 1e-300` recorded "Sold 0"."""
    app, clock = bot
    assert buy(app, clock, "/buy MSFT 3", 1).startswith("Done: Bought 3 MSFT")
    reply = app.router.handle("/sell MSFT 1e-300", chat(clock, 2))
    assert reply.confirmation is None
    assert reply.text == "Not sold: 1e-300 MSFT is below the smallest order (one share)."
    assert [p.qty for p in app.service.positions()] == [3]


def test_a_sell_that_would_leave_dust_is_refused(bot):
    app, clock = bot
    leave_dust(app, "BTC/USD", 0.0100005, 50_000.0)  # a position off the grid (a fee paid in the coin)
    reply = app.router.handle("/sell BTC/USD 0.01", chat(clock, 1))
    assert reply.confirmation is None
    assert reply.text == (
        "Not sold: selling 0.01 would leave 0.0000005 BTC/USD, below the smallest order: sell all instead."
    )
    reply = app.router.handle("/sell BTC/USD 0.0099999", chat(clock, 2))
    assert reply.text == "Not sold: 0.0099999 BTC/USD is not a multiple of 0.000001 BTC."
    assert buy(app, clock, "/sell BTC/USD 0.005", 3).startswith("Done: Sold 0.005 BTC/USD")
    assert buy(app, clock, "/sell BTC/USD all", 4).startswith("Done: Sold 0.0050005 BTC/USD")
    assert app.service.positions() == []


def test_a_sell_beyond_the_position_is_refused_at_once(bot):
    app, clock = bot
    assert buy(app, clock, "/buy AAPL 2", 1).startswith("Done: Bought 2 AAPL")
    reply = app.router.handle("/sell AAPL 5", chat(clock, 2))
    assert reply.confirmation is None
    assert reply.text == "Not sold: only 2 AAPL held: can sell up to that (no short selling)."


def test_an_entry_blocked_while_paused_is_answered_at_once(bot):
    app, clock = bot
    app.service.pause(by="ann")
    reply = app.router.handle("/buy AAPL 1", chat(clock, 1))
    assert reply.confirmation is None
    assert reply.text == "Not bought: trading is paused: no new entries (exits still run)."


def test_numbers_in_the_question_are_written_for_people(tmp_path):
    """Issue 10: `/buy aapl 1000000` asked "buy 1e+06 AAPL"."""
    app, clock = make_app(
        tmp_path / "rich.db", TRADEBOT_SYMBOLS="AAPL,BTC/USD", TRADEBOT_SIM_CASH="1000000000"
    )
    app.service.set_risk("max_position_pct", 50)
    clock.advance(minutes=1)
    app.engine.tick()
    assert app.router.handle("/buy aapl 1000000", chat(clock, 1)).text.startswith(
        "Confirm: buy 1,000,000 AAPL at market?"
    )
    assert app.router.handle("/buy BTC/USD 0.25", chat(clock, 2)).text.startswith(
        "Confirm: buy 0.25 BTC/USD at market?"
    )


# --------------------------------------------------------------------- /confirm without an ID


def test_confirm_without_an_id_confirms_the_only_pending_action(bot):
    app, clock = bot
    assert app.router.handle("/confirm", chat(clock)).text == "Nothing to confirm."
    app.router.handle("/buy AAPL 2", chat(clock, 1))
    done = app.router.handle("/confirm", chat(clock, 2))
    assert done.text.startswith("Done: Bought 2 AAPL")
    assert app.router.handle("/confirm", chat(clock, 3)).text == "Nothing to confirm."


def test_confirm_without_an_id_lists_several_and_ignores_other_chats(bot):
    app, clock = bot
    first = app.router.handle("/buy AAPL 2", chat(clock, 1)).confirmation.token
    second = app.router.handle("/buy MSFT 1", chat(clock, 2)).confirmation.token
    app.router.handle("/buy BTC/USD 0.01", chat(clock, 3, chat_id=99))  # someone else's question
    listed = app.router.handle("/confirm", chat(clock, 4)).text
    assert listed == (
        "2 actions wait for confirmation; name one:\n"
        f"/confirm {first}: buy 2 AAPL at market\n"
        f"/confirm {second}: buy 1 MSFT at market"
    )
    assert app.service.positions() == []
    app.router.cancel(first, chat(clock))
    assert app.router.handle("/confirm", chat(clock, 5)).text.startswith("Done: Bought 1 MSFT")


def test_confirm_without_an_id_says_the_question_expired_and_what_it_was(bot):
    """Issue 18, point 4: an expired confirmation says it expired and what it was (once)."""
    app, clock = bot
    app.router.handle("/buy AAPL 2", chat(clock, 1))
    clock.advance(seconds=61)
    assert (
        app.router.handle("/confirm", chat(clock, 2)).text
        == "Expired: buy 2 AAPL at market was not done. Send the command again."
    )
    assert app.router.handle("/confirm", chat(clock, 3)).text == "Nothing to confirm."
    assert app.service.positions() == []


# --------------------------------------------------------------------- dust left by an older version


def leave_dust(app, symbol: str, qty: float, price: float) -> None:
    """The state `/buy AAPL 1e-300` used to leave: a dust position in both sets of books."""
    now = app.clock.now()
    with app.db.session() as s:
        repo.save_position(
            s, Position(symbol=symbol, qty=qty, avg_price=price, strategy="manual", opened_at=now)
        )
        s.add(SimPositionRow(symbol=symbol, qty=qty, avg_price=price, opened_at=now))


def test_dust_blocks_no_entry(bot):
    app, clock = bot
    leave_dust(app, "AAPL", 1e-300, 200.0)
    assert buy(app, clock, "/buy AAPL 2", 1).startswith("Done: Bought 2 AAPL")
    assert [round(p.qty, 9) for p in app.service.positions()] == [2]
    assert app.service.risk_view().open_trades == 1


def test_dust_does_not_count_as_an_open_trade_or_holding(bot):
    app, clock = bot
    leave_dust(app, "MSFT", 1e-300, 400.0)
    app.service.set_risk("max_open_trades", 1)
    assert buy(app, clock, "/buy AAPL 1", 1).startswith("Done: Bought 1 AAPL")


def test_flatten_sweeps_up_dust(bot, tmp_path):
    app, clock = bot
    leave_dust(app, "AAPL", 1e-300, 200.0)
    leave_dust(app, "BTC/USD", 1e-9, 50_000.0)
    asked = app.router.handle("/flatten", chat(clock, 1))
    assert "close all 2 positions (1e-300 AAPL, 0.000000001 BTC/USD) at market?" in asked.text
    result = app.router.confirm(asked.confirmation.token, chat(clock, 1)).text
    assert result.count("Done: Sold") == 2, result
    assert app.service.positions() == []
    with sqlite3.connect(tmp_path / "bot.db") as c:
        assert c.execute("SELECT count(*) FROM sim_positions").fetchone()[0] == 0
    clock.advance(minutes=1)
    app.engine.tick()  # and reconciliation finds nothing to re-adopt
    assert app.service.reconcile() == []
    assert app.service.positions() == []


def test_confirm_without_an_id_in_a_group_is_the_askers_own(bot):
    """In a group, /confirm alone confirms only what this user asked (issue 12: confirmations are
    bound to the user who asked)."""
    app, clock = bot
    ann = Caller("telegram", chat_id=-5, user_id=7, name="ann", sent_at=clock.now(), message_id=1)
    bob = Caller("telegram", chat_id=-5, user_id=8, name="bob", sent_at=clock.now(), message_id=2)
    app.router.handle("/buy AAPL 2", ann)
    assert app.router.handle("/confirm", bob).text == "Nothing to confirm."
    assert app.service.positions() == []
    assert app.router.handle("/confirm", ann).text.startswith("Done: Bought 2 AAPL")
