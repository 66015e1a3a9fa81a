"""Walk-forward over 1,000,000 one-minute bars: a 64-combination grid, 12 windows, two cores
(target: under 30 s), as the whole command a user runs:

    tradebot backtest --strategy supertrend --csv bars.csv --param period=7..14 \\
        --param multiplier=1.5..5:0.5 --walk-forward 400000/50000 --workers 2

    python benchmarks/bench_walkforward.py [--bars 1000000] [--runs 3] [--folder DIR]

In-sample windows of 400,000 bars, out-of-sample windows of 50,000: 12 windows x 64 combinations
= 768 backtests of 400,000 bars, then 12 out-of-sample runs.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_portfolio import children_cpu, cpu_line, make_bars, write_csv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--folder", type=Path, default=Path("/tmp/tradebot-bench-walkforward"))
    args = parser.parse_args()

    args.folder.mkdir(parents=True, exist_ok=True)
    path = args.folder / f"bars_{args.bars}.csv"
    if not path.exists():
        write_csv(path, make_bars(args.bars, seed=42))
    train, test = args.bars * 2 // 5, args.bars // 20
    command = [
        sys.executable, "-m", "bot", "backtest", "--strategy", "supertrend", "--csv", str(path),
        "--param", "period=7..14", "--param", "multiplier=1.5..5:0.5",
        "--walk-forward", f"{train}/{test}", "--workers", "2",
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
    head = out.splitlines()[0]
    print(f"{args.bars:,} bars: {head}")
    print(
        f"  whole command, two worker processes: median {statistics.median(times):.2f} s "
        f"(runs {', '.join(f'{t:.2f}' for t in times)}; target < 30 s)"
    )
    print(f"  {cpu_line(cpus)}")


if __name__ == "__main__":
    main()
