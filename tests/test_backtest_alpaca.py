"""`tradebot backtest --symbol`: history from Alpaca's data API (the real alpaca-py client against
the fake server on 127.0.0.1), cached on disk, and the same result as the same bars from a CSV."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.bars import Timeframe
from bot.data.sessions import regular_hours
from bot.data.synthetic import SyntheticMarket
from tests.fakes.alpaca import FakeAlpaca

ROOT = Path(__file__).resolve().parents[1]
START, END = datetime(2026, 1, 5, tzinfo=UTC), datetime(2026, 1, 8, tzinfo=UTC)


@pytest.fixture
def fake():
    with FakeAlpaca() as server:
        yield server


def backtest(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", "backtest", "--strategy", "supertrend", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
    )


def test_symbol_history_comes_from_alpaca_is_cached_and_matches_the_csv(fake, tmp_path):
    bars = SyntheticMarket().fetch(["AAPL"], Timeframe(60), START, END)["AAPL"]
    fake.set_bars("AAPL", bars)
    env = {"ALPACA_API_KEY": "test-key", "ALPACA_API_SECRET": "test-secret", "ALPACA_DATA_URL": fake.url}
    window = ("--symbol", "AAPL", "--start", "2026-01-05", "--end", "2026-01-08", "--timeframe", "1m")

    first = backtest(tmp_path, env, *window, "--json", "alpaca.json")
    assert first.returncode == 0, first.stderr
    fetched = len(fake.requests_to("GET", "/v2/stocks/bars"))
    assert fetched >= 1
    again = backtest(tmp_path, env, *window, "--json", "again.json")
    assert again.returncode == 0, again.stderr
    assert len(fake.requests_to("GET", "/v2/stocks/bars")) == fetched, "the second run reads the disk cache"

    # the synthetic market trades around the clock; a backtest on Alpaca sees what the live engine
    # would, regular hours only (TRADEBOT_EXTENDED_HOURS_BARS off)
    regular_hours(bars, Timeframe(60)).to_frame().to_csv(tmp_path / "aapl.csv")
    from_csv = backtest(tmp_path, {}, "--csv", "aapl.csv", "--json", "csv.json")
    assert from_csv.returncode == 0, from_csv.stderr
    a, b, c = (
        json.loads((tmp_path / name).read_text()) for name in ("alpaca.json", "again.json", "csv.json")
    )
    assert a["n_trades"] > 0
    assert a == b
    for key in ("n_trades", "final_equity", "trades", "max_drawdown_pct"):
        assert a[key] == c[key]
