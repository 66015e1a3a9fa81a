"""The Telegram front end, end to end: real python-telegram-bot over HTTP to a fake Bot API server.

Each test builds an app on a temporary SQLite file (simulated market), runs the front end in a
background thread against ``tests.fakes.telegram_api.FakeTelegram`` and asserts on what the
bot sent. No other network.
"""

from __future__ import annotations

import logging
import re
import time
from datetime import date

import pytest

from bot.clock import SystemClock
from bot.domain import EventKind, Side
from tests.fakes.telegram_api import BotThread, FakeTelegram
from tests.helpers import make_app

TOKEN = "123456789:AAHfakeTokenForTests_0123456789abcdefXYZ"
ME, GROUP, MEMBER, STRANGER = 111, -1001, 42, 999
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def server():
    with FakeTelegram(TOKEN) as fake:
        yield fake


def build(tmp_path, server, **env):
    settings = {
        "TRADEBOT_SYMBOLS": "AAPL,BTC/USD",
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_BASE_URL": server.base_url,
        "TELEGRAM_ALLOWED_CHAT_IDS": f"{ME},{GROUP}",
        "TELEGRAM_ALLOWED_USER_IDS": str(MEMBER),
        "DAILY_SUMMARY_TIME": "off",
        **env,
    }
    app, clock = make_app(tmp_path / "bot.db", **settings)
    app.router.wall_clock = SystemClock()  # Telegram stamps messages with real time
    app.service.emit(EventKind.STARTED, "tradebot started: test")  # as the runner does first
    for _ in range(30):  # some history for charts and an equity curve
        clock.advance(minutes=1)
        app.engine.tick()
    return app, clock


@pytest.fixture
def bot(tmp_path, server):
    app, _ = build(tmp_path, server)
    with BotThread(app):
        yield app
    app.db.dispose()


def ask(server, chat_id, text, contains, **kwargs):
    mark = server.mark()
    server.command(chat_id, text, **kwargs)
    return server.wait_reply(chat_id, contains, after=mark)


def delivered(app, event_id, chats=(ME, GROUP)):
    """True once every chat's alert cursor is at or past ``event_id``: each was sent and, the
    cursor having moved, can no longer be sent again."""
    cursors = app.service.feed.cursors("telegram:")
    return all(cursors.get(f"telegram:{chat}", 0) >= event_id for chat in chats)


def prompt_button(call, label):
    keyboard = call.params["reply_markup"]["inline_keyboard"][0]
    return next(b["callback_data"] for b in keyboard if b["text"] == label)


# ---------------------------------------------------------------------- commands


def test_every_command_answers_through_the_router(bot, server):
    expected = {
        "/start": "tradebot here",
        "/help": "/chart SYMBOL [timeframe]",
        "/status": "Mode: SIMULATED market",
        "/positions": "positions",
        "/orders": "orders",
        "/orders all": "orders",
        "/trades 5": "trades",
        "/pnl": "Sharpe",
        "/risk": "Risk limits",
        "/strategies": "supertrend",
        "/alerts": "fills: on",
        "/nosuch": "Unknown command /nosuch",
        f"/status@{'tradebot_test_bot'}": "Mode:",
    }
    for text, contains in expected.items():
        ask(server, ME, text, contains)
    menu = {c["command"] for c in server.commands}
    assert {"status", "pause", "flatten", "chart", "equity", "alerts"} <= menu
    assert "confirm" not in menu


def test_a_command_for_another_bot_in_the_group_is_ignored(bot, server):
    mark = server.mark()
    server.command(GROUP, "/status@someotherbot", user_id=MEMBER)
    ask(server, GROUP, "/positions", "positions", user_id=MEMBER)
    assert not any("Mode:" in c.text for c in server.calls[mark:] if c.method == "sendMessage")


def test_chart_and_equity_are_real_pngs(bot, server):
    reply = ask(server, ME, "/chart BTC/USD", "BTC/USD 1m")
    assert reply.method == "sendPhoto" and reply.files["photo"].startswith(PNG)
    assert "supertrend" in reply.text
    assert re.search(r"bars to \S+ \S+ UTC \(simulated clock\), close", reply.text), reply.text
    other = ask(server, ME, "/chart AAPL 5m", "AAPL 5m")
    assert other.files["photo"].startswith(PNG)
    assert "Usage: /chart SYMBOL [timeframe]" in ask(server, ME, "/chart AAPL 7x", "Usage").text
    equity = ask(server, ME, "/equity", "Equity")
    assert equity.method == "sendPhoto" and equity.files["photo"].startswith(PNG)
    assert re.search(r"since \S+ \(simulated clock\)\)", equity.text), equity.text


def test_pause_and_resume_change_state_and_alert(bot, server):
    app = bot
    ask(server, ME, "/pause", "Paused: no new entries")
    assert app.service.paused()
    server.wait_reply(GROUP, "Trading paused by @ann")
    ask(server, ME, "/resume", "Resumed")
    assert not app.service.paused()


def test_a_stale_state_changing_command_is_refused(bot, server):
    app = bot
    reply = ask(server, ME, "/pause", "ignored: sent while the bot was offline", date=time.time() - 120)
    assert "/pause ignored" in reply.text
    assert not app.service.paused()
    ask(server, ME, "/status", "Mode:", date=time.time() - 600)  # reading is fine


# ---------------------------------------------------------------------- authorization


def test_unauthorized_chat_changes_nothing_gets_nothing_and_is_recorded_once(bot, server):
    app = bot
    mark = server.mark()
    for _ in range(5):
        server.command(STRANGER, "/pause")
    server.command(STRANGER, "/positions")
    server.wait_reply(ME, "Refused '/pause' from user 999", after=mark)
    ask(server, ME, "/status", "State: active")  # processed after the stranger's updates
    assert not app.service.paused()
    assert server.calls_of("sendMessage", "sendPhoto", "editMessageText", chat_id=STRANGER) == []
    refused = app.service.recent_events(50, kind=EventKind.UNAUTHORIZED)
    assert len(refused) == 1  # rate-limited: one record for the burst
    assert refused[0].data["chat_id"] == STRANGER


def test_group_members_need_the_user_allow_list(bot, server):
    app = bot
    mark = server.mark()
    server.command(GROUP, "/pause", user_id=555)
    server.wait_reply(ME, "group member not in TELEGRAM_ALLOWED_USER_IDS", after=mark)
    assert not app.service.paused()
    ask(server, GROUP, "/pause", "Paused", user_id=MEMBER)
    assert app.service.paused()


def test_a_strangers_button_press_is_refused(bot, server):
    app = bot
    prompt = ask(server, ME, "/buy BTC/USD 0.01", "Confirm: buy 0.01 BTC/USD")
    mark = server.mark()
    server.press(STRANGER, prompt.message_id, prompt_button(prompt, "Confirm"))
    server.press(GROUP, prompt.message_id, prompt_button(prompt, "Confirm"), user_id=555)
    server.wait_reply(ME, "Refused 'button c:", after=mark)
    server.wait_for(  # both presses were stopped at the allow-list (each is recorded there)
        lambda: len(app.service.recent_events(50, kind=EventKind.UNAUTHORIZED)) >= 2, what="both refusals"
    )
    assert server.calls_of("answerCallbackQuery") == []
    assert not [p for p in app.service.positions() if p.strategy == "manual"]


# ---------------------------------------------------------------------- confirmations


def _open_position(app):
    outcome = app.service.place_manual("BTC/USD", Side.BUY, 0.01, "test:1", by="test")
    assert outcome.status == "filled", outcome


def test_flatten_confirm(bot, server):
    app = bot
    _open_position(app)
    prompt = ask(server, ME, "/flatten", "Confirm: close all")
    assert "BTC/USD" in prompt.text
    assert all(
        len(b["callback_data"].encode()) <= 64 for b in prompt.params["reply_markup"]["inline_keyboard"][0]
    )
    server.press(ME, prompt.message_id, prompt_button(prompt, "Confirm"))
    edited = server.wait_reply(ME, "Flatten:")
    assert edited.method == "editMessageText" and "Done: Sold 0.01 BTC/USD" in edited.text
    assert "reply_markup" not in edited.params  # the buttons are gone
    assert server.calls_of("answerCallbackQuery")
    assert app.service.positions() == []


def test_flatten_cancel(bot, server):
    app = bot
    _open_position(app)
    before = app.service.positions()
    prompt = ask(server, ME, "/flatten", "Confirm: close all")
    server.press(ME, prompt.message_id, prompt_button(prompt, "Cancel"))
    assert server.wait_reply(ME, "Canceled: close all").method == "editMessageText"
    assert app.service.positions() == before


def test_flatten_expired(bot, server):
    app = bot
    app.router.confirm_ttl = 1.0
    _open_position(app)
    prompt = ask(server, ME, "/flatten", "Confirm: close all")
    expired = server.wait_reply(ME, "Expired: not done", timeout=5)
    assert expired.method == "editMessageText" and "reply_markup" not in expired.params
    server.press(ME, prompt.message_id, prompt_button(prompt, "Confirm"))  # too late
    late = server.wait_reply(ME, "at market was not done. Send the command again.")
    assert late.text.count("Expired") == 2  # the prompt's own note, then the router's answer
    assert "BTC/USD" in [p.symbol for p in app.service.positions()]


# ---------------------------------------------------------------------- alerts


def test_alerts_arrive_once_in_every_allowed_chat_after_a_fill(bot, server):
    app = bot
    prompt = ask(server, ME, "/buy BTC/USD 0.02", "Confirm: buy 0.02 BTC/USD")
    server.press(ME, prompt.message_id, prompt_button(prompt, "Confirm"))
    server.wait_reply(ME, "Done: Bought 0.02 BTC/USD")
    for chat in (ME, GROUP):
        server.wait_reply(chat, "Bought 0.02 BTC/USD at")
    fill = next(
        e
        for e in app.service.recent_events(50, kind=EventKind.ORDER_FILLED)
        if "Bought 0.02 BTC/USD" in e.message
    )
    server.wait_for(lambda: delivered(app, fill.id), what="the cursors past the fill")
    for chat in (ME, GROUP):
        alerts = [c.text for c in server.calls_of("sendMessage", chat_id=chat)]
        assert sum("Bought 0.02 BTC/USD at" in t for t in alerts) == 1, alerts
        assert sum("Buy 0.02 BTC/USD placed" in t for t in alerts) == 1, alerts


def test_alerts_toggle_with_the_alerts_command(bot, server):
    app = bot
    ask(server, ME, "/alerts state off", "Alerts for state now off")
    mark = server.mark()
    app.service.pause(by="test")
    app.service.emit(EventKind.DATA_OUTAGE, "No trading on AAPL this cycle: test outage")
    server.wait_reply(ME, "test outage", after=mark)
    assert not any("Trading paused" in c.text for c in server.calls[mark:])
    assert "state: off" in ask(server, ME, "/alerts", "Alerts").text


def test_alerts_raised_while_telegram_is_down_arrive_once_it_answers(bot, server):
    app = bot
    server.outage = True
    tried = server.turned_away_count("sendMessage", 502)
    boom = app.service.emit(EventKind.STRATEGY_ERROR, "Strategy x failed on AAPL: boom")
    server.wait_for(lambda: server.turned_away_count("sendMessage", 502) > tried, what="a refused send")
    assert not any("boom" in t for t in server.replies(ME))
    assert not delivered(app, boom.id, chats=(ME,))  # the cursor waits for Telegram
    server.outage = False
    server.wait_reply(ME, "boom", timeout=15)
    server.wait_reply(GROUP, "boom", timeout=15)
    server.wait_for(lambda: delivered(app, boom.id), timeout=15, what="the cursors past the alert")
    assert sum("boom" in t for t in server.replies(ME)) == 1


def test_the_outbox_survives_a_restart(tmp_path, server):
    app, _ = build(tmp_path, server)
    with BotThread(app):
        before = app.service.emit(EventKind.INFO, "before the restart")
        server.wait_reply(ME, "before the restart")
        server.wait_for(lambda: delivered(app, before.id), what="the cursors past the first alert")
    down = app.service.emit(EventKind.INFO, "while the bot was down")  # e.g. raised just before a crash
    with BotThread(app):
        server.wait_reply(ME, "while the bot was down")
        server.wait_reply(GROUP, "while the bot was down")
        server.wait_for(lambda: delivered(app, down.id), what="the cursors past the second alert")
    assert sum("before the restart" in t for t in server.replies(ME)) == 1
    assert sum("while the bot was down" in t for t in server.replies(ME)) == 1


def test_a_429_is_retried(bot, server):
    app = bot
    for chat in (ME, GROUP):
        server.wait_reply(chat, "tradebot started")  # the start-up alerts are out of the way
    server.fail("sendMessage", times=1, retry_after=1, chat_id=ME)
    reply = ask(server, ME, "/status", "Mode:")
    refused = [c for c in server.calls if c.method == "sendMessage" and c.status == 429]
    assert len(refused) == 1 and refused[0].at < reply.at
    assert reply.at - refused[0].at >= 0.9  # waited as told
    server.fail("sendMessage", times=1, retry_after=1, chat_id=GROUP)  # an alert too
    alert = app.service.emit(EventKind.INFO, "after flood control")
    server.wait_reply(GROUP, "after flood control")
    server.wait_for(lambda: delivered(app, alert.id), what="the cursors past the alert")
    assert sum("after flood control" in t for t in server.replies(GROUP)) == 1


def test_a_burst_of_alerts_is_batched(bot, server):
    app = bot
    mark = server.mark()
    for i in range(40):
        app.service.emit(EventKind.INFO, f"burst {i}")
    server.wait_reply(ME, "burst 39", after=mark)
    sent = [
        c for c in server.calls[mark:] if c.method == "sendMessage" and c.chat_id == ME and "burst" in c.text
    ]
    assert len(sent) < 10  # 40 events, a handful of messages
    assert sum(c.text.count("burst ") for c in sent) == 40


# ---------------------------------------------------------------------- robustness


def test_a_failing_handler_answers_briefly_and_logs_the_traceback(bot, server, monkeypatch, caplog):
    app = bot

    def explode(text, caller):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(app.router, "handle", explode)
    with caplog.at_level(logging.ERROR):
        reply = ask(server, ME, "/status", "Sorry, that failed (RuntimeError)")
    assert "kaboom" not in reply.text
    assert any(r.exc_info and "kaboom" in str(r.exc_info[1]) for r in caplog.records)
    monkeypatch.undo()
    ask(server, ME, "/status", "Mode:")  # the application lives on


def test_telegram_down_at_start_does_not_stop_trading(tmp_path, server):
    app, clock = build(tmp_path, server)
    server.outage = True
    running = BotThread(app).start(wait_connected=False)
    try:
        for _ in range(3):
            clock.advance(minutes=1)
            assert app.engine.tick().finished == clock.now()
        server.wait_for(lambda: server.turned_away_count("getMe", 502) >= 2, what="a retried connection")
        assert not running.front.connected.is_set()
        server.outage = False
        server.wait_for(running.front.connected.is_set, timeout=15, what="reconnect")
        ask(server, ME, "/status", "Mode:")
    finally:
        running.stop()


def test_a_refused_token_turns_telegram_off_without_crashing(tmp_path, server):
    app, _ = build(tmp_path, server, TELEGRAM_BOT_TOKEN="111111111:BBwrongTokenForTests_0123456789abcdefXYZ")
    running = BotThread(app).start(wait_connected=False)
    server.wait_for(lambda: running.front.disabled, what="Telegram turned off")
    assert "refused the bot token" in running.front.disabled
    assert not running.front.connected.is_set() and server.turned_away_count("getMe", 401) == 1
    running.stop()


def test_the_token_never_appears_in_logs(tmp_path, server, caplog):
    """At INFO nothing logs it (httpx is kept at WARNING); at DEBUG the redaction filter that
    ``bot.logs.setup_logging`` puts on the real handler masks what python-telegram-bot prints."""
    from bot.logs import RedactingFilter

    secret = TOKEN.split(":")[1]
    for level in (logging.INFO, logging.DEBUG):
        caplog.clear()
        caplog.set_level(level)
        (tmp_path / str(level)).mkdir()
        app, _ = build(tmp_path / str(level), server)
        redacting = RedactingFilter(app.settings.secrets())
        if level == logging.DEBUG:
            # pytest's caplog handler is one object for the whole session: take the filter off
            # again, or it rewrites every later test's records (it drops their exc_info).
            caplog.handler.addFilter(redacting)
        try:
            with BotThread(app):
                ask(server, ME, "/status", "Mode:")
                ask(server, ME, "/chart BTC/USD", "BTC/USD")
                server.command(STRANGER, "/pause")
                server.wait_reply(ME, "Refused")
                server.fail("sendMessage", times=1, retry_after=1, chat_id=ME)
                ask(server, ME, "/pnl", "Sharpe")
        finally:
            caplog.handler.removeFilter(redacting)
        app.db.dispose()
        assert any(r.name.startswith("telegram") for r in caplog.records)  # python-telegram-bot did log
        assert secret not in caplog.text


# ---------------------------------------------------------------------- the daily summary


def test_the_daily_summary_reaches_the_chats(tmp_path, server):
    app, _ = build(tmp_path, server, DAILY_SUMMARY_TIME="16:15 America/New_York")
    assert app.service.daily_summary(date(2026, 3, 2)) is not None
    with BotThread(app):
        server.wait_reply(ME, "Daily summary 2026-03-02")
        server.wait_reply(GROUP, "Daily summary 2026-03-02")


# ---------------------------------------------------------------------- webhook mode


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_webhook_mode_takes_updates_on_port(tmp_path, server):
    pytest.importorskip("tornado", reason="webhook mode needs python-telegram-bot[webhooks]")
    import json
    import urllib.request

    port = _free_port()
    app, _ = build(tmp_path, server, TELEGRAM_WEBHOOK_URL="https://bot.example.com/hook", PORT=str(port))
    with BotThread(app) as running:
        assert server.calls_of("setWebhook")[0].params["url"] == "https://bot.example.com/hook"
        update = {
            "update_id": 1,
            "message": {
                "message_id": 5,
                "date": int(time.time()),
                "chat": {"id": ME, "type": "private"},
                "from": {"id": ME, "is_bot": False, "first_name": "Ann"},
                "text": "/status",
                "entities": [{"type": "bot_command", "offset": 0, "length": 7}],
            },
        }

        def post(secret):
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/hook",
                data=json.dumps(update).encode(),
                headers={"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": secret},
            )
            try:
                return urllib.request.urlopen(request, timeout=5).status
            except urllib.error.HTTPError as exc:
                return exc.code

        assert post("wrong") == 403  # only Telegram knows the secret
        assert post(running.front.config.webhook_secret) == 200
        server.wait_reply(ME, "Mode:")
