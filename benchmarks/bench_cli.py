"""How fast `tradebot --help` answers, as a whole process (target: under 0.5 s)."""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time

RUNS = 7


def main() -> None:
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
