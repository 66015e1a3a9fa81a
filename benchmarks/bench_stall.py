"""How long a hung Alpaca stalls the bot, with default settings, as a trader runs it.

Two whole processes against the local fake Alpaca server, every request of which is accepted
and never answered (``hang_all``):

1. ``tradebot tick`` with Alpaca hung from the start: the seconds until the process exits (it
   cannot check the keys, and says so) and its exit status;
2. ``tradebot run`` at a pseudo-terminal with Telegram (the fake Bot API server): Alpaca hangs
   after start-up; the seconds one cycle stalls (from its first hung request to the failure
   alert on the console), and how long ``/help`` takes to answer meanwhile, on Telegram and at
   the console.

Target (issue 9): a hung Alpaca stalls one cycle ~15 s at most, and never stalls Telegram or the
console. Defaults: a 10 s timeout per request and a 15 s stall budget per cycle.

    .venv/bin/python benchmarks/bench_stall.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import processes  # noqa: E402
from tests.fakes.alpaca import FakeAlpaca  # noqa: E402
from tests.fakes.telegram_api import FakeTelegram  # noqa: E402
from tests.terminal import Terminal  # noqa: E402

TOKEN = "987654321:AAEBenchStallTokenNeverLogged_0123456789a"
ME = 111
FAILED = "Engine cycle failed"


def alpaca_env(tmp: Path, fake: FakeAlpaca, **extra: str) -> dict[str, str]:
    return processes.environment(
        f"sqlite:///{tmp / 'tradebot.db'}",
        TERM="xterm",
        ALPACA_API_KEY="test-key",
        ALPACA_API_SECRET="test-secret",
        ALPACA_TRADING_URL=fake.url,
        ALPACA_DATA_URL=fake.url,
        TRADEBOT_SYMBOLS="BTC/USD",
        LOG_LEVEL="WARNING",
        **extra,
    )


def tick(hung: bool) -> tuple[float, int]:
    with FakeAlpaca() as fake, tempfile.TemporaryDirectory() as tmp:
        fake.hang_all = 120.0 if hung else 0.0
        fake.prices["BTC/USD"] = 50_000.0
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "bot", "tick"],
            cwd=tmp,
            env=alpaca_env(Path(tmp), fake),
            capture_output=True,
            text=True,
            timeout=120,
        )
        elapsed = time.monotonic() - started
        fake.hang_all = 0.0
        if hung:
            print(f"  its message: {(done.stderr or done.stdout).strip().splitlines()[-1][:160]}")
        return elapsed, done.returncode


def run_with_alpaca_hung() -> tuple[float, float, float]:
    with FakeAlpaca() as fake, FakeTelegram(TOKEN) as telegram, tempfile.TemporaryDirectory() as tmp:
        fake.prices["BTC/USD"] = 50_000.0
        env = alpaca_env(
            Path(tmp),
            fake,
            TELEGRAM_BOT_TOKEN=TOKEN,
            TELEGRAM_BASE_URL=telegram.base_url,
            TELEGRAM_ALLOWED_CHAT_IDS=str(ME),
            TRADEBOT_CONSOLE="on",
            TRADEBOT_INTERVAL_SECONDS="20",
            TRADEBOT_LEASE_SECONDS="30",
            DAILY_SUMMARY_TIME="off",
        )
        term = Terminal(Path(tmp), env, "run")
        try:
            telegram.wait_for(lambda: telegram.calls_of("getUpdates"), 60, "Telegram polling")
            fake.wait_for(lambda: fake.requests_to("GET", "/v1beta3/crypto/us/bars"), 30, "the first cycle")
            fake.hang_all = 60.0
            first = len(fake.requests)
            fake.wait_for(lambda: fake.hung, 40, "a cycle hanging on Alpaca")
            stall_started = fake.requests[first].at
            asked = time.monotonic()
            mark = telegram.mark()
            telegram.command(ME, "/help")
            telegram.wait_reply(ME, "/status", after=mark, timeout=30)
            on_telegram = time.monotonic() - asked
            asked = time.monotonic()
            term.type("/help\n")
            term.wait_for("/positions", timeout=30)
            at_console = time.monotonic() - asked
            if FAILED in term.screen:
                print("  (the cycle gave up before both answers came: the machine is loaded)")
            term.wait_for(FAILED, timeout=60)
            stall = time.monotonic() - stall_started
            return stall, on_telegram, at_console
        finally:
            fake.hang_all = 0.0
            term.close()


def main() -> None:
    print("every Alpaca request hangs; default timeout 10 s, stall budget 15 s per cycle")
    elapsed, status = tick(hung=False)
    print(f"tradebot tick, Alpaca answering: {elapsed:.1f} s (status {status}): start-up and one cycle")
    elapsed, status = tick(hung=True)
    print(f"tradebot tick, Alpaca hung from the start: exits after {elapsed:.1f} s (status {status})")
    stall, on_telegram, at_console = run_with_alpaca_hung()
    print(f"tradebot run, Alpaca hung after start-up: one cycle stalls {stall:.1f} s, then gives up")
    print(
        f"  meanwhile /help answers in {on_telegram * 1000:.0f} ms on Telegram, {at_console * 1000:.0f} ms at the console"
    )


if __name__ == "__main__":
    main()
