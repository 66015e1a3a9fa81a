"""A hung Alpaca, seen as a trader sees it: `tradebot run` at a terminal, with Telegram through the
fake Bot API server, trading on the fake Alpaca server. Every Alpaca request hangs: the cycle
gives up within its stall budget (15 s, default settings), and meanwhile both the console and
Telegram answer a command.

No timing is asserted. That the answers came *during* the stall is shown by order: each reply
comes before the cycle's failure alert. That the cycle stayed within its bound is shown by what
reached Alpaca: with a 10 s request timeout and a 15 s budget, at most two requests of a cycle can
hang; every later one fails at once without being sent. ``benchmarks/bench_stall.py`` measures the
seconds.
"""

from __future__ import annotations

import math

from bot.alpaca.http import DEFAULT_STALL_BUDGET, DEFAULT_TIMEOUT
from tests import processes
from tests.fakes.alpaca import FakeAlpaca
from tests.fakes.telegram_api import FakeTelegram
from tests.terminal import Terminal

TOKEN = "987654321:AAEStallTestTokenNeverLogged_0123456789ab"
ME = 111
FAILED = "Engine cycle failed"


def test_a_hung_alpaca_stalls_one_cycle_while_telegram_and_the_console_answer(tmp_path):
    with FakeAlpaca() as fake, FakeTelegram(TOKEN) as telegram:
        fake.prices["BTC/USD"] = 50_000.0
        env = processes.environment(
            f"sqlite:///{tmp_path / 'tradebot.db'}",
            TERM="xterm",
            ALPACA_API_KEY="test-key",
            ALPACA_API_SECRET="test-secret",
            ALPACA_TRADING_URL=fake.url,
            ALPACA_DATA_URL=fake.url,
            TELEGRAM_BOT_TOKEN=TOKEN,
            TELEGRAM_BASE_URL=telegram.base_url,
            TELEGRAM_ALLOWED_CHAT_IDS=str(ME),
            TRADEBOT_CONSOLE="on",
            TRADEBOT_SYMBOLS="BTC/USD",
            TRADEBOT_INTERVAL_SECONDS="20",  # one cycle at start, the next 20 s later
            TRADEBOT_LEASE_SECONDS="30",
            DAILY_SUMMARY_TIME="off",
            LOG_LEVEL="WARNING",
        )
        term = Terminal(tmp_path, env, "run")
        try:
            telegram.wait_for(lambda: telegram.calls_of("getUpdates"), 60, "Telegram polling")
            fake.wait_for(
                lambda: fake.requests_to("GET", "/v1beta3/crypto/us/bars"), 30, "the first cycle's bars"
            )
            fake.hang_all = 60.0  # from now on Alpaca accepts connections and never answers
            sent_before = len(fake.requests)
            fake.wait_for(lambda: fake.hung, 40, "the next cycle to hang on Alpaca")

            mark = telegram.mark()
            telegram.command(ME, "/help")
            reply = telegram.wait_reply(ME, "/status", after=mark, timeout=15)
            assert FAILED not in term.screen, "Telegram answered only after the cycle gave up"
            assert "/status" in reply.text
            term.type("/help\n")
            screen = term.wait_for("/positions", timeout=15)
            assert FAILED not in screen, "the console answered only after the cycle gave up"

            screen = term.wait_for(FAILED, timeout=60)
            assert "failed or hung for 15 s" in screen
            reached = fake.requests[sent_before : len(fake.requests)]
            bound = math.ceil(DEFAULT_STALL_BUDGET / DEFAULT_TIMEOUT)  # 2: 10 s, then the 5 s left
            assert 1 <= len(reached) <= bound, [(r.method, r.path) for r in reached]
            telegram.wait_reply(ME, FAILED, timeout=15)  # the trader hears of it there too
        finally:
            fake.hang_all = 0.0
            term.close()
