"""How fast `tradebot --help` answers, as a whole process (target: under 0.5 s)."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time

RUNS = 7


def main() -> None:
    # As a user runs it: Python writes the project's .pyc files once and reuses them. With
    # PYTHONDONTWRITEBYTECODE set (it is, on the shared machine) every measured process would
    # compile some 60 of tradebot's modules from source again.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    exe = shutil.which("tradebot")
    command = [exe, "--help"] if exe else [sys.executable, "-m", "bot", "--help"]
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    print(
        f"tradebot --help: median {statistics.median(times) * 1000:.0f} ms, best {min(times) * 1000:.0f} ms "
        f"over {RUNS} runs (target < 500 ms)"
    )


if __name__ == "__main__":
    main()
