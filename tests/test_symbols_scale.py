"""Issue 19 item 5: 1,000 symbols (the S&P 500 and then some), documented, and batched on Alpaca.

``TRADEBOT_SYMBOLS`` was capped at 200, a limit the README never named. At 1,000 now; one more is
refused in one line by every command. A 500-symbol cycle on the fake Alpaca server, which holds
the free plan's 200 data requests a minute and 10,000 bars a page, asks for many symbols a request
and stays within the limit: the number of requests grows with the bars (pages), not the symbols.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np

from bot.app import build_app
from bot.bars import NS, Bars
from bot.clock import ManualClock
from bot.config import Settings
from bot.config.types import MAX_SYMBOLS
from tests.fakes.alpaca import FakeAlpaca
from tests.helpers import take_lease
from tests.test_config_attacks import refused_by_every_command, refused_in_process

_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
OPEN = datetime(2026, 3, 2, 16, 0, tzinfo=UTC)  # Monday, 11:00 in New York: the market is open
BARS = 300


def tickers(count: int, first: str = "S") -> list[str]:
    return [f"{first}{_LETTERS[i // 676]}{_LETTERS[i // 26 % 26]}{_LETTERS[i % 26]}" for i in range(count)]


def test_a_thousand_symbols_are_accepted_and_one_more_is_refused_in_one_line(tmp_path):
    assert MAX_SYMBOLS == 1000
    thousand = tickers(990) + [f"{name}/USD" for name in tickers(10, "C")]
    settings = Settings.from_mapping({"TRADEBOT_SYMBOLS": ",".join(thousand)})
    assert len(settings.tradebot_symbols) == 1000
    one_more = ",".join([*thousand, "ZZZZ"])
    line = refused_in_process("TRADEBOT_SYMBOLS", one_more)
    assert "1001 symbols: allowed at most 1000" in line and len(line) < 300, line
    refused_by_every_command(tmp_path, "TRADEBOT_SYMBOLS", one_more, "1001 symbols: allowed at most 1000")


def walk(seed: int, last: datetime) -> Bars:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.002, BARS + 5)))
    start = int(last.timestamp()) - (BARS + 4) * 60
    times = np.arange(start, start + 60 * (BARS + 5), 60, dtype=np.int64) * NS
    return Bars(times, close, close * 1.001, close * 0.999, close, np.full(BARS + 5, 1000.0))


def test_a_500_symbol_cycle_on_alpaca_is_batched_within_the_rate_limit(tmp_path):
    stocks, pairs = tickers(450), [f"{name}/USD" for name in tickers(50, "C")]
    with FakeAlpaca() as fake:
        assert fake.data_rate_limit == 200 and fake.page_size == 10_000  # the free plan, kept strict
        for i, symbol in enumerate(stocks + pairs):
            fake.set_bars(symbol, walk(i, OPEN + timedelta(minutes=3)))
        clock = ManualClock(OPEN + timedelta(seconds=5))
        fake.clock.set(clock.now())
        settings = Settings.from_mapping(
            {
                "ALPACA_API_KEY": "test-key",
                "ALPACA_API_SECRET": "test-secret",
                "ALPACA_TRADING_URL": fake.url,
                "ALPACA_DATA_URL": fake.url,
                "DATABASE_URL": f"sqlite:///{tmp_path / 't.db'}",
                "TRADEBOT_SYMBOLS": ",".join(stocks + pairs),
                "TRADEBOT_TIMEFRAME": "1m",
                "TRADEBOT_HISTORY_BARS": str(BARS),
                "LOG_LEVEL": "WARNING",
            }
        )
        app = take_lease(build_app(settings, accelerate=False, clock=clock))
        per_cycle = []
        for _ in range(4):  # the cold cycle (all the history), then one new bar a cycle
            before = len(fake.requests)
            report = app.engine.tick()
            assert not report.data_problems, list(report.data_problems.items())[:3]
            bars = [r for r in fake.requests[before:] if r.path.endswith("/bars")]
            per_cycle.append(len(bars))
            # Many symbols a request: one query for the stocks, one for the pairs, each paged.
            assert {len(r.query["symbols"].split(",")) for r in bars} <= {len(stocks), len(pairs)}
            clock.advance(minutes=1)
            fake.clock.set(clock.now())
        app.db.dispose()
        statuses = {r.status for r in fake.requests}
        data = [r for r in fake.requests if "/bars" in r.path or "/trades" in r.path]
    print(f"data requests a cycle: {per_cycle}; {len(fake.requests)} requests in all")
    assert statuses == {200}, statuses  # never a 429: the limit was never reached
    # The cold cycle's requests: its bars in 10,000-bar pages, stocks and pairs apart.
    assert per_cycle[0] == math.ceil(450 * BARS / 10_000) + math.ceil(50 * BARS / 10_000), per_cycle
    assert all(n == 2 for n in per_cycle[1:]), per_cycle  # one new bar each: one page a query
    assert len(data) < fake.data_rate_limit
