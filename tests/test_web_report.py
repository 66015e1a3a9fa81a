"""`tradebot backtest --html`: one self-contained file with the data the chart needs.

The browser half (the file opens from disk and its chart draws) is in test_web_browser.py.
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from bot.backtest.runner import run_backtest
from bot.bars import Timeframe
from bot.data.synthetic import SyntheticMarket
from bot.plugins import load_registry
from bot.web import report


def synthetic_bars(days: float, symbol: str = "AAPL"):
    end = datetime(2026, 3, 1, tzinfo=UTC)
    return SyntheticMarket().fetch([symbol], Timeframe.parse("1m"), end - timedelta(days=days), end)[symbol]


def write_bars_csv(path: Path, days: float = 2) -> Path:
    bars = synthetic_bars(days)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["timestamp", "open", "high", "low", "close", "volume"])
        for i in range(len(bars)):
            when = datetime.fromtimestamp(int(bars.time[i]) / 1e9, UTC).isoformat()
            writer.writerow([when, bars.open[i], bars.high[i], bars.low[i], bars.close[i], bars.volume[i]])
    return path


def html_report(folder: Path, days: float = 2) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """``tradebot backtest --strategy supertrend --csv ... --html ...`` as a user runs it."""
    csv_path = write_bars_csv(folder / "bars.csv", days=days)
    out = folder / "report.html"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bot",
            "backtest",
            "--strategy",
            "supertrend",
            "--csv",
            str(csv_path),
            "--html",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return out, done


def supertrend():
    return load_registry().strategies["supertrend"]()


def test_report_data_keeps_every_trade_and_thins_long_histories(monkeypatch):
    bars = synthetic_bars(3)
    result = run_backtest(bars, supertrend(), timeframe=Timeframe.parse("1m"), source="synthetic")
    full = report.report_data(result)
    assert full["price"]["merged"] == 1 and len(full["price"]["time"]) == len(bars)
    assert len(full["trades"]) == result.sim.n_trades > 10
    assert len(full["price"]["markers"]) == 2 * result.sim.n_trades
    assert full["stats"]["n_trades"] == result.stats.n_trades

    monkeypatch.setattr(report, "MAX_CANDLES", 500)
    monkeypatch.setattr(report, "MAX_POINTS", 300)
    thin = report.report_data(result)
    price = thin["price"]
    step = price["merged"]
    assert step == int(np.ceil(len(bars) / 500)) and len(price["time"]) <= 500
    # A merged candle spans its bars: first open, highest high, lowest low, last close.
    assert price["open"][1] == bars.open[step]
    assert price["high"][1] == float(bars.high[step : 2 * step].max())
    assert price["low"][1] == float(bars.low[step : 2 * step].min())
    assert price["close"][1] == bars.close[2 * step - 1]
    assert len(thin["trades"]) == result.sim.n_trades  # every trade keeps its row and markers
    assert {m["time"] for m in price["markers"]} <= set(price["time"])
    deepest = max(p["drawdown_pct"] for p in thin["equity"])
    assert deepest == result.stats.max_drawdown_pct or abs(deepest - result.stats.max_drawdown_pct) < 1e-9
    assert len(thin["equity"]) <= 302


def test_backtest_html_is_one_file_with_nothing_to_fetch(tmp_path):
    out, done = html_report(tmp_path, days=1)
    assert done.returncode == 0, done.stderr
    assert f"report: {out}" in done.stdout
    text = out.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)  # no external script, style or link
    assert "TradingView Lightweight Charts" in text and "TradebotChart" in text
    payload = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', text, re.S)
    assert payload
    data = json.loads(payload.group(1))
    assert data["title"] == "supertrend(period=10,multiplier=3) on bars.csv"
    assert (
        data["trades"] and data["equity"] and "supertrend(period=10,multiplier=3)" in data["price"]["lines"]
    )
