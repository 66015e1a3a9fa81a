"""Walk-forward testing: window arithmetic, each window's choice against an independent sweep,
the out-of-sample runs recomputed by hand, and the command with JSON, plot and bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import pytest

from bot.backtest import sweep
from bot.backtest.engine import ENTRY_BAR, EXIT_BAR, FillSettings, simulate
from bot.backtest.report import bars_per_year, compute_stats
from bot.backtest.walkforward import Span, parse_spans, walk_forward, windows
from bot.bars import NS, Bars
from bot.strategy import StrategyError
from plugins.supertrend import SupertrendStrategy

T0 = 1_704_067_200 * NS  # 2024-01-01T00:00:00Z


def hourly(n: int, seed: int = 11) -> Bars:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.r_[100.0, close[:-1]]
    high = np.maximum(open_, close) * (1 + rng.random(n) * 0.006)
    low = np.minimum(open_, close) * (1 - rng.random(n) * 0.006)
    return Bars(T0 + np.arange(n, dtype=np.int64) * 3600 * NS, open_, high, low, close, np.ones(n))


def day(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()) * NS


def test_lengths_parse_with_units_or_as_bars():
    assert parse_spans("6M/1M") == (Span(6, "M"), Span(1, "M"))
    assert parse_spans(" 30d / 7d ") == (Span(30, "d"), Span(7, "d"))
    assert parse_spans("50000/10000") == (Span(50000, ""), Span(10000, ""))
    assert parse_spans("2y/12h") == (Span(2, "y"), Span(12, "h"))
    for bad, words in [
        ("6M", "write TRAIN/TEST"),
        ("6m/1M", "M for months"),
        ("0/5", "not a length"),
        ("a/b", "not a length"),
    ]:
        with pytest.raises(StrategyError, match=words):
            parse_spans(bad)


def test_calendar_months_end_of_month_and_leap_day():
    assert Span(1, "M").after(day("2024-01-31")) == day("2024-02-29")
    assert Span(1, "y").after(day("2024-02-29")) == day("2025-02-28")
    assert Span(13, "M").after(day("2023-12-15")) == day("2025-01-15")


def test_windows_by_bars_roll_on_by_the_test_length():
    cuts = windows(hourly(1000), Span(400, ""), Span(150, ""))
    assert [(w.train, w.test) for w in cuts] == [
        ((0, 400), (400, 550)),
        ((150, 550), (550, 700)),
        ((300, 700), (700, 850)),
        ((450, 850), (850, 1000)),
    ]  # the next in-sample window (600, 1000) leaves no bar out of sample


def test_windows_by_calendar_days():
    bars = hourly(24 * 40)  # 40 days from 2024-01-01
    cuts = windows(bars, Span(10, "d"), Span(7, "d"))
    starts = [(int(bars.time[w.train[0]]), int(bars.time[w.test[0]])) for w in cuts]
    assert starts[:2] == [(day("2024-01-01"), day("2024-01-11")), (day("2024-01-08"), day("2024-01-18"))]
    assert all(w.test[1] - w.test[0] == 7 * 24 for w in cuts[:-1])
    assert cuts[-1].test[1] == len(bars)  # the last out-of-sample window runs to the end
    with pytest.raises(StrategyError, match="too short"):
        windows(bars, Span(2, "M"), Span(1, "M"))


@pytest.fixture(scope="module")
def run():
    bars = hourly(2400)
    combos = sweep.combinations(sweep.parse_grid(["period=4..9", "multiplier=1.5,3"]))
    settings = FillSettings(commission=0.0005)
    ppy = bars_per_year(bars)
    wf = walk_forward(
        bars, SupertrendStrategy, combos, settings, Span(600, ""), Span(300, ""),
        rank_by="sharpe", periods_per_year=ppy, workers=2, progress=False,
    )  # fmt: skip
    return bars, combos, settings, ppy, wf


def test_each_window_chooses_what_a_sweep_of_its_in_sample_bars_ranks_first(run):
    bars, combos, settings, ppy, wf = run
    assert len(wf.windows) == 6
    for w in wf.windows:
        lo, hi = w.window.train
        rows = sweep.run_sweep(
            bars[lo:hi], SupertrendStrategy, combos, settings, periods_per_year=ppy, workers=1
        )
        best = sweep.rank(rows, "sharpe")[0]
        assert w.params == best.params and w.in_sample == best.stats


def test_out_of_sample_windows_are_traded_from_the_previous_equity_and_stitched(run):
    bars, _combos, settings, ppy, wf = run
    first = wf.windows[0].window.test[0]
    cash = settings.cash
    trades = []
    for w in wf.windows:
        (lo, _), (b, c) = w.window.train, w.window.test
        signal = SupertrendStrategy(**w.params).compute(bars[lo:c]).signal[b - lo :]  # warm-up from lo
        sim = simulate(bars[b:c], signal, replace(settings, cash=cash))
        assert np.array_equal(wf.sim.equity[b - first : c - first], sim.equity)
        assert w.out_of_sample == compute_stats(sim, cash, ppy)
        trades.append(sim.trades[:, ENTRY_BAR] + b - first)
        cash = float(sim.equity[-1])
    assert np.array_equal(np.concatenate(trades), wf.sim.trades[:, ENTRY_BAR])
    assert (wf.sim.trades[:, EXIT_BAR] >= wf.sim.trades[:, ENTRY_BAR]).all()
    assert wf.stats == compute_stats(wf.sim, settings.cash, ppy)
    assert wf.stats.final_equity == cash
    gap = wf.gap()
    means = (
        np.mean([w.in_sample["sharpe"] for w in wf.windows]),
        np.mean([w.out_of_sample.sharpe for w in wf.windows]),
    )
    assert gap["in_sample_sharpe"] == pytest.approx(means[0]) and gap[
        "out_of_sample_sharpe"
    ] == pytest.approx(means[1])
    assert gap["sharpe_gap"] == pytest.approx(means[0] - means[1])


def test_one_process_and_two_give_the_same_run(run):
    bars, combos, settings, ppy, wf = run
    alone = walk_forward(
        bars, SupertrendStrategy, combos, settings, Span(600, ""), Span(300, ""),
        rank_by="sharpe", periods_per_year=ppy, workers=1, progress=False,
    )  # fmt: skip
    assert [w.params for w in alone.windows] == [w.params for w in wf.windows]
    assert np.array_equal(alone.sim.equity, wf.sim.equity)


def tradebot(*args: str, cwd) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALPACA_", "TRADEBOT_", "POLYGON_"))}
    return subprocess.run(
        [sys.executable, "-m", "bot", "backtest", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
    )


def test_the_command_reports_windows_gap_json_and_plot(tmp_path):
    run = tradebot(
        "--strategy", "supertrend", "--symbol", "BTC/USD", "--start", "2024-01-01", "--end", "2024-03-01",
        "--timeframe", "1h", "--source", "synthetic", "--param", "period=5..8", "--param", "multiplier=2,3",
        "--walk-forward", "3w/1w", "--rank-by", "return_pct", "--json", "wf.json", "--plot", "wf.png",
        "--html", "wf.html", cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "windows of 3w in-sample, 1w out-of-sample; 8 combinations each, best by return_pct" in run.stdout
    assert "in-sample vs out-of-sample" in run.stdout and "out-of-sample, stitched" in run.stdout
    doc = json.loads((tmp_path / "wf.json").read_text())
    wf = doc["walk_forward"]
    assert wf["train"] == "3w" and wf["test"] == "1w" and wf["rank_by"] == "return_pct"
    assert len(wf["windows"]) == 6
    assert wf["windows"][0]["out_of_sample"]["first"] == "2024-01-22T00:00:00Z"
    assert set(wf["windows"][0]["params"]) == {"period", "multiplier"}
    assert set(wf["summary"]) >= {"in_sample_return_pct", "out_of_sample_return_pct", "return_pct_gap"}
    assert doc["equity_curve"][0]["time"] == "2024-01-22T00:00:00Z"
    assert doc["equity_curve"][-1]["equity"] == pytest.approx(doc["final_equity"])
    assert (tmp_path / "wf.png").read_bytes()[:4] == b"\x89PNG"
    page = (tmp_path / "wf.html").read_text()
    assert "Walk-forward windows (3w in-sample, 1w out-of-sample)" in page
    assert page.count("<tr><td ") == 6 + 2 + 3  # a row per window, the two summary rows, three meanings
    assert "2024-01-22T00:00 .. 2024-01-28T23:00" in page  # the first out-of-sample week
    assert "<script src=" not in page and "https://" not in page.split("<script>")[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--walk-forward", "6m/1M"], "M for months"),
        (["--walk-forward", "1y/1M"], "too short for one in-sample window"),
    ],
)
def test_bad_walk_forward_is_one_line_and_exit_2(tmp_path, args, message):
    run = tradebot(
        "--strategy", "supertrend", "--symbol", "BTC/USD", "--start", "2024-01-01", "--end", "2024-02-01",
        "--timeframe", "1h", "--source", "synthetic", "--param", "period=5..6", *args, cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 2
    assert len(run.stderr.strip().splitlines()) == 1 and message in run.stderr


@pytest.mark.parametrize(
    ("spans", "message"),
    [
        ("99999y/1y", "TRAIN 99999y is longer than any history: at most 250y (250 years)"),
        ("1y/99999y", "TEST 99999y is longer than any history: at most 250y (250 years)"),
        ("1/99999999999d", "TEST 99999999999d is longer than any history: at most 91,312d (250 years)"),
        ("3001M/1M", "TRAIN 3001M is longer than any history: at most 3,000M (250 years)"),
        ("100/20000001", "TEST 20000001 is longer than any history: at most 20,000,000 bars"),
        (
            "1y/40y",
            "TEST 40y is as long as the whole history (7,983 bars, 1986-03-13T00:00:00Z .. 2017-11-10",
        ),
        ("100/7983", "TEST 7983 bars is as long as the whole history (7,983 bars"),
    ],
)
def test_spans_longer_than_the_calendar_or_the_data_are_one_line(tmp_path, spans, message):
    """Issue 19: ``99999y/1y`` was a traceback (``year 101985 is out of range``); a TEST covering the
    whole history ran as one window."""
    run = tradebot(
        "--strategy", "supertrend", "--sample", "msft-daily", "--param", "period=7..8", "--walk-forward", spans,
        cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 2, run.stdout[-300:]
    assert run.stderr.startswith("tradebot backtest: error: --walk-forward ")
    assert len(run.stderr.splitlines()) == 1 and message in run.stderr, run.stderr
    assert run.stdout == ""
