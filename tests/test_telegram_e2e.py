"""`tradebot run` as a subprocess, commanded from Telegram through the fake Bot API server.

The real command line, environment variables only (TELEGRAM_BASE_URL points python-telegram-bot
at the fake server), the simulated market, a temporary SQLite file, logs at DEBUG captured to a
file that must never contain the token. The tests share one process, except the one that stops
its own; they pass in any order.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.fakes.telegram_api import FakeTelegram

TOKEN = "987654321:AAEe2eTokenNeverToBeLogged_0123456789abcd"
ME, STRANGER = 111, 666
PNG = b"\x89PNG\r\n\x1a\n"
ROOT = Path(__file__).resolve().parents[1]


class Bot:
    def __init__(self, server: FakeTelegram, process: subprocess.Popen[bytes], log: Path) -> None:
        self.server = server
        self.process = process
        self.log = log

    def ask(self, chat_id: int, text: str, contains: str, timeout: float = 20.0, **kwargs):
        mark = self.server.mark()
        self.server.command(chat_id, text, **kwargs)
        return self.server.wait_reply(chat_id, contains, timeout=timeout, after=mark)


@contextmanager
def running_bot(tmp: Path) -> Iterator[Bot]:
    """A real `tradebot run` process polling the fake Bot API server."""
    server = FakeTelegram(TOKEN).start()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "ALPACA_", "POLYGON_"))}
    env.update(
        {
            "TELEGRAM_BOT_TOKEN": TOKEN,
            "TELEGRAM_BASE_URL": server.base_url,
            "TELEGRAM_ALLOWED_CHAT_IDS": str(ME),
            "DATABASE_URL": f"sqlite:///{tmp / 'bot.db'}",
            "TRADEBOT_CONSOLE": "off",
            "TRADEBOT_WEB_PORT": "off",  # Telegram polls; no web server needed
            "TRADEBOT_SYMBOLS": "BTC/USD,ETH/USD",
            # Bands 100 ATRs wide never flip: the strategy opens nothing, so the tests' manual buy
            # is never refused because the engine bought the symbol first (seen under load).
            "TRADEBOT_STRATEGIES": "supertrend:period=10,multiplier=100",
            "DAILY_SUMMARY_TIME": "off",
            "LOG_LEVEL": "DEBUG",
            "PYTHONPATH": str(ROOT),
        }
    )
    log = tmp / "tradebot.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot", "--env-file", os.devnull, "run"],
            cwd=tmp,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    running = Bot(server, process, log)
    try:
        server.wait_for(lambda: server.calls_of("getUpdates") or process.poll() is not None, 60, "polling")
        assert process.poll() is None, log.read_text()
        yield running
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        server.stop()


@pytest.fixture(scope="module")
def bot(tmp_path_factory):
    """One process shared by the tests that only ask it things: none of them changes its state
    in a way another test reads, so they pass in any order."""
    with running_bot(tmp_path_factory.mktemp("telegram_e2e")) as running:
        yield running


def test_the_menu_is_published_and_commands_answer(bot):
    assert {"status", "chart", "flatten", "alerts"} <= {c["command"] for c in bot.server.commands}
    assert "Mode: SIMULATED market" in bot.ask(ME, "/status", "Mode:").text
    assert "Sharpe" in bot.ask(ME, "/pnl", "Sharpe").text


def test_chart_is_a_png(bot):
    reply = bot.ask(ME, "/chart BTC/USD", "BTC/USD 1m")
    assert reply.method == "sendPhoto" and reply.files["photo"].startswith(PNG)


def test_an_unauthorized_pause_changes_nothing(bot):
    mark = bot.server.mark()
    bot.server.command(STRANGER, "/pause")
    bot.server.wait_reply(ME, "Refused '/pause' from user 666", after=mark)
    assert bot.server.calls_of("sendMessage", "sendPhoto", chat_id=STRANGER) == []
    assert "State: active" in bot.ask(ME, "/status", "Mode:").text


def test_a_confirmed_buy_fills_and_alerts(bot):
    prompt = bot.ask(ME, "/buy ETH/USD 0.5", "Confirm: buy 0.5 ETH/USD")
    confirm = prompt.params["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
    mark = bot.server.mark()
    bot.server.press(ME, prompt.message_id, confirm)
    assert bot.server.wait_reply(ME, "Done: Bought 0.5 ETH/USD", after=mark).method == "editMessageText"
    bot.server.wait_reply(ME, "Bought 0.5 ETH/USD at", after=mark, timeout=20, methods=("sendMessage",))


def press_confirm(bot, prompt, contains):
    confirm = prompt.params["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
    mark = bot.server.mark()
    bot.server.press(ME, prompt.message_id, confirm)
    return bot.server.wait_reply(ME, contains, after=mark), mark


def test_a_confirmation_refused_after_a_change_asks_again_with_its_own_button(bot):
    """Issue 18, point 2: the question changed under the press; the old prompt says nothing was
    done, and the new question arrives with buttons of its own."""
    setup = bot.ask(ME, "/risk set max_open_trades 4", "Confirm: set max_open_trades")
    press_confirm(bot, setup, "Risk limit max_open_trades is now 4.")
    first = bot.ask(ME, "/risk set max_open_trades 3", "Confirm: set max_open_trades from 4 to 3?")
    meanwhile = bot.ask(ME, "/risk set max_open_trades 2", "Confirm: set max_open_trades from 4 to 2?")
    press_confirm(bot, meanwhile, "Risk limit max_open_trades is now 2.")

    edited, mark = press_confirm(bot, first, "Not done: things changed")
    assert edited.method == "editMessageText" and "reply_markup" not in edited.params
    assert edited.params["text"] == (
        "Confirm: set max_open_trades from 4 to 3?\n\n"
        "Not done: things changed since you were asked to set max_open_trades from 4 to 3."
    )
    again = bot.server.wait_reply(
        ME, "Confirm: set max_open_trades from 2 to 3?", after=mark, methods=("sendMessage",)
    )
    buttons = again.params["reply_markup"]["inline_keyboard"][0]
    old = first.params["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
    assert buttons[0]["callback_data"].startswith("c:") and buttons[0]["callback_data"] != old
    done, _ = press_confirm(bot, again, "Risk limit max_open_trades is now 3.")
    assert done.method == "editMessageText"
    assert "Mode:" in bot.ask(ME, "/status", "Mode:").text


def test_a_stale_pause_is_ignored(bot):
    reply = bot.ask(ME, "/pause", "ignored", date=time.time() - 90)
    assert "ignored: sent while the bot was offline" in reply.text
    assert "State: active" in bot.ask(ME, "/status", "Mode:").text


def test_a_429_is_retried(bot):
    mark = bot.server.mark()
    bot.server.fail("sendMessage", times=1, retry_after=1, chat_id=ME)
    bot.ask(ME, "/help", "/positions")
    assert [c for c in bot.server.calls[mark:] if c.method == "sendMessage" and c.status == 429]


def test_sigterm_stops_cleanly_and_the_token_is_not_in_the_log(tmp_path):
    with running_bot(tmp_path) as bot:  # its own process: this test ends it
        mark = bot.server.mark()
        bot.server.command(STRANGER, "/status")
        bot.server.wait_reply(ME, "Refused '/status' from user 666", after=mark)
        bot.process.send_signal(signal.SIGTERM)
        assert bot.process.wait(30) == 0
    text = bot.log.read_text()
    assert "Telegram connected as @tradebot_test_bot" in text
    assert "Refused" in text
    assert TOKEN.split(":")[1] not in text
