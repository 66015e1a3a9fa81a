"""Issue 19: Telegram inputs the bot must refuse, through the real python-telegram-bot and the fake
Bot API server (``tests.fakes.telegram_api``).

* A private-chat update whose sender differs from the chat. Real Telegram never delivers one (a
  private chat's id is its user's id: Bot API, "Chat"), so the fake only sends it because a test
  asks; it stands for a forged or broken update, and must run nothing (defence in depth).
* ``/chart AAPL 999999d`` answered "failed: OverflowError": a timeframe is parsed by one function
  that refuses what the bot cannot handle, in one sentence.
"""

from __future__ import annotations

import pytest

from bot.domain import EventKind
from tests.fakes.telegram_api import BotThread, FakeTelegram
from tests.test_telegram import ME, STRANGER, TOKEN, ask, build


@pytest.fixture
def server():
    with FakeTelegram(TOKEN) as fake:
        yield fake


@pytest.fixture
def bot(tmp_path, server):
    app, _ = build(tmp_path, server)
    with BotThread(app):
        yield app
    app.db.dispose()


def test_a_private_chat_update_from_someone_else_runs_nothing(bot, server):
    app = bot
    mark = server.mark()
    server.command(ME, "/pause", user_id=STRANGER)  # chat: the owner's; sender: a stranger
    alert = server.wait_reply(ME, "Refused '/pause' from user 999", after=mark)
    assert "a private chat whose sender is not the chat's user" in alert.text
    ask(server, ME, "/status", "State: active")  # handled after the forged update
    assert not app.service.paused()
    assert not [c for c in server.calls[mark:] if c.method == "sendMessage" and "Paused" in c.text]
    [refused] = app.service.recent_events(10, kind=EventKind.UNAUTHORIZED)
    assert refused.data["chat_id"] == ME and refused.data["user_id"] == STRANGER
    assert "Paused" in ask(server, ME, "/pause", "Paused").text  # the owner still can


@pytest.mark.parametrize("timeframe", ["999999d", "8d", "\u0661m", "1M", "9" * 400 + "m"])
def test_a_timeframe_the_bot_cannot_draw_is_refused_in_one_sentence(bot, server, timeframe):
    reply = ask(server, ME, f"/chart AAPL {timeframe}", "invalid timeframe")
    assert reply.method == "sendMessage"
    assert "failed" not in reply.text and "Error" not in reply.text
    usage, sentence = reply.text.splitlines()
    assert usage == "Usage: /chart SYMBOL [timeframe]"
    assert sentence.startswith("invalid timeframe") and sentence.count(". ") == 0 and len(sentence) < 200
