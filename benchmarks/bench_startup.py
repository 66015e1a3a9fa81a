"""Start-up to the first trading cycle, measured on real processes. Target: under 3 s.

Heroku stops a process that has not started within 60 s; a restart should also trade again
quickly. Three figures, each the median of ``--runs`` runs:

- ``tradebot run`` on an empty database: process start -> migrations -> lease -> first cycle logged;
- ``tradebot run`` on an existing database (the usual restart);
- ``tradebot tick`` on an existing database: the whole command, start to exit.

Simulated market, a fresh SQLite file per run by default. ``--database-url`` measures against
another database (Postgres): only the first run then starts from an empty schema.

    python benchmarks/bench_startup.py [--runs 3] [--database-url URL]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 3.0


def environment(url: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("TRADEBOT_", "ALPACA_", "TELEGRAM_", "LOG_"))
    }
    env.update(
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
        DATABASE_URL=url,
        TRADEBOT_CONSOLE="off",
        LOG_LEVEL="INFO",
        TRADEBOT_LEASE_SECONDS="3",
    )
    return env


def time_run(url: str, workdir: Path) -> float:
    """Seconds from spawning `tradebot run` to its first 'tick:' log line."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "run"],
        cwd=workdir,
        env=environment(url),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for line in process.stderr:  # type: ignore[union-attr]
            if "bot.engine: tick:" in line:
                return time.perf_counter() - started
        raise RuntimeError(f"tradebot run exited with {process.wait()} before its first cycle")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def time_tick(url: str, workdir: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "bot", "tick"],
        cwd=workdir,
        env=environment(url),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=True,
    )
    return time.perf_counter() - started


def main() -> int:
    # As a user runs it: Python writes the project's .pyc files once and reuses them. With
    # PYTHONDONTWRITEBYTECODE set (it is, on the shared machine) every measured process would
    # compile some 60 of tradebot's modules from source again.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    cold, warm, ticks = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            workdir = Path(tmp) / f"run{i}"
            workdir.mkdir()
            url = args.database_url or f"sqlite:///{workdir / 'tradebot.db'}"
            cold.append(time_run(url, workdir))  # empty database: migrations included
            warm.append(time_run(url, workdir))
            ticks.append(time_tick(url, workdir))
    rows = [
        ("tradebot run, empty database -> first cycle", cold),
        ("tradebot run, existing database -> first cycle", warm),
        ("tradebot tick, existing database, whole command", ticks),
    ]
    print(f"start-up ({args.runs} runs, median; min-max), target < {TARGET_SECONDS:g} s")
    worst = 0.0
    for label, values in rows:
        median = statistics.median(values)
        worst = max(worst, median)
        print(f"  {label:<50} {median:5.2f} s  ({min(values):.2f}-{max(values):.2f})")
    print(f"  {'PASS' if worst < TARGET_SECONDS else 'FAIL'}: slowest median {worst:.2f} s")
    return 0 if worst < TARGET_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
