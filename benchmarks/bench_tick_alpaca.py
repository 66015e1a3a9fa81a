"""One engine cycle over 50 symbols on Alpaca, against the local fake Alpaca server.

The whole path: build_app with Alpaca keys, alpaca-py over HTTP on 127.0.0.1, the history cache,
validation, Supertrend on every symbol, the service. Prints the cold cycle (full history: 300
bars x 50 symbols) and a warm one (one new bar each), with the number of data requests each made.
Target: under 2 s, data calls batched (a handful of multi-symbol requests, not one per symbol).

    .venv/bin/python benchmarks/bench_tick_alpaca.py
"""

from __future__ import annotations

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
# Letters only, as the settings require of a ticker (SAA, SAB, ...; CAA/USD, ...).
STOCKS = [f"S{_LETTERS[i // 26]}{_LETTERS[i % 26]}" for i in range(40)]
CRYPTO = [f"C{_LETTERS[i // 26]}{_LETTERS[i % 26]}/USD" for i in range(10)]
BARS = 300
LAST_BAR = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


def random_walk(seed: int, n: int, end: datetime) -> Bars:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    spread = close * 0.001
    start = int(end.timestamp()) - (n - 1) * 60
    times = np.array([(start + 60 * i) * NS for i in range(n)], dtype=np.int64)
    return Bars(times, close, close + spread, close - spread, close, np.full(n, 1000.0))


def data_requests(fake: FakeAlpaca) -> int:
    return sum(1 for r in fake.requests if r.path.endswith("/bars"))


def main() -> None:
    with FakeAlpaca() as fake, tempfile.TemporaryDirectory() as tmp:
        for i, symbol in enumerate(STOCKS + CRYPTO):
            fake.set_bars(symbol, random_walk(i, BARS + 1, LAST_BAR + timedelta(minutes=1)))
        settings = Settings.from_mapping(
            {
                "ALPACA_API_KEY": "test-key",
                "ALPACA_API_SECRET": "test-secret",
                "ALPACA_TRADING_URL": fake.url,
                "ALPACA_DATA_URL": fake.url,
                "DATABASE_URL": f"sqlite:///{tmp}/bench.db",
                "TRADEBOT_SYMBOLS": ",".join(STOCKS + CRYPTO),
                "TRADEBOT_TIMEFRAME": "1m",
                "TRADEBOT_HISTORY_BARS": str(BARS),
                "LOG_LEVEL": "WARNING",
            }
        )
        clock = ManualClock(LAST_BAR + timedelta(minutes=1, seconds=2))
        fake.clock.set(clock.now())  # Monday 10:01 in New York: the market is open
        app = build_app(settings, accelerate=False, clock=clock)
        assert app.lease.try_acquire(), "another process holds the trading lease"  # trade as `tradebot run`
        for label in ("cold (full history)", "warm (one new bar)"):
            before = data_requests(fake)
            started = time.perf_counter()
            report = app.engine.tick()
            elapsed = time.perf_counter() - started
            print(
                f"tick over {len(STOCKS) + len(CRYPTO)} symbols, {label}: {elapsed:.3f} s, "
                f"{data_requests(fake) - before} data requests (pages included), "
                f"{report.signals} signals, {len(report.orders)} orders, {len(report.data_problems)} data problems"
            )
            clock.advance(minutes=1)
            fake.clock.set(clock.now())
        print(f"target: < 2 s per tick -> {'met' if elapsed < 2 else 'MISSED'}")


if __name__ == "__main__":
    main()
