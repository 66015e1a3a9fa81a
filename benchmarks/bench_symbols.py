"""Many symbols (issue 19 item 5): the S&P 500 on Alpaca, and the cost per symbol staying linear.

1. ``tradebot tick`` as a whole process over 500 symbols (450 stocks, 50 crypto pairs, 300 bars of
   one-minute history each) against the fake Alpaca server on 127.0.0.1, which enforces the free
   plan's 200 data requests a minute and 10,000 bars a page. A new process has an empty cache, so
   this is the cold cycle: all 150,000 bars. Target: < 3 s. Prints the requests it made: against
   Alpaca itself, add the network's round trip to each (the fake answers without Nagle's 40 ms).
2. One engine cycle in process on the simulated market over 200, 1,000 and 2,000 symbols (2,000 is
   past the 1,000 ``TRADEBOT_SYMBOLS`` allows: the settings are copied past their check, to see
   that the cost stays linear). Target: < 2 s for 2,000, the first cycle included.

The process's clock is pinned to a weekday at 10:00 in New York (``SystemClock.now``, one
attribute, set before ``bot.cli.main`` runs; start-up is otherwise the real ``tradebot tick``), and
the fake's clock to the same moment: the stocks are open and their bars fresh whatever the hour
the benchmark runs at; outside market hours a real tick would fetch the crypto pairs alone.

    .venv/bin/python benchmarks/bench_symbols.py
"""

from __future__ import annotations

import contextlib
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.app import build_app  # noqa: E402
from bot.bars import NS, Bars  # noqa: E402
from bot.clock import ManualClock  # noqa: E402
from bot.config import Settings  # noqa: E402
from tests.fakes.alpaca import FakeAlpaca  # noqa: E402

_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
BARS = 300
TICK_TARGET = 3.0
CYCLE_TARGET = 2.0


def tickers(count: int, first: str = "S") -> list[str]:
    """Letters only, as the settings require (SAAA, SAAB, ...)."""
    return [f"{first}{_LETTERS[i // 676]}{_LETTERS[i // 26 % 26]}{_LETTERS[i % 26]}" for i in range(count)]


def pairs(count: int) -> list[str]:
    return [f"{name}/USD" for name in tickers(count, "C")]


def random_walk(seed: int, n: int, last: datetime) -> Bars:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    spread = close * 0.001
    start = int(last.timestamp()) - (n - 1) * 60
    times = np.arange(start, start + 60 * n, 60, dtype=np.int64) * NS
    return Bars(times, close, close + spread, close - spread, close, np.full(n, 1000.0))


def market_hour(before: datetime) -> datetime:
    """The last weekday before ``before`` at 15:00 UTC (10:00 or 11:00 in New York), not a holiday."""
    day = before - timedelta(days=1)
    while day.weekday() >= 5 or (day.month, day.day) in ((12, 25), (1, 1), (7, 4), (11, 27)):
        day -= timedelta(days=1)
    return day.replace(hour=15, minute=0, second=0, microsecond=0)


PINNED_TICK = """
import sys
from datetime import datetime
import bot.clock
pinned = datetime.fromisoformat(sys.argv[1])
bot.clock.SystemClock.now = lambda self: pinned
from bot.cli import main
sys.exit(main(["tick"]))
"""


def whole_tick(symbols: list[str]) -> None:
    runs = 3
    with FakeAlpaca(nagle=False) as fake, tempfile.TemporaryDirectory() as tmp:
        opened = market_hour(datetime.now(UTC))
        for i, symbol in enumerate(symbols):
            fake.set_bars(symbol, random_walk(i, BARS + runs, opened + timedelta(minutes=runs - 2)))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TRADEBOT_", "ALPACA_", "POLYGON_"))}
        env.update(
            PYTHONPATH=str(ROOT),
            ALPACA_API_KEY="test-key",
            ALPACA_API_SECRET="test-secret",
            ALPACA_TRADING_URL=fake.url,
            ALPACA_DATA_URL=fake.url,
            DATABASE_URL=f"sqlite:///{tmp}/bench.db",
            TRADEBOT_SYMBOLS=",".join(symbols),
            TRADEBOT_TIMEFRAME="1m",
            TRADEBOT_HISTORY_BARS=str(BARS),
            TRADEBOT_WEB_PORT="off",
            LOG_LEVEL="INFO",
        )
        # The database is created and migrated beforehand, as for a bot that ticks from cron.
        subprocess.run(
            [sys.executable, "-m", "bot", "db", "upgrade"], env=env, cwd=tmp, check=True, capture_output=True
        )
        times = []
        for run in range(runs):
            now = opened + timedelta(minutes=run, seconds=5)  # the minute's bar is out (3 s later)
            fake.clock.set(now)
            before = len(fake.requests)
            started = time.perf_counter()
            result = subprocess.run(
                [sys.executable, "-c", PINNED_TICK, now.isoformat()],
                env=env,
                cwd=tmp,
                capture_output=True,
                text=True,
            )
            times.append(time.perf_counter() - started)
            made = fake.requests[before:]
            data = sum(1 for r in made if r.path.endswith("/bars"))
            statuses = sorted({r.status for r in made})
            summary = [line.split("tick: ")[-1] for line in result.stderr.splitlines() if "tick: " in line]
            assert result.returncode == 0, result.stderr[-3000:]
            print(
                f"  tradebot tick: {times[-1]:.2f} s, {len(made)} requests ({data} for bars, pages "
                f"included), statuses {statuses}; {summary[-1] if summary else '?'}"
            )
        load = os.getloadavg()
        median = statistics.median(times)
        print(
            f"tradebot tick over {len(symbols)} symbols on the Alpaca fake, whole process, cold cache: "
            f"median {median:.2f} s of 3 (target < {TICK_TARGET:.0f} s -> {'met' if median < TICK_TARGET else 'MISSED'}); "
            f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}"
        )


def cycles(count: int) -> tuple[float, float]:
    """(first cycle, median of 5 later ones), in seconds, over ``count`` simulated symbols."""
    symbols = tickers(count - count // 10) + pairs(count // 10)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.from_mapping(
            {
                "DATABASE_URL": f"sqlite:///{Path(tmp) / 'bench.db'}",
                "TRADEBOT_SYMBOLS": ",".join(symbols[:1000]),
                "MAX_OPEN_TRADES": "50",
                "MAX_PORTFOLIO_RISK_PCT": "20",
                "MAX_POSITION_PCT": "2",
                "LOG_LEVEL": "ERROR",
            }
        )
        settings = settings.model_copy(update={"tradebot_symbols": tuple(symbols)})
        clock = ManualClock(datetime(2026, 3, 2, 14, 30, tzinfo=UTC))
        app = build_app(settings, accelerate=False, clock=clock)
        assert app.lease.try_acquire(), "another process holds the trading lease"
        # The events logged (Python's last-resort handler: no logging is set up), 2,000 symbols' worth.
        with contextlib.redirect_stderr(io.StringIO()):
            started = time.perf_counter()
            report = app.engine.tick()
            first = time.perf_counter() - started
            assert not report.data_problems, list(report.data_problems.items())[:3]
            later = []
            for _ in range(5):
                clock.advance(minutes=1)
                started = time.perf_counter()
                app.engine.tick()
                later.append(time.perf_counter() - started)
        app.db.dispose()
        return first, statistics.median(later)


def main() -> None:
    whole_tick(tickers(450) + pairs(50))
    figures = {}
    for count in (200, 1000, 2000):
        first, later = cycles(count)
        figures[count] = first
        print(
            f"engine cycle over {count} simulated symbols, in process: first {first * 1000:.0f} ms "
            f"({BARS} bars each), then median {later * 1000:.0f} ms; "
            f"{first / count * 1e6:.0f} us a symbol (first)"
        )
    load = os.getloadavg()
    print(
        f"2,000 symbols: {figures[2000]:.2f} s (target < {CYCLE_TARGET:.0f} s -> "
        f"{'met' if figures[2000] < CYCLE_TARGET else 'MISSED'}); 2,000 / 200 = "
        f"{figures[2000] / figures[200]:.1f}x for 10x the symbols; "
        f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}"
    )


if __name__ == "__main__":
    main()
