"""Resident memory of a process holding 100 symbols x 1,000 cached 1m bars, and one cache update.

Imports what ``tradebot run`` imports (the libraries and tradebot's own modules that exist),
fills a ``HistoryCache`` from the synthetic market, then times the next incremental update
(one new bar for every symbol). Target: RSS under 250 MB (Heroku's small dynos have 512 MB).

    python benchmarks/bench_memory.py [--symbols 100] [--bars 1000]
"""

from __future__ import annotations

import argparse
import importlib
import resource
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MODULES = (
    "numpy",
    "pandas",
    "sqlmodel",
    "telegram",
    "telegram.ext",
    "apscheduler.schedulers.asyncio",
    "bot.cli",
    "bot.engine",
    "bot.service",
    "bot.brokers.sim",
    "storage.db",
    "storage.repository",
    "plugins.supertrend",
)


def rss_mb() -> tuple[float, float]:
    """(current, peak) resident set size in MB."""
    try:
        fields = dict(
            line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line
        )
        return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024
    except (OSError, KeyError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return peak, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--bars", type=int, default=1000)
    args = parser.parse_args()

    base, _ = rss_mb()
    loaded, missing = [], []
    for name in MODULES:
        try:
            importlib.import_module(name)
            loaded.append(name)
        except Exception as exc:  # a module another part of the project has not written yet
            missing.append(f"{name} ({type(exc).__name__})")
    after_imports, _ = rss_mb()

    from bot.bars import COLUMNS, Timeframe
    from bot.data.cache import HistoryCache
    from bot.data.synthetic import SyntheticMarket

    symbols = [f"S{chr(65 + i // 26)}{chr(65 + i % 26)}" for i in range(args.symbols - 2)] + [
        "BTC/USD",
        "ETH/USD",
    ]
    now = datetime.now(UTC)
    cache = HistoryCache(SyntheticMarket(), Timeframe.parse("1m"), max_bars=args.bars)
    t0 = time.perf_counter()
    first = cache.update(symbols, now)
    fill = time.perf_counter() - t0
    assert not first.errors and all(len(b) == args.bars for b in first.bars.values())

    timings = []
    for minute in range(1, 6):
        t0 = time.perf_counter()
        result = cache.update(symbols, now + timedelta(minutes=minute))
        timings.append(time.perf_counter() - t0)
    assert all(len(b) == args.bars for b in result.bars.values())
    held = sum(getattr(b, n).nbytes for b in result.bars.values() for n in ("time", *COLUMNS))
    rss, peak = rss_mb()

    print(f"python {sys.version.split()[0]}; imported: {', '.join(loaded)}")
    if missing:
        print(f"not importable (yet): {', '.join(missing)}")
    print(f"RSS at start            {base:7.1f} MB")
    print(f"RSS after imports       {after_imports:7.1f} MB")
    print(f"RSS with cache          {rss:7.1f} MB   (peak {peak:.1f} MB; target < 250 MB)")
    print(f"cache arrays            {held / 1e6:7.2f} MB   ({len(result.bars)} symbols x {args.bars} bars)")
    print(f"first fill              {fill * 1000:7.1f} ms   ({args.symbols} symbols x {args.bars} bars)")
    print(f"incremental update      {min(timings) * 1000:7.1f} ms   (best of 5; one new bar per symbol)")


if __name__ == "__main__":
    main()
