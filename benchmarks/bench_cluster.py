"""A 1,000-combination sweep over 100,000 bars: two local processes against a two-worker Dask
``LocalCluster`` on 127.0.0.1 (target: the cluster at most 1.3x the local time, same ranking).

    python benchmarks/bench_cluster.py [--bars 100000] [--runs 3]

The local figure is ``run_sweep(workers=2)`` as ``tradebot backtest`` runs it (its process pool
started and stopped each time); the cluster figure is ``run_sweep(cluster=ADDRESS)`` against a
cluster that is already running, as a user's would be (connecting, the version check and
scattering the bars included). Needs ``pip install 'tradebot[cluster]'``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_backtest import make_bars

from bot.backtest import sweep
from bot.backtest.engine import FillSettings
from bot.backtest.report import bars_per_year
from plugins.supertrend import SupertrendStrategy

GRID = ["period=5..54", "multiplier=1..5.75:0.25"]  # 50 x 20 = 1,000 combinations


def timed(fn, runs: int):  # type: ignore[no-untyped-def]
    times, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bars", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    from distributed import LocalCluster

    bars = make_bars(args.bars, seed=7)
    combos = sweep.combinations(sweep.parse_grid(GRID))
    settings, ppy = FillSettings(), bars_per_year(bars)
    print(f"{len(combos):,} combinations over {args.bars:,} bars", flush=True)

    def local():  # type: ignore[no-untyped-def]
        return sweep.run_sweep(bars, SupertrendStrategy, combos, settings, periods_per_year=ppy, workers=2)

    local_median, local_runs, local_rows = timed(local, args.runs)
    print(f"  two local processes: median {local_median:.2f} s ({', '.join(f'{t:.2f}' for t in local_runs)})")
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=":0"
    ) as cluster:

        def remote():  # type: ignore[no-untyped-def]
            return sweep.run_sweep(
                bars,
                SupertrendStrategy,
                combos,
                settings,
                periods_per_year=ppy,
                cluster=cluster.scheduler_address,
            )

        remote_median, remote_runs, remote_rows = timed(remote, args.runs)
    print(
        f"  two-worker LocalCluster: median {remote_median:.2f} s ({', '.join(f'{t:.2f}' for t in remote_runs)})"
    )
    same = sweep.rank(remote_rows, "sharpe") == sweep.rank(local_rows, "sharpe")
    print(
        f"  cluster / local: {remote_median / local_median:.2f}x (target <= 1.3x); same ranked results: {same}"
    )


if __name__ == "__main__":
    main()
