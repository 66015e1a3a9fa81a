"""``tradebot backtest`` on 1,000,000 bars with ``--json``, as a whole process, as a user runs it.

    python benchmarks/bench_backtest_json.py [--rows N] [--runs R] [--csv PATH]

Targets (issue 10, item 9): under 1.0 s wall time and under 250 MB peak resident memory for the
whole process: interpreter start, imports, reading the CSV, Supertrend(10, 3) with the default
risk sizing, stops and targets, the report on stdout, and the JSON file with the trades, the
statistics and the full equity curve (a million points). Wall time is the median of the runs;
peak memory is the largest ``ru_maxrss`` the kernel reports for the process (``wait4``). The
load average is printed beside the figures: on a shared machine a loaded run is provisional.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


# A small launcher forks the measured process: a child forked straight from a big parent (this
# script after writing the CSV) would report the parent's size as its own high-water mark.
LAUNCHER = (
    "import os, sys, time\n"
    "start = time.perf_counter()\n"
    "pid = os.fork()\n"
    "if pid == 0:\n"
    "    os.execv(sys.argv[1], sys.argv[1:])\n"
    "_, status, usage = os.wait4(pid, 0)\n"
    "wall = time.perf_counter() - start\n"
    "print(os.waitstatus_to_exitcode(status), wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss)\n"
)


def run_once(command: list[str]) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds, peak resident MiB) of one whole process."""
    done = subprocess.run([sys.executable, "-c", LAUNCHER, *command], capture_output=True, text=True)
    code, wall, cpu, peak = done.stdout.split()[-4:]
    if int(code) != 0:
        raise SystemExit(f"failed: {' '.join(command)}\n{done.stderr[-2000:]}")
    return float(wall), float(cpu), int(peak) / 1024


def main() -> None:
    # As a user runs it: Python writes the project's .pyc files once and reuses them. With
    # PYTHONDONTWRITEBYTECODE set (it is, on the shared machine) every measured process would
    # compile some 60 of tradebot's modules from source again.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--csv", type=Path, help="an existing CSV of bars (default: a one-minute CSV made once)"
    )
    args = parser.parse_args()

    work = Path(tempfile.gettempdir()) / "tradebot-bench-json"
    work.mkdir(exist_ok=True)
    csv_path = args.csv or work / f"bars_1m_{args.rows}.csv"
    if not csv_path.exists():
        from bench_backtest_peers import write_csv

        print(f"writing {csv_path} ({args.rows:,} one-minute bars, once) ...", flush=True)
        write_csv(csv_path, args.rows)
    out = work / "result.json"
    tradebot = Path(sys.executable).with_name("tradebot")
    command = [str(tradebot)] if tradebot.exists() else [sys.executable, "-m", "bot"]
    command += ["backtest", "--strategy", "supertrend", "--csv", str(csv_path), "--json", str(out)]

    run_once(command)  # warm the page cache and the .pyc files, as a second run by a user would be
    runs = [run_once(command) for _ in range(args.runs)]
    doc = json.loads(out.read_text())
    load = os.getloadavg()
    walls = [r[0] for r in runs]
    print(f"tradebot backtest --csv ({args.rows:,} bars) --json, whole process, {args.runs} runs:")
    print(
        f"  wall time    median {statistics.median(walls):.2f} s (min {min(walls):.2f}, max {max(walls):.2f})  target < 1.0 s"
    )
    print(
        f"  CPU time     median {statistics.median(r[1] for r in runs):.2f} s (user + system, every thread)"
    )
    print(f"  peak memory  {max(r[2] for r in runs):.0f} MB resident  target < 250 MB")
    print(
        f"  JSON: {out.stat().st_size / 2**20:.0f} MB, {len(doc['equity_curve']):,} equity points, "
        f"{doc['n_trades']:,} trades"
    )
    print(f"  load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} on {os.cpu_count()} cores", end="")
    print("  (loaded: these figures are provisional)" if load[0] > 1.0 else "")


if __name__ == "__main__":
    main()
