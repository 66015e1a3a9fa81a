"""``tradebot backtest --symbols``: the command from the outside (CSV folders, downloads from the
synthetic market, JSON, plot, bad input) and the account's equity curve recomputed by hand.
That the trades are the live bot's is ``tests/test_portfolio_parity.py``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bot.backtest.engine import REASONS
from bot.backtest.portfolio import PortfolioSettings, simulate_portfolio
from bot.backtest.portfolio_report import portfolio_stats
from bot.backtest.report import iso_times
from bot.bars import NS, Bars, Timeframe
from bot.brokers.rules import fill_price
from bot.risk import RiskLimits
from plugins.supertrend import SupertrendStrategy

T0 = 1_704_067_200 * NS  # 2024-01-01T00:00:00Z
HOUR = Timeframe.parse("1h")


def walk(n: int, seed: int, price: float, start: int = T0, step: int = 3600 * NS) -> Bars:
    rng = np.random.default_rng(seed)
    close = price * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.r_[price, close[:-1]] * (1 + rng.normal(0, 0.003, n))
    high = np.maximum(open_, close) * (1 + rng.random(n) * 0.008)
    low = np.minimum(open_, close) * (1 - rng.random(n) * 0.008)
    return Bars(start + np.arange(n, dtype=np.int64) * step, open_, high, low, close, np.full(n, 7.0))


def write_csv(path: Path, bars: Bars) -> None:
    stamps = iso_times(bars.time)
    columns = zip(
        stamps, *(getattr(bars, c).tolist() for c in ("open", "high", "low", "close", "volume")), strict=True
    )
    rows = [",".join([stamp, *(repr(v) for v in values)]) for stamp, *values in columns]
    path.write_text("timestamp,open,high,low,close,volume\n" + "\n".join(rows) + "\n")


def tradebot(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALPACA_", "TRADEBOT_", "POLYGON_"))}
    return subprocess.run(
        [sys.executable, "-m", "bot", "backtest", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
    )


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Three symbols of hourly bars; MSFT has a gap of a day (a holiday) the others do not."""
    root = tmp_path_factory.mktemp("portfolio")
    data = root / "data"
    data.mkdir()
    write_csv(data / "AAPL.csv", walk(600, 1, 180.0))
    msft = walk(600, 2, 400.0)
    keep = np.ones(600, bool)
    keep[200:224] = False
    write_csv(data / "MSFT.csv", msft[keep])  # type: ignore[index]
    write_csv(data / "BTC-USD.csv", walk(600, 3, 42_000.0))
    return root


def test_a_portfolio_from_a_folder_of_csv_files(folder):
    run = tradebot(
        "--strategy", "supertrend", "--param", "period=5", "--param", "multiplier=1.5",
        "--symbols", "AAPL,MSFT,BTC/USD", "--csv", "data", "--commission", "0.0005",
        "--json", "out.json", "--plot", "out.png", cwd=folder,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert "supertrend(period=5,multiplier=1.5) on 3 symbols (AAPL, MSFT, BTC/USD)" in out
    assert "rules: the live bot's" in out and "buy signals:" in out and "by symbol:" in out
    doc = json.loads((folder / "out.json").read_text())
    assert {t["symbol"] for t in doc["trades"]} == {"AAPL", "MSFT", "BTC/USD"}
    assert doc["n_trades"] == len(doc["trades"]) > 20
    assert len(doc["equity_curve"]) == 600  # every hour some symbol has a bar
    # per-symbol sums are the trades'; every buy signal is accounted for
    for symbol, row in doc["symbols"].items():
        own = [t["pnl"] for t in doc["trades"] if t["symbol"] == symbol]
        assert row["n_trades"] == len(own) and row["pnl"] == pytest.approx(sum(own))
    e = doc["entries"]
    assert e["signals"] == e["opened"] + sum(e["blocked"].values()) + e["rejected"] + e["ignored"]
    assert e["opened"] == doc["n_trades"]
    # fractions for the pair, whole shares for the stocks
    assert any(t["qty"] != int(t["qty"]) for t in doc["trades"] if t["symbol"] == "BTC/USD")
    assert all(t["qty"] == int(t["qty"]) for t in doc["trades"] if t["symbol"] != "BTC/USD")
    final = doc["equity_curve"][-1]["equity"]
    assert final == pytest.approx(doc["final_equity"])
    assert final == pytest.approx(10_000 + sum(t["pnl"] for t in doc["trades"]))
    assert (folder / "out.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_equity_curve_is_cash_plus_positions_at_their_last_close():
    """Recomputed point by point in plain Python from the trades, on symbols with gaps."""
    aapl, msft = walk(300, 4, 50.0), walk(300, 5, 20.0)
    keep = np.ones(300, bool)
    keep[100:130] = False
    bars = {"AAPL": aapl, "MSFT": msft[keep]}  # type: ignore[index]
    settings = PortfolioSettings(
        cash=5_000, commission=0.001, slippage=0.0005, limits=RiskLimits(max_open_trades=1)
    )
    run = simulate_portfolio(bars, SupertrendStrategy(period=4, multiplier=1.0), HOUR, settings)
    assert run.n_trades > 10 and run.entries.blocked.get("max open trades", 0) > 0
    times = run.times.tolist()
    for j in range(0, len(times), 7):
        u = times[j]
        cash = 5_000.0
        value = 0.0
        for i in range(run.n_trades):
            qty, entry_t, exit_t = float(run.qty[i]), int(run.entry_time[i]), int(run.exit_time[i])
            cost = qty * float(run.entry_price[i]) * 1.001
            proceeds = qty * float(run.exit_price[i]) * 0.999
            entered, exited = _point(times, entry_t) <= j, _point(times, exit_t) <= j
            cash += (-cost if entered else 0.0) + (proceeds if exited else 0.0)
            if entered and not exited:
                s = bars[run.symbols[int(run.symbol[i])]]
                value += qty * float(s.close[np.searchsorted(s.time, u, "right") - 1])
        assert float(run.equity[j]) == pytest.approx(cash + value, rel=1e-9), f"point {j}"
    # entries fill at the open of the bar starting then plus slippage, signal exits at it less slippage
    signal_exit = list(REASONS).index("signal")
    for i in range(run.n_trades):
        s = bars[run.symbols[int(run.symbol[i])]]
        at = int(np.searchsorted(s.time, run.entry_time[i]))
        assert s.time[at] == run.entry_time[i]
        # on the exchange's tick grid, as the simulated exchange fills (bot.brokers.rules.fill_price)
        assert run.entry_price[i] == pytest.approx(
            fill_price(run.symbols[int(run.symbol[i])], s.open[at] * 1.0005), rel=1e-12
        )
        if run.reason[i] == signal_exit:
            out = int(np.searchsorted(s.time, run.exit_time[i]))
            assert run.exit_price[i] == pytest.approx(
                fill_price(run.symbols[int(run.symbol[i])], s.open[out] * 0.9995), rel=1e-12
            )
    assert (run.reason == list(REASONS).index("stop_loss")).any()
    stats = portfolio_stats(run, 5_000)
    assert stats.final_equity == float(run.equity[-1]) and stats.n_trades == run.n_trades


def _point(times: list[int], t: int) -> int:
    return max(i for i, u in enumerate(times) if u <= t) if t >= times[0] else 0


def test_downloaded_symbols_from_the_synthetic_market(tmp_path):
    run = tradebot(
        "--strategy", "supertrend", "--symbols", "btc/usd,ETH/USD", "--start", "2024-01-01",
        "--end", "2024-01-04", "--timeframe", "15m", "--source", "synthetic", "--json", "o.json", cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "on 2 symbols (BTC/USD, ETH/USD) from synthetic: 15m bars" in run.stdout
    doc = json.loads((tmp_path / "o.json").read_text())
    assert len(doc["equity_curve"]) == 3 * 96


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--symbols", "AAPL,TSLA", "--csv", "data"], "no file for TSLA (looked for TSLA.csv)"),
        (["--symbols", "AAPL,,MSFT", "--csv", "data"], "an empty name in the list"),
        (["--symbols", "AAPL,aapl", "--csv", "data"], "AAPL is given twice"),
        (["--symbols", "AAPL", "--csv", "data/AAPL.csv"], "give a folder holding one CSV file per symbol"),
        (
            ["--symbols", "AAPL", "--csv", "data", "--fractional"],
            "--fractional does not apply with --symbols",
        ),
        (["--symbols", "AAPL", "--csv", "data", "--symbol", "AAPL"], "not both"),
        (["--symbols", "AAPL", "--csv", "data", "--param", "period=5..6"], "one value per --param"),
        (
            ["--symbols", "AAPL", "--csv", "data", "--stop-loss", "0"],
            "stop_loss_pct must be between 0.2 and 20",
        ),
        (["--symbols", "AAPL", "--csv", "data", "--walk-forward", "100/50"], "run on one symbol"),
        (["--symbols", "AAPL,MSFT", "--csv", "mixed"], "different bar lengths (AAPL 1h, MSFT 30m)"),
        (["--symbols", "AAPL"], "--symbols needs --csv DIR, or --start and --end"),
        (["--symbols", "AAPL", "--csv", "data", "--html", "r.html"], "--html draws one symbol's price"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(folder, args, message):
    mixed = folder / "mixed"
    if not mixed.exists():
        mixed.mkdir()
        write_csv(mixed / "AAPL.csv", walk(50, 1, 10.0))
        write_csv(mixed / "MSFT.csv", walk(50, 2, 10.0, step=1800 * NS))
    run = tradebot("--strategy", "supertrend", *args, cwd=folder)
    assert run.returncode == 2, run.stdout + run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], run.stderr


def test_a_full_book_is_answered_as_check_entry_answers_it(monkeypatch):
    """Signals that meet max_open_trades open positions skip the sizing and the marks
    (``_Account._full_book``); with every signal sent through ``check_entry`` instead, the run is
    the same: trades, equity and what became of each signal, the daily loss limit included."""
    from bot.backtest import portfolio

    bars = {f"S{k}": walk(2_000, 10 + k, 20.0 + 7 * k) for k in range(12)}
    limits = RiskLimits(max_open_trades=2, daily_loss_limit_pct=0.5, risk_per_trade_pct=2.0)
    settings = PortfolioSettings(cash=20_000, commission=0.001, limits=limits)
    strategy = SupertrendStrategy(period=5, multiplier=1.5)
    fast = simulate_portfolio(bars, strategy, HOUR, settings)
    monkeypatch.setattr(portfolio._Account, "_book_full", lambda self, price: False)
    slow = simulate_portfolio(bars, strategy, HOUR, settings)
    assert fast.entries.blocked.get("max open trades", 0) > 100
    assert fast.entries.blocked.get("daily loss limit", 0) > 0
    assert fast.entries == slow.entries
    for name in ("equity", "symbol", "entry_time", "exit_time", "entry_price", "exit_price", "qty", "pnl"):
        assert getattr(fast, name).tobytes() == getattr(slow, name).tobytes(), name
