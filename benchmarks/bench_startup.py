"""Start-up to the first trading cycle, measured on real processes. Target: under 3 s.

Heroku stops a process that has not started within 60 s; a restart should also trade again
quickly. Three figures, each the median of ``--runs`` runs:

- ``tradebot run`` on an empty database: process start -> migrations -> lease -> first cycle logged;
- ``tradebot run`` on an existing database (the usual restart);
- ``tradebot tick`` on an existing database: the whole command, start to exit.

The dashboard is on, as it is by default in ``tradebot run``, on a free port named explicitly (a
taken default port would turn it off with a warning and measure a bot without it); each run also
reports when the dashboard first answered ``/healthz``.

Simulated market, a fresh SQLite file per run by default. ``--database-url`` measures against
another database (Postgres): only the first run then starts from an empty schema.

    python benchmarks/bench_startup.py [--runs 3] [--database-url URL]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 3.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def environment(url: str, web_port: int | str = "off") -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("TRADEBOT_", "ALPACA_", "TELEGRAM_", "LOG_"))
    }
    env.update(
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
        DATABASE_URL=url,
        TRADEBOT_CONSOLE="off",
        TRADEBOT_WEB_PORT=str(web_port),
        LOG_LEVEL="INFO",
        TRADEBOT_LEASE_SECONDS="3",
    )
    return env


def time_run(url: str, workdir: Path) -> tuple[float, float]:
    """Seconds from spawning `tradebot run` to its first 'tick:' log line, and to the dashboard's
    first answer to /healthz."""
    port = free_port()
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "run"],
        cwd=workdir,
        env=environment(url, port),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for line in process.stderr:  # type: ignore[union-attr]
            if "bot.engine: tick:" in line:
                first_cycle = time.perf_counter() - started
                break
        else:
            raise RuntimeError(f"tradebot run exited with {process.wait()} before its first cycle")
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5):
                    return first_cycle, time.perf_counter() - started
            except OSError:
                if process.poll() is not None or time.perf_counter() - started > 60:
                    raise RuntimeError("the dashboard did not answer within 60 s") from None
                time.sleep(0.02)
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
    cold, warm, ticks, cold_web, warm_web = [], [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            workdir = Path(tmp) / f"run{i}"
            workdir.mkdir()
            url = args.database_url or f"sqlite:///{workdir / 'tradebot.db'}"
            cycle, web = time_run(url, workdir)  # empty database: migrations included
            cold.append(cycle)
            cold_web.append(web)
            cycle, web = time_run(url, workdir)
            warm.append(cycle)
            warm_web.append(web)
            ticks.append(time_tick(url, workdir))
    rows = [
        ("tradebot run, empty database -> first cycle", cold),
        ("tradebot run, existing database -> first cycle", warm),
        ("tradebot tick, existing database, whole command", ticks),
        ("tradebot run, empty database -> dashboard answers", cold_web),
        ("tradebot run, existing database -> dashboard answers", warm_web),
    ]
    print(
        f"start-up with the dashboard on ({args.runs} runs, median; min-max), target < {TARGET_SECONDS:g} s,"
        f" load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    worst = 0.0
    for label, values in rows:
        median = statistics.median(values)
        worst = max(worst, median)
        print(f"  {label:<54} {median:5.2f} s  ({min(values):.2f}-{max(values):.2f})")
    print(f"  {'PASS' if worst < TARGET_SECONDS else 'FAIL'}: slowest median {worst:.2f} s")
    return 0 if worst < TARGET_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
