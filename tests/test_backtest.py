"""The backtester from the outside: hand-checked fills, hand-computed statistics, live/backtest
signal parity, the C loop against the Python reference, the JSON schema, sweeps, and every
kind of bad input through the real ``tradebot backtest`` command."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bot import kernels
from bot.backtest import data, report, sweep
from bot.backtest.engine import (
    ENTRY_BAR,
    EXIT_BAR,
    PNL,
    QTY,
    TRADE_FIELDS,
    FillSettings,
    Simulation,
    simulate,
)
from bot.backtest.runner import run_backtest
from bot.bars import NS, Bars
from bot.risk import RiskLimits
from bot.strategy import StrategyError
from plugins.supertrend import SupertrendStrategy

IMPLS = [
    "python",
    pytest.param("c", marks=pytest.mark.skipif(kernels.C is None, reason="bot._speedups not built")),
]
HOUR = 3600 * NS
T0 = 1_704_067_200 * NS  # 2024-01-01T00:00:00Z

# (open, high, low, close, signal) per hourly bar. Every entry fills at an open of 100, so with
# 10 units, a 2% stop at 98 and a 4% target at 104, each P&L is 10 x (exit - 100).
FRAME = [
    (100, 101, 99, 100, -1),  # 0  sell while flat: ignored
    (100, 101, 99, 100, 1),  # 1  buy -> fills at bar 2's open
    (100, 103, 99.5, 102, 0),  # 2  entry 100; low 99.5 > 98, high 103 < 104
    (102, 103.5, 101, 103, 1),  # 3  buy while long: ignored
    (103, 103.9, 102, 102.5, -1),  # 4  sell -> fills at bar 5's open
    (102, 102.5, 100, 101, 0),  # 5  exit 102 (signal): +20
    (101, 101, 99, 100, 1),  # 6  buy
    (100, 101, 99, 100.5, 0),  # 7  entry 100
    (100.5, 101, 97.5, 98.5, 1),  # 8  low 97.5 <= 98: stop at 98, -20; buy again on this close
    (100, 101, 99.5, 100.5, 0),  # 9  entry 100
    (101, 104.5, 100.5, 104, 1),  # 10 high 104.5 >= 104: target at 104, +40; buy
    (100, 100.5, 99, 100, 0),  # 11 entry 100
    (100, 104.2, 97.9, 101, 1),  # 12 both touched: the stop first, at 98, -20; buy
    (100, 100.8, 99.2, 99.5, 0),  # 13 entry 100
    (97, 98, 96, 97.5, 1),  # 14 opens at 97, below the stop: fills at the open 97, -30; buy
    (100, 100.5, 99.5, 100, 0),  # 15 entry 100
    (105, 106, 104.5, 105.5, 1),  # 16 opens at 105, above the target: fills at 105, +50; buy
    (100, 101, 99.5, 100.5, 0),  # 17 entry 100
    (100.5, 102, 100, 101.5, 1),  # 18 last bar: its buy is ignored; closed at 101.5, +15
]
EXPECTED_TRADES = [
    # entry bar, exit bar, entry price, exit price, pnl, reason
    (2, 5, 100.0, 102.0, 20.0, "signal"),
    (7, 8, 100.0, 98.0, -20.0, "stop_loss"),
    (9, 10, 100.0, 104.0, 40.0, "take_profit"),
    (11, 12, 100.0, 98.0, -20.0, "stop_loss"),
    (13, 14, 100.0, 97.0, -30.0, "stop_loss"),
    (15, 16, 100.0, 105.0, 50.0, "take_profit"),
    (17, 18, 100.0, 101.5, 15.0, "end_of_data"),
]


def frame_bars(rows=FRAME) -> tuple[Bars, np.ndarray]:
    o, h, lo, c, s = (np.array(col, dtype=float) for col in zip(*rows, strict=True))
    times = T0 + np.arange(len(rows), dtype=np.int64) * HOUR
    return Bars(times, o, h, lo, c, np.ones(len(rows))), s.astype(np.int8)


def random_bars(n: int, seed: int, gaps: bool = True) -> Bars:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.r_[100.0, close[:-1]] * (1 + (rng.normal(0, 0.01, n) if gaps else 0))
    high = np.maximum(open_, close) * (1 + rng.random(n) * 0.01)
    low = np.minimum(open_, close) * (1 - rng.random(n) * 0.01)
    return Bars(T0 + np.arange(n, dtype=np.int64) * 60 * NS, open_, high, low, close, np.ones(n))


class FixedSignal:
    """A strategy-like object for run_backtest: returns a given signal."""

    label = "fixed"

    def __init__(self, signal):
        self.signal = signal

    def compute(self, bars):
        from bot.strategy import StrategyOutput

        return StrategyOutput(signal=self.signal)


# --- fills, by hand ---------------------------------------------------------------------------


@pytest.mark.parametrize("impl", IMPLS)
def test_hand_checked_trades(impl):
    bars, signal = frame_bars()
    sim = simulate(bars, signal, FillSettings(fixed_qty=10), impl=impl)
    got = [
        (int(t[ENTRY_BAR]), int(t[EXIT_BAR]), t[2], t[3], round(t[PNL], 9), str(report.REASONS[int(t[7])]))
        for t in sim.trades
    ]
    assert got == EXPECTED_TRADES
    assert (sim.column(QTY) == 10).all()
    # bar 2: cash 10000 - 10 x 100 = 9000, plus 10 x close 102 = 10020; bar 5 after the exit at 102: 10020
    assert sim.equity[2] == 10_020 and sim.equity[5] == 10_020
    assert sim.equity[-1] == pytest.approx(10_000 + 20 - 20 + 40 - 20 - 30 + 50 + 15)


def test_trade_times_are_the_fill_bars():
    bars, signal = frame_bars()
    result = run_backtest(bars, FixedSignal(signal), FillSettings(fixed_qty=10))
    rows = report.trade_rows(result)
    assert rows[0]["entry_time"] == "2024-01-01T02:00:00Z" and rows[0]["exit_time"] == "2024-01-01T05:00:00Z"
    assert rows[-1]["exit_time"] == "2024-01-01T18:00:00Z" and rows[-1]["exit_reason"] == "end_of_data"


@pytest.mark.parametrize("impl", IMPLS)
def test_commission_and_slippage(impl):
    bars, signal = frame_bars(FRAME[:6])
    settings = FillSettings(fixed_qty=10, commission=0.001, slippage=0.01)
    sim = simulate(bars, signal, settings, impl=impl)
    (trade,) = sim.trades
    # entry 100 x 1.01 = 101, commission 10 x 101 x 0.001 = 1.01; stop 98.98 and target 105.04 not touched
    # exit 102 x 0.99 = 100.98, commission 1.0098; pnl = 10 x (100.98 - 101) - 1.01 - 1.0098 = -2.2198
    assert trade[2] == pytest.approx(101) and trade[3] == pytest.approx(100.98)
    assert trade[PNL] == pytest.approx(-2.2198)
    assert trade[6] == pytest.approx(2.0198)
    assert sim.equity[-1] == pytest.approx(10_000 - 2.2198)


@pytest.mark.parametrize("impl", IMPLS)
def test_risk_sizing_is_the_live_position_size(impl):
    bars, signal = frame_bars(FRAME[:6])
    # equity 10000, entry 100, stop 98: by risk 10000 x 2% / 2 = 100, by size 20% x 10000 / 100 = 20 -> 20
    sim = simulate(bars, signal, FillSettings(), impl=impl)
    assert sim.trades[0][QTY] == 20 and sim.trades[0][PNL] == pytest.approx(40)
    # cash 1234.5: 20% is 246.9, 2.469 units at 100: whole shares -> 2, crypto -> 2.469
    stock = simulate(bars, signal, FillSettings(cash=1234.5), impl=impl)
    crypto = simulate(bars, signal, FillSettings(cash=1234.5, fractional=True), impl=impl)
    assert stock.trades[0][QTY] == 2
    assert crypto.trades[0][QTY] == pytest.approx(2.469)


@pytest.mark.parametrize("impl", IMPLS)
def test_no_stop_no_target_and_a_size_of_zero(impl):
    bars, signal = frame_bars()
    sim = simulate(bars, signal, FillSettings(fixed_qty=1, stop_loss_pct=0, take_profit_pct=0), impl=impl)
    assert {str(report.REASONS[int(r)]) for r in sim.column(7)} == {"signal", "end_of_data"}
    broke = simulate(bars, signal, FillSettings(cash=50), impl=impl)  # 20% of 50 buys no whole share at 100
    assert broke.n_trades == 0 and (broke.equity == 50).all()


def test_a_strategy_may_suggest_its_stop():
    bars, signal = frame_bars(FRAME[:9])
    hint = np.full(len(bars), np.nan)
    hint[6] = 97.0  # suggested on the signal bar: the bar 8 low of 97.5 no longer stops it
    for impl in ("python", "c") if kernels.C else ("python",):
        sim = simulate(bars, signal, FillSettings(fixed_qty=10), stop_hint=hint, impl=impl)
        assert [str(report.REASONS[int(t[7])]) for t in sim.trades] == ["signal", "end_of_data"]


# --- statistics, by hand ------------------------------------------------------------------------


def test_statistics_on_a_known_equity_curve():
    equity = np.array([100.0, 110.0, 99.0, 108.9])
    # three trades: bars 0-1 (+10), bar 2 (-11), bar 3 (+9.9); entry/exit prices do not enter the stats
    trades = np.array(
        [[0, 1, 10, 11, 1, 10, 0, 0], [2, 2, 11, 9.9, 1, -11, 0, 1], [3, 3, 9.9, 10.89, 1, 9.9, 0, 0]]
    )
    stats = report.compute_stats(Simulation(equity, trades.astype(float)), 100.0, periods_per_year=252)
    # returns +10%, -10%, +10%: mean 1/30; deviations 2/30, -4/30, 2/30 -> variance (4+16+4)/900/2 = 1/75
    # sharpe = (1/30) / sqrt(1/75) x sqrt(252) = 0.288675 x 15.874508 = 4.582576
    assert stats.sharpe == pytest.approx(4.582576, rel=1e-6)
    # downside deviation sqrt((0 + 0.01 + 0) / 3) = 0.0577350; sortino = (1/30) / 0.057735 x sqrt(252) = 9.165151
    assert stats.sortino == pytest.approx(9.165151, rel=1e-6)
    assert stats.max_drawdown_pct == pytest.approx(10.0)  # 110 -> 99
    assert stats.return_pct == pytest.approx(8.9)
    assert stats.final_equity == pytest.approx(108.9)
    assert stats.win_rate == pytest.approx(200 / 3)  # 2 of 3 trades won
    assert stats.profit_factor == pytest.approx(19.9 / 11)
    assert stats.exposure_pct == 100.0 and stats.n_trades == 3


def test_exposure_and_summary_of_the_hand_frame():
    bars, signal = frame_bars()
    result = run_backtest(bars, FixedSignal(signal), FillSettings(fixed_qty=10))
    s = result.stats
    # held: bars 2-5, 7-8, 9-10, 11-12, 13-14, 15-16, 17-18 = 16 of 19 bars
    assert s.exposure_pct == pytest.approx(100 * 16 / 19)
    assert s.win_rate == pytest.approx(100 * 4 / 7)
    assert s.profit_factor == pytest.approx(125 / 70)
    assert s.n_trades == 7 and s.final_equity == pytest.approx(10_055)


def test_bars_per_year_follows_the_data():
    daily = Bars(T0 + np.arange(253, dtype=np.int64) * 86400 * NS, *(np.ones(253) for _ in range(5)))
    assert report.bars_per_year(daily) == pytest.approx(365 * 252 / 252)
    weekdays = daily[np.arange(253) % 7 < 5]
    assert report.bars_per_year(weekdays) == pytest.approx(
        (len(weekdays) - 1) / ((weekdays.time[-1] - T0) / NS / 86400 / 365)
    )


# --- one code path live and in backtests ----------------------------------------------------------

LIVE_CASES = [
    ("supertrend", {"period": 10, "multiplier": 2.0}),
    ("sma_cross", {"fast": 5, "slow": 20}),
    ("ema_cross", {"fast": 5, "slow": 20}),
    ("rsi", {"period": 6, "oversold": 40, "overbought": 60}),
    ("bollinger", {"period": 10, "stddev": 1.0}),
    ("donchian", {"entry": 10, "exit": 5}),
    ("macd", {"fast": 6, "slow": 13, "signal": 5}),
]


@pytest.mark.parametrize(("name", "params"), LIVE_CASES, ids=[name for name, _ in LIVE_CASES])
def test_live_signals_bar_by_bar_equal_the_backtest_signals(name, params):
    from bot.plugins import load_registry

    bars = random_bars(700, seed=3)
    strategy = load_registry(load_entry_points=False).strategies[name](**params)
    backtest = strategy.compute(bars).signal
    assert (backtest == 1).sum() > 5 and (backtest == -1).sum() > 5
    # The live engine computes on the closed bars it has and reads the last row.
    grown = [int(strategy.compute(bars[: i + 1]).signal[-1]) for i in range(len(bars))]
    assert grown == backtest.tolist()
    # ... and keeps TRADEBOT_HISTORY_BARS (300) of them: same signals once the window is full.
    window = [
        int(strategy.compute(bars[max(0, i + 1 - 300) : i + 1]).signal[-1]) for i in range(299, len(bars))
    ]
    assert window == backtest[299:].tolist()


def test_run_backtest_uses_the_strategy_compute():
    bars = random_bars(2000, seed=4)
    strategy = SupertrendStrategy(period=7, multiplier=2.5)
    result = run_backtest(bars, strategy, FillSettings(fixed_qty=1, stop_loss_pct=0, take_profit_pct=0))
    signal = strategy.compute(bars).signal
    entries = result.sim.column(ENTRY_BAR).astype(int)
    assert (signal[entries - 1] == 1).all()  # every entry fills the bar after a buy signal
    exits = result.sim.column(EXIT_BAR).astype(int)[:-1]
    assert (signal[exits - 1] == -1).all()


# --- the C loop against the Python reference --------------------------------------------------------

PARITY = [
    FillSettings(),
    FillSettings(fixed_qty=3, commission=0.0005, slippage=0.0003),
    FillSettings(cash=777.7, fractional=True, stop_loss_pct=0.5, take_profit_pct=0.7),
    FillSettings(stop_loss_pct=0, take_profit_pct=0, commission=0.002),
    FillSettings(risk=RiskLimits(risk_per_trade_pct=0.5, max_position_pct=50), slippage=0.001),
]


@pytest.mark.skipif(kernels.C is None, reason="bot._speedups not built")
@pytest.mark.parametrize("settings", PARITY, ids=range(len(PARITY)))
def test_c_and_python_loops_agree_exactly(settings):
    bars = random_bars(3000, seed=11)
    signal = SupertrendStrategy(period=5, multiplier=1.5).compute(bars).signal
    rng = np.random.default_rng(5)
    hint = np.where(rng.random(len(bars)) < 0.3, bars.close * 0.99, np.nan)
    for stop_hint in (None, hint):
        py = simulate(bars, signal, settings, stop_hint=stop_hint, impl="python")
        c = simulate(bars, signal, settings, stop_hint=stop_hint, impl="c")
        assert py.n_trades > 20
        assert np.array_equal(py.equity, c.equity)
        assert np.array_equal(py.trades, c.trades)


@pytest.mark.skipif(kernels.C is None, reason="bot._speedups not built")
def test_c_and_python_agree_on_edges():
    bars, signal = frame_bars()
    for n in (1, 2, 3):
        for settings in PARITY:
            py = simulate(bars[:n], signal[:n], settings, impl="python")
            c = simulate(bars[:n], signal[:n], settings, impl="c")
            assert np.array_equal(py.equity, c.equity) and np.array_equal(py.trades, c.trades)
    with pytest.raises(ValueError):
        simulate(bars, signal[:-1], FillSettings())
    assert TRADE_FIELDS == 8


# --- CSV input ---------------------------------------------------------------------------------------


def write(tmp_path: Path, text: str, name: str = "bars.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_csv_columns_in_any_case_and_time_formats(tmp_path):
    body = "{},1,2,0.5,1.5,10\n{},1.5,2.5,1,2,11\n"
    for header, stamps, first in [
        ("Date,Open,High,Low,Close,Volume", ("2024-01-01", "2024-01-02"), T0),
        ("TIMESTAMP,OPEN,HIGH,LOW,CLOSE,VOLUME", ("2024-01-01T00:00:00Z", "2024-01-01T00:01:00Z"), T0),
        (
            "timestamp,open,high,low,close,volume",
            ("2023-12-31 19:00:00-05:00", "2023-12-31 19:01:00-05:00"),
            T0,
        ),
        ("timestamp,open,high,low,close,volume", ("1704067200", "1704067260"), T0),
        ("timestamp,open,high,low,close,volume", ("1704067200000", "1704067260000"), T0),
        ("date,open,high,low,close,volume", ("01/01/2024 00:00", "01/01/2024 00:01"), T0),
    ]:
        bars = data.read_csv(write(tmp_path, header + "\n" + body.format(*stamps)))
        assert bars.time[0] == first, header
        assert bars.close.tolist() == [1.5, 2.0] and bars.volume.tolist() == [10, 11]


def test_csv_without_volume_and_resampling(tmp_path):
    rows = "".join(f"2024-01-01T00:{m:02d}:00Z,{m},{m + 1},{m - 0.5},{m + 0.5}\n" for m in range(1, 31))
    bars = data.read_csv(write(tmp_path, "timestamp,open,high,low,close\n" + rows))
    assert (bars.volume == 0).all() and data.infer_timeframe(bars).label == "1m"
    from bot.bars import Timeframe

    five = data.resample(bars, Timeframe.parse("15m"))
    assert len(five) == 3  # 00:01-00:14, 00:15-00:29, 00:30
    assert (five.open[0], five.high[0], five.low[0], five.close[0]) == (1, 15, 0.5, 14.5)


# --- the command, from the outside -------------------------------------------------------------------------


def tradebot(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALPACA_", "TRADEBOT_", "POLYGON_"))}
    return subprocess.run(
        [sys.executable, "-m", "bot", "backtest", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=60,
    )


def frame_csv(tmp_path: Path, rows: int = 300) -> Path:
    bars = random_bars(rows, seed=9)
    stamps = report.iso_times(bars.time)
    lines = ["Timestamp,Open,High,Low,Close,Volume"] + [
        f"{stamps[i]},{bars.open[i]:.4f},{bars.high[i]:.4f},{bars.low[i]:.4f},{bars.close[i]:.4f},5"
        for i in range(rows)
    ]
    return write(tmp_path, "\n".join(lines) + "\n", "good.csv")


def test_json_schema(tmp_path):
    csv_path = frame_csv(tmp_path)
    out = tmp_path / "out.json"
    result = tradebot(
        "--strategy",
        "supertrend",
        "--csv",
        str(csv_path),
        "--param",
        "period=7",
        "--json",
        str(out),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "final equity" in result.stdout
    doc = json.loads(out.read_text())
    assert list(doc) == [
        "trades",
        "final_equity",
        "return_pct",
        "sharpe",
        "sortino",
        "max_drawdown_pct",
        "win_rate",
        "profit_factor",
        "exposure_pct",
        "n_trades",
        "equity_curve",
    ]
    assert doc["n_trades"] == len(doc["trades"]) > 0
    for trade in doc["trades"]:
        assert list(trade) == [
            "entry_time",
            "exit_time",
            "entry_price",
            "exit_price",
            "qty",
            "pnl",
            "exit_reason",
        ]
        assert trade["exit_reason"] in {"signal", "stop_loss", "take_profit", "end_of_data"}
        assert trade["entry_time"] <= trade["exit_time"]
        assert trade["entry_time"].endswith("Z") and "T" in trade["entry_time"]
    assert len(doc["equity_curve"]) == 300 and list(doc["equity_curve"][0]) == ["time", "equity"]
    assert doc["equity_curve"][-1]["equity"] == pytest.approx(doc["final_equity"])
    assert math.isclose(doc["final_equity"], 10_000 + sum(t["pnl"] for t in doc["trades"]), rel_tol=1e-9)
    for key in ("return_pct", "sharpe", "sortino", "max_drawdown_pct", "win_rate", "exposure_pct"):
        assert isinstance(doc[key], float)


BAD_CSV = [
    ("timestamp,open,high,low,volume\n2024-01-01,1,2,0.5,3\n", "missing column close"),
    ("when,open,high,low,close\n2024-01-01,1,2,0.5,1\n", "missing column timestamp (or date)"),
    (
        "date,open,high,low,close\n2024-01-01,1,2,0.5,1\n2024-13-45,1,2,0.5,1\n",
        "line 3: date '2024-13-45' is not a date",
    ),
    (
        "date,open,high,low,close\n2024-01-02,1,2,0.5,1\n2024-01-01,1,2,0.5,1\n",
        "line 3: timestamp 2024-01-01T00:00:00Z is earlier",
    ),
    ("date,open,high,low,close\n2024-01-01,1,2,0.5,1\n2024-01-01,1,2,0.5,1\n", "line 3: duplicate timestamp"),
    ("date,open,high,low,close\n2024-01-01,1,2,0.5,1\n2024-01-02,1,2,,1\n", "line 3: low is empty or NaN"),
    ("date,open,high,low,close\n2024-01-01,1,2,0.5,NaN\n", "line 2: close is empty or NaN"),
    ("date,open,high,low,close\n2024-01-01,1,2,0.5,1\n2024-01-02,1,2,0.5,abc\n", "line 3: close has 'abc'"),
    ("date,open,high,low,close\n", "no rows of data"),
]


BAD_ARGS = [
    (["--strategy", "nope"], "unknown strategy 'nope'"),
    (["--strategy", "supertrend", "--param", "length=3"], "unknown parameter length"),
    (["--strategy", "supertrend", "--param", "period=0"], "period=0 is below its minimum"),
    (["--strategy", "supertrend", "--param", "period"], "write name=value"),
    (["--strategy", "supertrend", "--csv", "missing.csv"], "missing.csv: no such file"),
    (["--strategy", "supertrend", "--rank-by", "luck"], "--rank-by 'luck': use one of sharpe"),
    (["--strategy", "supertrend", "--commission", "-0.1"], "commission=-0.1 is out of range"),
]


@pytest.fixture(scope="module")
def bad_runs(tmp_path_factory) -> dict[str, subprocess.CompletedProcess]:
    """Every bad-input command, started together (each is a whole process), keyed by message."""
    tmp = tmp_path_factory.mktemp("bad")
    good = frame_csv(tmp)
    commands = {}
    for i, (text, message) in enumerate(BAD_CSV):
        commands[message] = ["--strategy", "supertrend", "--csv", str(write(tmp, text, f"bad{i}.csv"))]
    for args, message in BAD_ARGS:
        commands[message] = args if "--csv" in args else [*args, "--csv", str(good)]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALPACA_", "TRADEBOT_", "POLYGON_"))}
    running = {
        message: subprocess.Popen(
            [sys.executable, "-m", "bot", "backtest", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp,
            env=env,
        )
        for message, args in commands.items()
    }
    results = {}
    for message, process in running.items():
        out, err = process.communicate(timeout=120)
        results[message] = subprocess.CompletedProcess(process.args, process.returncode, out, err)
    return results


@pytest.mark.parametrize("message", [m for _, m in BAD_CSV + BAD_ARGS])
def test_bad_input_exits_2_with_one_line_naming_the_problem(bad_runs, message):
    result = bad_runs[message]
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert lines[0].startswith("tradebot backtest: error: ")
    assert result.stdout == ""


# --- sweeps and the plot -----------------------------------------------------------------------------------


def test_param_ranges_and_lists():
    assert sweep.expand("period", "7..10") == ["7", "8", "9", "10"]
    assert sweep.expand("multiplier", "2..3:0.5") == ["2", "2.5", "3"]
    assert sweep.expand("multiplier", "2,2.5,3") == ["2", "2.5", "3"]
    grid = sweep.parse_grid(["period=7..8", "multiplier=2,3"])
    assert sweep.combinations(grid) == [
        {"period": "7", "multiplier": "2"},
        {"period": "7", "multiplier": "3"},
        {"period": "8", "multiplier": "2"},
        {"period": "8", "multiplier": "3"},
    ]
    with pytest.raises(StrategyError):
        sweep.expand("period", "9..7")


def test_sweep_in_parallel_ranks_every_combination(tmp_path):
    bars = random_bars(5000, seed=2)
    combos = sweep.combinations(sweep.parse_grid(["period=5..8", "multiplier=1.5,3"]))
    rows = sweep.run_sweep(
        bars, SupertrendStrategy, combos, FillSettings(), periods_per_year=525_600, workers=2
    )
    assert len(rows) == 8
    ranked = sweep.rank(rows, "sharpe")
    sharpes = [r.stats["sharpe"] for r in ranked]
    assert sharpes == sorted(sharpes, reverse=True)
    # each row is the same as a single run with those parameters
    best = ranked[0]
    single = run_backtest(bars, SupertrendStrategy(**best.params), FillSettings(), timeframe=None)
    assert single.stats.n_trades == best.stats["n_trades"]
    assert sweep.rank(rows, "max_drawdown_pct")[0].stats["max_drawdown_pct"] == min(
        r.stats["max_drawdown_pct"] for r in rows
    )
    out = tmp_path / "sweep.csv"
    sweep.write_csv(ranked, out)
    lines = out.read_text().splitlines()
    assert lines[0].startswith("rank,period,multiplier,final_equity") and len(lines) == 9


def test_sweep_and_plot_through_the_command(tmp_path):
    csv_path = frame_csv(tmp_path, rows=400)
    args = [
        "--strategy",
        "supertrend",
        "--csv",
        str(csv_path),
        "--param",
        "period=5..6",
        "--param",
        "multiplier=2,3",
    ]
    result = tradebot(
        *args, "--sweep-csv", "s.csv", "--rank-by", "return_pct", "--plot", "best.png", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "sweep: 4 combinations ranked by return_pct" in result.stdout
    assert len((tmp_path / "s.csv").read_text().splitlines()) == 5
    assert (tmp_path / "best.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --- downloaded history ------------------------------------------------------------------------------------


class CountingSource:
    """A BarSource over the synthetic market that counts its fetches."""

    name = "counting"

    def __init__(self):
        from bot.data.synthetic import SyntheticMarket

        self.market = SyntheticMarket()
        self.calls = 0

    def fetch(self, symbols, timeframe, start, end):
        self.calls += 1
        return self.market.fetch(symbols, timeframe, start, end)


def test_history_is_fetched_in_chunks_and_kept_in_the_store(tmp_path):
    from datetime import UTC, datetime

    from bot.backtest.history import load_history
    from bot.bars import Timeframe
    from bot.data.download import CHUNK_BARS

    tf = Timeframe.parse("1h")
    start, end = datetime(2024, 1, 1, tzinfo=UTC), datetime(2025, 6, 1, tzinfo=UTC)
    now = datetime(2025, 7, 1, tzinfo=UTC)
    source = CountingSource()
    bars, name = load_history(None, "AAPL", tf, start, end, source=source, data_dir=tmp_path, now=now)
    first = source.calls
    assert name == "counting" and first >= 2
    assert bars.time[0] == T0 and len(bars) == (end - start).days * 24
    assert len(bars) > CHUNK_BARS
    again, _ = load_history(None, "AAPL", tf, start, end, source=source, data_dir=tmp_path, now=now)
    assert source.calls == first, "the second run reads the store only"
    assert np.array_equal(again.close, bars.close) and np.array_equal(again.time, bars.time)
