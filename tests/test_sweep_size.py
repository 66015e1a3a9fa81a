"""How big a sweep is, said before it starts, and ``--yes`` above ``CONFIRM_BARS`` (issue 19 §3: a
5,000,000-combination run started silently, hours of work); why a backtest made no trade (a
one-row CSV said "trades 0" and nothing else). Each runs the real command."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import numpy as np
import pytest

from bot.backtest.estimate import CONFIRM_BARS, Estimate, duration

ENV = {k: v for k, v in os.environ.items() if not k.startswith(("ALPACA_", "TRADEBOT_", "POLYGON_"))}
BIG_GRID = ["--param", "period=1..1000", "--param", "multiplier=1..10.9:0.1"]  # 100,000 combinations


def tradebot(*args: str, cwd) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", "backtest", "--strategy", "supertrend", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=ENV,
        timeout=300,
    )


def write_csv(path, n: int) -> None:
    rng = np.random.default_rng(7)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    open_ = np.r_[100.0, close[:-1]]
    high, low = np.maximum(open_, close) * 1.001, np.minimum(open_, close) * 0.999
    times = np.datetime64("2020-01-01T00:00") + np.arange(n) * np.timedelta64(1, "m")
    rows = (
        f"{t}Z,{o:.4f},{h:.4f},{lo:.4f},{c:.4f},1"
        for t, o, h, lo, c in zip(times, open_, high, low, close, strict=True)
    )
    path.write_text("timestamp,open,high,low,close,volume\n" + "\n".join(rows) + "\n")


def test_a_sweep_says_its_size_and_an_estimate_before_its_results(tmp_path):
    run = tradebot("--sample", "msft-daily", "--param", "period=5..8", "--workers", "1", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    (line,) = run.stderr.splitlines()
    assert re.fullmatch(
        r"sweep: 4 combinations, 31,932 bars in all; about [\d.]+ (ms|s) on 1 process "
        r"\(the first took [\d.]+ (ms|s)\)",
        line,
    ), line


def test_a_walk_forward_run_counts_its_windows(tmp_path):
    run = tradebot(
        "--sample", "msft-daily", "--param", "period=5..6", "--walk-forward", "7000/500", cwd=tmp_path
    )
    assert run.returncode == 0, run.stderr
    (line,) = run.stderr.splitlines()
    # 983 bars after the first 7,000: two windows, each trained on 7,000 bars, for 2 combinations
    assert line.startswith(
        "walk-forward 7000/500: 2 combinations x 2 windows = 4 backtests, 28,000 bars in all;"
    )


def test_a_run_above_the_bound_is_refused_without_yes_in_one_line(tmp_path):
    write_csv(tmp_path / "bars.csv", 120_000)  # x 100,000 combinations = 12,000,000,000 bars
    run = tradebot("--csv", "bars.csv", *BIG_GRID, cwd=tmp_path)
    assert run.returncode == 2, run.stderr
    (line,) = run.stderr.splitlines()
    assert line.startswith(
        "tradebot backtest: error: sweep: 100,000 combinations, 12,000,000,000 bars in all; about "
    )
    assert line.endswith(f". Above {CONFIRM_BARS:,} bars in all, add --yes to start it")
    assert run.stdout == ""


def test_with_yes_it_starts_after_saying_its_size(tmp_path):
    write_csv(tmp_path / "bars.csv", 120_000)
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "backtest", "--strategy", "supertrend", "--csv", "bars.csv", *BIG_GRID,
         "--yes", "--workers", "1", "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=ENV,
    )  # fmt: skip
    try:
        assert process.stderr is not None
        first = process.stderr.readline()
        assert first.startswith("sweep: 100,000 combinations, 12,000,000,000 bars in all; about "), first
        assert process.poll() is None  # and it runs
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=60)


def test_the_estimate_scales_the_first_backtest_by_the_bars():
    found = Estimate(backtests=1_000, bars=10_000_000, first_seconds=0.01, first_bars=10_000)
    assert found.cpu_seconds == pytest.approx(10.0)
    assert found.line("sweep: 1,000 combinations", 4) == (
        "sweep: 1,000 combinations, 10,000,000 bars in all; about 2 s on 4 processes (the first took 10 ms)"
    )
    assert "of CPU time, shared by the cluster's workers" in found.line("sweep", None)
    assert [duration(s) for s in (0.00085, 0.25, 42, 840, 7_800, 300_000)] == [
        "0.85 ms", "250 ms", "42 s", "14 min", "2 h 10 min", "3.5 days",
    ]  # fmt: skip
    assert not found.needs_confirmation
    assert Estimate(1, CONFIRM_BARS + 1, 1.0, 1).needs_confirmation


def test_a_one_row_csv_says_why_no_trade_was_possible(tmp_path):
    (tmp_path / "one.csv").write_text("timestamp,open,high,low,close\n2024-01-02T00:00:00Z,10,11,9,10.5\n")
    run = tradebot("--csv", "one.csv", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert re.search(r"trades +0\n", run.stdout)
    assert (
        "note: no trade was possible: supertrend(period=10,multiplier=3) needs 11 bars before its first "
        "signal and one more to fill it at the next bar's open; the history has 1 bar"
    ) in run.stdout


def test_a_history_without_a_buy_signal_says_so(tmp_path):
    """Prices that only fall: Supertrend never turns up, so no buy signal and no trade."""
    rows = [f"2024-01-{d:02d}T00:00:00Z,{100 - d},{100.5 - d},{98.5 - d},{99 - d}" for d in range(1, 31)]
    (tmp_path / "falling.csv").write_text("timestamp,open,high,low,close\n" + "\n".join(rows) + "\n")
    run = tradebot("--csv", "falling.csv", "--param", "period=5", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert re.search(r"trades +0\n", run.stdout)
    assert (
        "note: supertrend(period=5,multiplier=3) gave no buy signal in these 30 bars (a signal on the last "
        "bar does nothing)"
    ) in run.stdout
