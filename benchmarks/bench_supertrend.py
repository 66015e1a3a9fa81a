"""Supertrend over 1,000,000 bars, in process: prints the median of several runs.

    python benchmarks/bench_supertrend.py [--bars N] [--runs R] [--python]

Target: under 50 ms with the C kernel (``bot._speedups``). ``--python`` times the
pure-Python reference instead (on fewer bars by default; it takes about a second per million).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from bot import kernels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--python", action="store_true", help="time the pure-Python kernel")
    args = parser.parse_args()

    rng = np.random.default_rng(42)
    close = 100 + np.cumsum(rng.normal(0, 0.2, args.bars))
    high, low = close + rng.random(args.bars) * 0.3, close - rng.random(args.bars) * 0.3
    impl = "python" if args.python else kernels.implementation()
    kernels.supertrend(high, low, close, 10, 3.0, impl=impl)  # warm up: page in the inputs
    times = []
    for _ in range(args.runs):
        start = time.perf_counter()
        kernels.supertrend(high, low, close, 10, 3.0, impl=impl)
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    print(
        f"supertrend(period=10, multiplier=3) over {args.bars:,} bars, kernel={impl}: "
        f"median {median * 1e3:.1f} ms over {args.runs} runs (best {min(times) * 1e3:.1f} ms)"
    )


if __name__ == "__main__":
    main()
