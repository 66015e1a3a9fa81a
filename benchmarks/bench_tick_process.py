"""`tradebot tick` over 100 simulated symbols as a whole process, against `tradebot --help`.

Target: the tick takes under 1.0 s more than `tradebot --help` (what a cron job or Heroku
Scheduler pays per cycle beyond starting Python). Measured as a user runs them: the installed
`tradebot` command, a SQLite file already at the newest schema (the first tick migrates it and
is not counted), 100 symbols (90 stocks, 10 crypto pairs), no other tradebot setting. The two
commands alternate so that load on the machine hits both alike; medians are reported, with
the CPU time (user + sys) of the tick, which load inflates less than wall time.
"""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUNS = 9
SYMBOLS = [f"S{chr(65 + i // 26)}{chr(65 + i % 26)}" for i in range(90)] + [f"C{i}/USD" for i in range(10)]
ISOLATED_PREFIXES = ("TRADEBOT_", "ALPACA_", "TELEGRAM_", "POLYGON_", "DATABASE_URL", "LOG_")


def timed(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + sys) of one whole process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(
        command, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    # As a user runs it: Python writes the project's .pyc files once and reuses them. With
    # PYTHONDONTWRITEBYTECODE set (it is, on the shared machine) every measured process would
    # compile some 60 of tradebot's modules from source again.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    exe = shutil.which("tradebot") or str(Path(sys.executable).parent / "tradebot")
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith(ISOLATED_PREFIXES)}
        env.update(DATABASE_URL=f"sqlite:///{Path(tmp) / 'bench.db'}", TRADEBOT_SYMBOLS=",".join(SYMBOLS))
        timed([exe, "tick"], Path(tmp), env)  # creates and migrates the database: not counted
        ticks, tick_cpu, helps = [], [], []
        for _ in range(RUNS):
            wall, cpu = timed([exe, "tick"], Path(tmp), env)
            ticks.append(wall)
            tick_cpu.append(cpu)
            helps.append(timed([exe, "--help"], Path(tmp), env)[0])
    tick, help_, cpu = statistics.median(ticks), statistics.median(helps), statistics.median(tick_cpu)
    load = os.getloadavg()[0]
    print(
        f"tradebot tick, 100 simulated symbols: median {tick:.2f} s (CPU {cpu:.2f} s); "
        f"tradebot --help: median {help_:.2f} s; difference {tick - help_:.2f} s (target < 1.0 s); "
        f"{RUNS} runs each, load average {load:.1f} on {os.cpu_count()} cores"
    )


if __name__ == "__main__":
    main()
