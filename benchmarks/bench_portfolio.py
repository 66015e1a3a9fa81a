"""Portfolio backtest speed: 100 symbols x 100,000 one-minute bars, one strategy, one process.

    python benchmarks/bench_portfolio.py [--symbols 100] [--bars 100000] [--runs 3] [--folder DIR]

Writes one CSV file per symbol into --folder once (random walks, ISO times: about 600 MB for
the defaults, reused by later runs) and times the whole command a user runs,
``tradebot backtest --strategy supertrend --symbols S000,...,S099 --csv DIR`` (target: under
10 s), then the simulation alone, in this process, on the same bars.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bot.bars import NS, Bars, Timeframe


def make_bars(n: int, seed: int) -> Bars:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.0008, n)))
    open_ = np.r_[100.0, close[:-1]] * (1 + rng.normal(0, 0.0002, n))
    high = np.maximum(open_, close) * (1 + rng.random(n) * 0.0008)
    low = np.minimum(open_, close) * (1 - rng.random(n) * 0.0008)
    times = 1_704_067_200 * NS + np.arange(n, dtype=np.int64) * 60 * NS
    return Bars(times, open_, high, low, close, np.full(n, 100.0))


def write_csv(path: Path, bars: Bars) -> None:
    """timestamp (ISO 8601, UTC), open, high, low, close (4 decimals), volume, written by pyarrow."""
    import pyarrow as pa
    from pyarrow import csv

    from bot.backtest.report import iso_times

    def rounded(values: np.ndarray) -> pa.Array:
        return pa.array(np.round(values, 4))

    table = pa.table(
        {
            "timestamp": pa.array(iso_times(bars.time)),
            "open": rounded(bars.open),
            "high": rounded(np.maximum(bars.high, np.maximum(bars.open, bars.close))),
            "low": rounded(np.minimum(bars.low, np.minimum(bars.open, bars.close))),
            "close": rounded(bars.close),
            "volume": pa.array(bars.volume),
        }
    )
    tmp = path.with_suffix(".tmp")
    csv.write_csv(table, tmp, csv.WriteOptions(quoting_style="none"))
    tmp.replace(path)


def children_cpu() -> float:
    """User plus system CPU seconds of the finished child processes (and theirs) so far."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cpu_line(cpus: list[float]) -> str:
    """The load-independent figure: on a shared machine the wall time grows with the load."""
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"CPU (user + system, the command and its workers): median {statistics.median(cpus):.2f} s, "
        f"runs {', '.join(f'{c:.2f}' for c in cpus)}; load average {load}"
    )


def ensure_folder(folder: Path, symbols: list[str], bars: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for k, symbol in enumerate(symbols):
        path = folder / f"{symbol}.csv"
        if not path.exists():
            write_csv(path, make_bars(bars, seed=k))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--bars", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--folder", type=Path, default=Path("/tmp/tradebot-bench-portfolio"))
    args = parser.parse_args()

    symbols = [f"S{k:03d}" for k in range(args.symbols)]
    folder = args.folder / f"{args.symbols}x{args.bars}"
    print(f"{args.symbols} symbols x {args.bars:,} one-minute bars in {folder} ...", flush=True)
    ensure_folder(folder, symbols, args.bars)
    command = [
        sys.executable, "-m", "bot", "backtest", "--strategy", "supertrend",
        "--symbols", ",".join(symbols), "--csv", str(folder), "--cash", "100000",
    ]  # fmt: skip
    times, cpus, out = [], [], ""
    for _ in range(args.runs):
        start, cpu = time.perf_counter(), children_cpu()
        done = subprocess.run(command, capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        cpus.append(children_cpu() - cpu)
        if done.returncode:
            raise SystemExit(done.stderr)
        out = done.stdout
    summary = next(line for line in out.splitlines() if line.startswith("buy signals"))
    trades = next(line for line in out.splitlines() if line.strip().startswith("trades ")).split()[-1]
    print(
        f"  whole command (reading {args.symbols} CSV files included): median {statistics.median(times):.2f} s, "
        f"runs {', '.join(f'{t:.2f}' for t in times)}; {trades} trades"
    )
    print(f"  {cpu_line(cpus)}")
    print(f"  {summary}")

    from bot.backtest import data
    from bot.backtest.portfolio import PortfolioSettings, simulate_portfolio
    from plugins.supertrend import SupertrendStrategy

    start = time.perf_counter()
    loaded = {symbol: data.read_csv(folder / f"{symbol}.csv") for symbol in symbols}
    read = time.perf_counter() - start
    sims = []
    for _ in range(args.runs):
        start = time.perf_counter()
        run = simulate_portfolio(loaded, SupertrendStrategy(), Timeframe(60), PortfolioSettings(cash=100_000))
        sims.append(time.perf_counter() - start)
    print(
        f"  in process: reading the CSV files {read:.2f} s; simulate_portfolio (signals included) median "
        f"{statistics.median(sims):.2f} s; {run.n_trades:,} trades"
    )


if __name__ == "__main__":
    main()
