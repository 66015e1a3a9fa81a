"""Issue 12 item 6: Telegram, defence in depth. Each test starts from the attack.

Updates are parsed by python-telegram-bot itself (``Update.de_json``) from the JSON the Bot API
sends (core.telegram.org/bots/api: Message.forward_origin, MessageOriginUser.date, CallbackQuery).
"""

from __future__ import annotations

from datetime import timedelta

from telegram import Update

from bot.telegram.handlers import caller_of
from tests.helpers import make_app

OWNER, STRANGER, CHAT = 111, 222, 111


def message_update(clock, text, *, user=OWNER, sent_ago=0, forwarded_from=None, forwarded_ago=0):
    when = int((clock.now() - timedelta(seconds=sent_ago)).timestamp())
    message = {
        "message_id": 5,
        "date": when,
        "chat": {"id": CHAT, "type": "private"},
        "from": {"id": user, "is_bot": False, "first_name": "Ann", "username": "ann"},
        "text": text,
        "entities": [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}],
    }
    if forwarded_from is not None:
        message["forward_origin"] = {
            "type": "user",
            "date": int((clock.now() - timedelta(seconds=forwarded_ago)).timestamp()),
            "sender_user": {"id": forwarded_from, "is_bot": False, "first_name": "Bob"},
        }
    return Update.de_json({"update_id": 1, "message": message}, None)


def press(clock, token, *, user):
    return Update.de_json(
        {
            "update_id": 2,
            "callback_query": {
                "id": "q1",
                "from": {"id": user, "is_bot": False, "first_name": "X"},
                "chat_instance": "ci",
                "data": f"c:{token}",
                "message": {
                    "message_id": 6,
                    "date": int(clock.now().timestamp()),
                    "chat": {"id": CHAT, "type": "private"},
                    "text": "Confirm?",
                },
            },
        },
        None,
    )


def test_a_confirmation_button_works_only_for_the_user_who_asked(tmp_path):
    """The gate checks the chat; a press whose `from` is someone else must still do nothing."""
    app, clock = make_app(tmp_path / "bot.db", TRADEBOT_SYMBOLS="AAPL")
    asked = app.router.handle("/risk set max_open_trades 3", caller_of(message_update(clock, "/risk")))
    token = asked.confirmation.token
    refused = app.router.confirm(token, caller_of(press(clock, token, user=STRANGER)))
    assert refused.text == "This confirmation belongs to the user who asked for it."
    assert app.service.limits().max_open_trades == 5
    done = app.router.confirm(token, caller_of(press(clock, token, user=OWNER)))
    assert done.text == "Risk limit max_open_trades is now 3."


def test_a_forwarded_command_is_never_run_and_the_reply_says_so(tmp_path):
    app, clock = make_app(tmp_path / "bot.db", TRADEBOT_SYMBOLS="AAPL")
    update = message_update(clock, "/pause", forwarded_from=STRANGER)
    caller = caller_of(update)
    assert caller.forwarded
    reply = app.router.handle(update.message.text, caller)
    assert reply.text == "/pause ignored: forwarded messages are never run as commands. Send it yourself."
    assert not app.service.paused()
    forwarded_status = app.router.handle(
        "/status", caller_of(message_update(clock, "/status", forwarded_from=1))
    )
    assert "forwarded messages are never run" in forwarded_status.text


def test_the_stale_command_check_uses_the_original_date():
    """A message forwarded just now of a /flatten sent an hour ago is an hour old."""
    from bot.clock import ManualClock
    from tests.helpers import START

    clock = ManualClock(START)
    caller = caller_of(message_update(clock, "/flatten", forwarded_from=OWNER, forwarded_ago=3600))
    assert caller.sent_at == clock.now() - timedelta(seconds=3600)
    fresh = caller_of(message_update(clock, "/flatten", sent_ago=5))
    assert fresh.sent_at == clock.now() - timedelta(seconds=5) and not fresh.forwarded
