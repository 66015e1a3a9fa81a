"""Walk-forward windows that join exactly (issue 20 §1).

The out-of-sample windows partition the tested span: each starts on the bar after the previous
one's last, for calendar spans (h, d, w, M, y) as for bar counts, on daily stock bars (weekends and
holidays missing), hourly forex bars (a weekend gap every week) and one-minute stock bars (a 6.5 h
session a day). Window boundaries are checked against an independent computation with pandas'
calendar offsets; the stitched run is checked for finiteness and for trades counted twice; each
window's figures must not change when later bars are added."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from bot.backtest import report, sweep
from bot.backtest.engine import ENTRY_BAR, EXIT_BAR, FillSettings, simulate
from bot.backtest.report import compute_stats
from bot.backtest.walkforward import Span, parse_spans, walk_forward, windows
from bot.backtest.walkforward_report import write_json
from bot.bars import NS, Bars, Timeframe
from plugins.supertrend import SupertrendStrategy

ENV = {k: v for k, v in os.environ.items() if not k.startswith(("ALPACA_", "TRADEBOT_", "POLYGON_"))}


def make_bars(times: np.ndarray, seed: int) -> Bars:
    rng = np.random.default_rng(seed)
    n = len(times)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.004, n)))
    open_ = np.r_[100.0, close[:-1]] * (1 + rng.normal(0, 0.0005, n))
    high = np.maximum(open_, close) * (1 + rng.random(n) * 0.004)
    low = np.minimum(open_, close) * (1 - rng.random(n) * 0.004)
    return Bars(times.astype(np.int64), open_, high, low, close, np.ones(n))


def daily_stock(start: str, end: str, seed: int = 1) -> Bars:
    """Weekdays at 00:00 UTC, with one weekday in 40 missing (holidays)."""
    days = pd.bdate_range(start, end, tz="UTC")
    rng = np.random.default_rng(seed)
    days = days[rng.random(len(days)) > 1 / 40]
    return make_bars(days.as_unit("ns").asi8, seed)


def hourly_forex(start: str, end: str, seed: int = 2) -> Bars:
    """Every hour from Sunday 22:00 to Friday 21:00 UTC, as EURUSD trades."""
    hours = pd.date_range(start, end, freq="h", tz="UTC", inclusive="left")
    week_hour = hours.day_of_week * 24 + hours.hour
    open_market = (week_hour < 4 * 24 + 22) | (week_hour >= 6 * 24 + 22)  # closed Fri 22:00 .. Sun 22:00
    return make_bars(hours[open_market].as_unit("ns").asi8, seed)


def minute_stock(start: str, end: str, seed: int = 3) -> Bars:
    """One-minute bars from 14:30 to 21:00 UTC on weekdays (the New York session in winter)."""
    days = pd.bdate_range(start, end, tz="UTC")
    minutes = np.arange(390, dtype=np.int64) * 60 * NS
    times = (days.as_unit("ns").asi8[:, None] + (14 * 3600 + 30 * 60) * NS + minutes[None, :]).ravel()
    return make_bars(times, seed)


def _offset(span: Span, k: int) -> pd.DateOffset | pd.Timedelta:
    units = {"h": "hours", "d": "days", "w": "weeks"}
    if span.unit in units:
        return pd.Timedelta(**{units[span.unit]: span.count * k})
    return pd.DateOffset(months=span.count * k * (12 if span.unit == "y" else 1))


def expected_windows(bars: Bars, train: Span, test: Span) -> list[tuple[int, int]]:
    """(in-sample start, out-of-sample start) of each window, computed independently: the anchor
    is the first bar plus TRAIN (pandas' calendar offsets, which clamp a month-end the same way),
    then every TEST from it; a window starts at the first bar at or after each of those times
    (empty ones dropped); its in-sample part starts at the first bar at or after TRAIN before."""
    times = bars.time
    n = len(times)
    if train.unit:
        anchor = pd.Timestamp(int(times[0]), tz="UTC") + _offset(train, 1)
        first = int(np.searchsorted(times, anchor.as_unit("ns").value))
    else:
        first = train.count
        anchor = pd.Timestamp(int(times[first]), tz="UTC")
    points: list[tuple[int, pd.Timestamp]] = []
    if not test.unit:
        points = [(b, pd.Timestamp(int(times[b]), tz="UTC")) for b in range(first, n, test.count)]
    else:
        k = 0
        while True:
            when = anchor + _offset(test, k)
            index = int(np.searchsorted(times, when.as_unit("ns").value))
            if index >= n:
                break
            if points and index == points[-1][0]:
                points[-1] = (index, when)  # an empty window: the bar starts the later one
            else:
                points.append((index, when))
            k += 1
    out = []
    for index, when in points:
        if train.unit:
            lo = int(np.searchsorted(times, (when - _offset(train, 1)).as_unit("ns").value))
        else:
            lo = index - train.count
        out.append((lo, index))
    return out


CASES = [
    ("daily", lambda: daily_stock("2010-01-01", "2016-12-31"), "2y/6M"),
    ("daily", lambda: daily_stock("2010-01-29", "2014-06-30"), "1y/1M"),  # month ends: Jan 29..31
    ("daily", lambda: daily_stock("2012-03-14", "2014-12-31"), "90d/2w"),
    ("daily", lambda: daily_stock("2012-01-01", "2014-12-31"), "250/60"),
    ("hourly", lambda: hourly_forex("2024-01-01", "2024-04-01"), "2w/1d"),
    ("hourly", lambda: hourly_forex("2024-01-01", "2024-04-01"), "3w/1w"),
    ("hourly", lambda: hourly_forex("2024-01-01", "2024-04-01"), "500/48"),
    ("hourly", lambda: hourly_forex("2024-01-01", "2024-04-01"), "2w/100"),  # calendar, then bars
    ("minute", lambda: minute_stock("2024-01-01", "2024-02-15"), "5d/1d"),
    ("minute", lambda: minute_stock("2024-01-01", "2024-02-15"), "2w/4h"),
    ("minute", lambda: minute_stock("2024-01-01", "2024-02-15"), "3000/780"),
    ("minute", lambda: minute_stock("2024-01-01", "2024-02-15"), "4000/1w"),  # bars, then calendar
]


@pytest.mark.parametrize(("kind", "make", "spans"), CASES, ids=[f"{c[0]}-{c[2]}" for c in CASES])
def test_out_of_sample_windows_partition_the_tested_span(kind, make, spans):
    bars = make()
    train, test = parse_spans(spans)
    cuts = windows(bars, train, test)
    assert [(w.train[0], w.test[0]) for w in cuts] == expected_windows(bars, train, test)
    for before, after in itertools.pairwise(cuts):
        assert after.test[0] == before.test[1]  # the bar after the previous one's last
    assert cuts[-1].test[1] == len(bars)
    for w in cuts:
        assert w.train[1] == w.test[0] and w.test[1] > w.test[0]
        assert 0 <= w.train[0] <= w.train[1] - 2


@pytest.mark.parametrize(("kind", "make", "spans"), CASES, ids=[f"{c[0]}-{c[2]}" for c in CASES])
def test_the_stitched_run_is_finite_and_trades_each_bar_once(kind, make, spans):
    bars = make()
    train, test = parse_spans(spans)
    combos = sweep.combinations(sweep.parse_grid(["period=5,9", "multiplier=2,3"]))
    settings = FillSettings(commission=0.0005)
    ppy = 252.0
    wf = walk_forward(
        bars, SupertrendStrategy, combos, settings, train, test, rank_by="sharpe", periods_per_year=ppy,
        workers=1, progress=False,
    )  # fmt: skip
    first = wf.windows[0].window.test[0]
    assert len(wf.sim.equity) == len(wf.bars) == len(bars) - first
    assert np.array_equal(wf.bars.time, bars.time[first:])
    assert np.isfinite(wf.sim.equity).all() and (wf.sim.equity > 0).all()
    stats = wf.stats.as_dict()
    assert all(np.isfinite(v) for k, v in stats.items() if k != "profit_factor")
    assert 0 <= wf.stats.max_drawdown_pct < 50
    trades = wf.sim.trades
    if len(trades):
        assert (trades[1:, ENTRY_BAR] > trades[:-1, EXIT_BAR]).all()  # no bar traded twice
        keys = {tuple(row) for row in trades[:, :4].tolist()}
        assert len(keys) == len(trades)  # no duplicated trade
    # the stitched curve is exactly each window's run, each from the equity the last one ended with
    cash = settings.cash
    for w in wf.windows:
        (lo, _), (b, c) = w.window.train, w.window.test
        out = SupertrendStrategy(**w.params).compute(bars[lo:c])
        hint = None if out.stop is None else out.stop[b - lo :]
        sim = simulate(bars[b:c], out.signal[b - lo :], replace(settings, cash=cash), stop_hint=hint)
        assert np.array_equal(wf.sim.equity[b - first : c - first], sim.equity)
        cash = float(sim.equity[-1])


def test_two_runs_write_the_same_bytes(tmp_path):
    bars = hourly_forex("2024-01-01", "2024-03-01")
    combos = sweep.combinations(sweep.parse_grid(["period=5..8", "multiplier=2,3"]))
    paths = []
    for run, workers in enumerate((1, 2)):
        wf = walk_forward(
            bars, SupertrendStrategy, combos, FillSettings(), *parse_spans("2w/1d"), rank_by="sortino",
            periods_per_year=6_240.0, workers=workers, progress=False,
        )  # fmt: skip
        path = tmp_path / f"run{run}.json"
        write_json(wf, bars.time, path)
        paths.append(path.read_bytes())
    assert paths[0] == paths[1]
    doc = json.loads(paths[0])
    assert doc["max_drawdown_pct"] < 50 and doc["sortino"] is not None


@pytest.mark.parametrize("spans", ["1y/3M", "250/60"])
def test_later_bars_do_not_change_an_earlier_window(spans):
    bars = daily_stock("2008-01-01", "2016-12-31", seed=7)
    train, test = parse_spans(spans)
    combos = sweep.combinations(sweep.parse_grid(["period=5,9,14", "multiplier=2,3"]))
    settings = FillSettings(commission=0.0005)
    timeframe = Timeframe.parse("1d")

    def run(part: Bars):
        return walk_forward(
            part, SupertrendStrategy, combos, settings, train, test, rank_by="sharpe",
            periods_per_year=report.timeframe_bars_per_year(part, timeframe), workers=1, progress=False,
        )  # fmt: skip

    short, long = run(bars[: len(bars) * 2 // 3]), run(bars)
    assert len(long.windows) > len(short.windows) >= 4
    for a, b in zip(short.windows[:-1], long.windows, strict=False):  # the last short one is cut off
        assert (a.window, a.params, a.in_sample, a.out_of_sample) == (
            b.window,
            b.params,
            b.in_sample,
            b.out_of_sample,
        )
    end = short.windows[-2].window.test[1] - short.windows[0].window.test[0]
    assert np.array_equal(short.sim.equity[:end], long.sim.equity[:end])


def test_a_window_is_annualised_from_its_timeframe():
    per_year = report.timeframe_bars_per_year
    weekdays, minutes = daily_stock("2020-01-01", "2021-12-31"), minute_stock("2024-01-01", "2024-01-10")
    assert per_year(weekdays, Timeframe.parse("1d")) == 252.0
    assert per_year(weekdays[:30], Timeframe.parse("1d")) == 252.0  # not from the history's length
    assert per_year(minutes, Timeframe.parse("1m")) == 252 * 390  # the regular session
    assert per_year(minutes, Timeframe.parse("1h")) == 252 * 7
    early = minutes[minutes.time % (86_400 * NS) >= 14 * 3600 * NS]
    early = Bars(
        early.time - 5 * 3600 * NS, *(getattr(early, c) for c in ("open", "high", "low", "close", "volume"))
    )
    assert per_year(early, Timeframe.parse("1m")) == 252 * 960  # bars from 09:30 UTC: extended hours
    forex = hourly_forex("2024-01-01", "2024-02-01")
    assert per_year(forex, Timeframe.parse("1h")) == 260 * 24  # 24 hours, 5 days a week
    crypto = make_bars(np.arange(24 * 30, dtype=np.int64) * 3600 * NS, 1)  # from Thursday 1970-01-01
    assert per_year(crypto, Timeframe.parse("1h")) == 365 * 24  # bars at weekends: around the clock
    assert per_year(crypto[::24], None) == 365.0  # the spacing when the timeframe is unknown
    assert per_year(crypto[::24], Timeframe.parse("1d")) == 365.0
    assert per_year(weekdays, Timeframe(7 * 86_400)) == pytest.approx(365 / 7)
    bars = daily_stock("2010-01-01", "2012-12-31")
    combos = [{"period": "7", "multiplier": "2"}]
    wf = walk_forward(
        bars, SupertrendStrategy, combos, FillSettings(), *parse_spans("1y/6M"), rank_by="sharpe",
        periods_per_year=252.0, workers=1, progress=False,
    )  # fmt: skip
    w = wf.windows[1]
    (lo, _), (b, c) = w.window.train, w.window.test
    out = SupertrendStrategy(period=7, multiplier=2).compute(bars[lo:c])
    cash = float(wf.sim.equity[b - wf.windows[0].window.test[0] - 1])
    hint = None if out.stop is None else out.stop[b - lo :]
    sim = simulate(bars[b:c], out.signal[b - lo :], FillSettings(cash=cash), stop_hint=hint)
    assert w.out_of_sample == compute_stats(sim, cash, 252.0)


def test_the_shipped_sample_command_no_longer_shows_a_total_loss(tmp_path):
    args = [
        sys.executable, "-m", "bot", "backtest", "--strategy", "sma_cross", "--sample", "msft-daily",
        "--param", "fast=5,10", "--param", "slow=30,50", "--walk-forward", "2y/6M", "--json", "wf.json",
    ]  # fmt: skip
    runs = [
        subprocess.run(args, capture_output=True, text=True, cwd=tmp_path, env=ENV, timeout=120) for _ in "ab"
    ]
    assert runs[0].returncode == 0, runs[0].stderr
    assert runs[0].stdout == runs[1].stdout  # the same report twice
    assert "max drawdown               100.00%" not in runs[0].stdout
    assert "RuntimeWarning" not in runs[0].stderr
    doc = json.loads((tmp_path / "wf.json").read_text())
    assert 0 < doc["max_drawdown_pct"] < 50 and abs(doc["sortino"]) < 10
    windows = doc["walk_forward"]["windows"]
    for before, after in itertools.pairwise(windows):
        assert before["out_of_sample"]["last"] < after["out_of_sample"]["first"]
    total = sum(w["out_of_sample"]["bars"] for w in windows)
    assert total == len(doc["equity_curve"])  # every out-of-sample bar once
    times = [p["time"] for p in doc["equity_curve"]]
    assert times == sorted(set(times))
    entries = [t["entry_time"] for t in doc["trades"]]
    assert len(entries) == len(set(entries))
