"""Backtest speed inside one process, and a parameter sweep across every core.

    python benchmarks/bench_backtest.py [--bars N] [--runs R] [--sweep-bars N] [--python]

Prints medians for 1,000,000 one-minute bars: the Supertrend signal, the simulation loop
(the number to hold against vectorbt's ``Portfolio.from_signals``, about 0.17 s), the
statistics, and the whole ``run_backtest``; then a 64-combination sweep over 100,000 bars
(target: under 10 s, using every core). ``--python`` also times the pure-Python loop.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

from bot import kernels
from bot.backtest import sweep
from bot.backtest.engine import FillSettings, simulate
from bot.backtest.report import bars_per_year, compute_stats
from bot.backtest.runner import run_backtest
from bot.bars import NS, Bars
from plugins.supertrend import SupertrendStrategy


def make_bars(n: int, seed: int = 42) -> Bars:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.0008, n)))
    open_ = np.r_[100.0, close[:-1]]
    high = np.maximum(open_, close) * (1 + rng.random(n) * 0.0008)
    low = np.minimum(open_, close) * (1 - rng.random(n) * 0.0008)
    times = 1_577_836_800 * NS + np.arange(n, dtype=np.int64) * 60 * NS
    return Bars(times, open_, high, low, close, np.ones(n))


def median_time(fn, runs: int) -> float:  # type: ignore[no-untyped-def]
    fn()  # warm up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--sweep-bars", type=int, default=100_000)
    parser.add_argument("--python", action="store_true", help="also time the pure-Python simulation loop")
    args = parser.parse_args()

    bars = make_bars(args.bars)
    strategy = SupertrendStrategy()
    settings = FillSettings()
    signal = strategy.compute(bars).signal
    sim = simulate(bars, signal, settings)
    ppy = bars_per_year(bars)
    print(
        f"{args.bars:,} one-minute bars, supertrend(10, 3): {sim.n_trades:,} trades; kernels: {kernels.implementation()}"
    )
    rows = [
        ("signal (strategy.compute)", lambda: strategy.compute(bars)),
        ("simulation loop (simulate)", lambda: simulate(bars, signal, settings)),
        ("statistics (compute_stats)", lambda: compute_stats(sim, settings.cash, ppy)),
        ("signal + simulation", lambda: simulate(bars, strategy.compute(bars).signal, settings)),
        ("whole run_backtest", lambda: run_backtest(bars, strategy, settings)),
    ]
    for label, fn in rows:
        print(f"  {label:<30} median {median_time(fn, args.runs) * 1e3:8.1f} ms over {args.runs} runs")
    if args.python:
        seconds = median_time(lambda: simulate(bars, signal, settings, impl="python"), 1)
        print(f"  {'simulation loop, pure Python':<30} {seconds * 1e3:8.1f} ms")

    small = make_bars(args.sweep_bars, seed=7)
    combos = sweep.combinations(sweep.parse_grid(["period=7..14", "multiplier=1.5..5:0.5"]))
    cores = sweep._cores()
    start = time.perf_counter()
    results = sweep.run_sweep(
        small, SupertrendStrategy, combos, settings, periods_per_year=525_600, workers=cores
    )
    elapsed = time.perf_counter() - start
    print(
        f"sweep: {len(results)} combinations over {args.sweep_bars:,} bars on {cores} worker processes "
        f"({os.cpu_count()} cores): {elapsed:.2f} s (target < 10 s)"
    )


if __name__ == "__main__":
    main()
