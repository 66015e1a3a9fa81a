"""Soak: 24 simulated hours of 1-minute cycles over 20 symbols, accelerated, in one process.

Drives ``Engine.tick`` with a ``ManualClock`` (one minute per cycle, as fast as the machine
goes) on the simulated market, through the same composition root, trading lease and service as
``tradebot run``. Every two simulated hours it prints resident memory, open file descriptors,
the connection pool, the database size and the row counts. Targets: memory flat within 10 %
after the first two hours (caches filled), no growth in descriptors or connections, database
size growing with activity (trades and their orders, fills, events), nothing else.

    python benchmarks/bench_soak.py [--hours 24] [--symbols 20] [--database-url URL]
                                    [--reads 2] [--tracemalloc]

``--reads N``: after each cycle, N rounds of the dashboard's reads (status, a page of orders,
trades and events, /pnl, /equity) through ``bot.web.data.Dashboard``, the code the API runs, in
process. ``--tracemalloc``: trace Python's allocations from the first report on (after warm-up)
and print, at the end, the source lines whose live memory grew most: where RSS growth comes from,
or that it is not Python objects (then the allocator's arenas: see the RSS line).
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

START = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
NAMES = "AAPL MSFT SPY QQQ NVDA AMZN GOOG META TSLA AMD NFLX INTC IBM ORCL JPM XOM BTC/USD ETH/USD SOL/USD LTC/USD"
TABLES = ("orders", "fills", "trades", "positions", "signals", "events", "equity_snapshots", "sim_orders")


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def db_bytes(db, url: str) -> int:  # type: ignore[no-untyped-def]
    from sqlalchemy import text

    if url.startswith("sqlite:///"):
        with db.engine.connect() as c:  # fold the write-ahead log in, so the file size is the data
            c.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        path = Path(url.removeprefix("sqlite:///"))
        return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
    with db.engine.connect() as c:
        return int(
            c.execute(
                text(
                    "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = current_schema() AND c.relkind = 'r'"
                )
            ).scalar_one()
        )


def pool_connections(db) -> int:  # type: ignore[no-untyped-def]
    pool = db.engine.pool
    return pool.checkedin() + pool.checkedout()


def counts(db) -> dict[str, int]:  # type: ignore[no-untyped-def]
    from sqlalchemy import text

    with db.engine.connect() as c:
        return {t: int(c.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()) for t in TABLES}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hours", type=float, default=24)
    parser.add_argument("--symbols", type=int, default=20)
    parser.add_argument("--database-url", default="", help="default: a SQLite file in a temporary folder")
    parser.add_argument("--report-every", type=float, default=2, help="simulated hours between lines")
    parser.add_argument("--reads", type=int, default=0, help="dashboard read rounds after each cycle")
    parser.add_argument("--tracemalloc", action="store_true", help="where live Python memory grew")
    parser.add_argument(
        "--trim",
        action="store_true",
        help="at each report, hand glibc's free memory back (malloc_trim) and print RSS after it too",
    )
    args = parser.parse_args()
    import tracemalloc

    from bot.app import build_app
    from bot.clock import ManualClock
    from bot.config import Settings
    from bot.logs import setup_logging

    setup_logging("ERROR")
    symbols = NAMES.split()[: args.symbols]
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'soak.db'}"
        settings = Settings.from_mapping({"DATABASE_URL": url, "TRADEBOT_SYMBOLS": ",".join(symbols)})
        clock = ManualClock(START)
        app = build_app(settings, accelerate=False, clock=clock)  # every order confirms the lease
        if not app.lease.try_acquire():
            print("another process holds the trading lease on this database")
            return 1
        cycles = int(args.hours * 60)
        every = int(args.report_every * 60)
        print(
            f"soak: {args.hours:g} simulated hours of 1m cycles over {len(symbols)} symbols, "
            f"database {app.db.engine.url.get_backend_name()}"
        )
        print(
            f"{'sim hour':>8} {'cycles':>6} {'RSS MB':>7} {'fds':>4} {'conns':>5} {'DB KB':>7} {'trades':>6} {'orders':>6} {'events':>6} {'CPU ms/cycle':>12}"
        )
        samples, durations = [], []
        dashboard = None
        if args.reads:
            from bot.web.data import Dashboard

            dashboard = Dashboard(app)
        traced = None
        trimmed: list[float] = []  # RSS after malloc_trim at each report (--trim)
        read_times: list[tuple[int, float]] = []  # (cycle, ms for one round of the reads)
        started = time.perf_counter()
        for i in range(1, cycles + 1):
            clock.advance(minutes=1)
            t0 = time.process_time()  # CPU time: other load on the machine does not count
            app.engine.tick()
            durations.append(time.process_time() - t0)
            for _ in range(args.reads if dashboard is not None else 0):
                r0 = time.process_time()  # CPU time: other load on the machine does not count
                dashboard.cache.clear()  # uncached, as after every event
                dashboard.status()
                dashboard.order_page(limit=50)
                page = dashboard.trade_page(limit=50)
                if page.next_before is not None:
                    dashboard.trade_page(limit=50, before=page.next_before)
                dashboard.event_page(limit=50)
                dashboard.service.pnl()
                dashboard.equity()
                read_times.append((i, (time.process_time() - r0) * 1000))
            if i % 10 == 0:
                app.lease.renew()  # the heartbeat, every ten simulated minutes here
            if i % every == 0 or i == cycles:
                gc.collect()
                rows = counts(app.db)
                sample = (i / 60, rss_mb(), open_fds(), db_bytes(app.db, url), rows)
                samples.append(sample)
                if args.trim:  # what the allocator keeps but the program no longer uses
                    import ctypes

                    ctypes.CDLL("libc.so.6").malloc_trim(0)
                    trimmed.append(rss_mb())
                    print(f"{'':8} after malloc_trim: RSS {trimmed[-1]:.1f} MB")
                recent = durations[-every:]
                print(
                    f"{i / 60:8.1f} {i:6d} {sample[1]:7.1f} {sample[2]:4d} {pool_connections(app.db):5d} "
                    f"{sample[3] / 1024:7.0f} {rows['trades']:6d} {rows['orders']:6d} {rows['events']:6d} "
                    f"{statistics.median(recent) * 1000:12.1f}"
                )
                if args.tracemalloc and traced is None:  # warm-up over: trace from here
                    tracemalloc.start(1)
                    traced = tracemalloc.take_snapshot()
        wall = time.perf_counter() - started
        if traced is not None:
            gc.collect()
            grown = tracemalloc.take_snapshot().compare_to(traced, "lineno")
            print("\nPython memory grown since the first report, by source line (tracemalloc):")
            for stat in grown[:15]:
                print(f"  {stat.size_diff / 1024:+9.1f} KB {stat.count_diff:+8d} blocks  {stat.traceback[0]}")
            current, _peak = tracemalloc.get_traced_memory()
            print(f"  traced now {current / 1024 / 1024:.1f} MB in all")
            tracemalloc.stop()
        app.lease.release()
        app.db.dispose()

    baseline = samples[0]
    rss = [s[1] for s in samples]
    growth = (max(rss) - baseline[1]) / baseline[1] * 100
    fds = [s[2] for s in samples]
    last = samples[-1]
    trades = last[4]["trades"]
    print(
        f"\nwall time {wall:.0f} s for {cycles} cycles; CPU per cycle: median "
        f"{statistics.median(durations) * 1000:.1f} ms, p99 {sorted(durations)[int(len(durations) * 0.99)] * 1000:.1f} ms"
    )
    print(
        f"RSS after {baseline[0]:g} h {baseline[1]:.1f} MB, peak after {max(rss):.1f} MB: {growth:+.1f} % "
        f"({'PASS' if growth <= 10 else 'FAIL'}: flat within 10 %); grew {max(rss) - baseline[1]:+.1f} MB "
        f"after warm-up ({'PASS' if max(rss) - baseline[1] < 10 else 'FAIL'}: < 10 MB), "
        f"{(rss[-1] - baseline[1]) / max(samples[-1][0] - baseline[0], 1e-9):+.3f} MB per simulated hour "
        f"(load average {' '.join(f'{x:.2f}' for x in os.getloadavg())})"
    )
    if trimmed:
        print(
            f"RSS after malloc_trim: {trimmed[0]:.1f} MB at the first report, {trimmed[-1]:.1f} MB at the "
            f"last ({trimmed[-1] - trimmed[0]:+.1f} MB): what trimming does not give back is memory in use"
        )
    if read_times:
        opening = [ms for i, ms in read_times if i <= 60]
        closing = [ms for i, ms in read_times if i > cycles - 60]
        p99_first = sorted(opening)[int(len(opening) * 0.99)]
        p99_last = sorted(closing)[int(len(closing) * 0.99)]
        ratio = p99_last / p99_first
        print(
            f"a round of the dashboard's reads (status, orders, trades x2, events, pnl, equity), CPU ms: "
            f"first simulated hour p50 {statistics.median(opening):.1f} p99 {p99_first:.1f}, last hour p50 "
            f"{statistics.median(closing):.1f} p99 {p99_last:.1f}: p99 {ratio:.2f}x "
            f"({'PASS' if ratio <= 1.5 else 'FAIL'}: within 1.5x)"
        )
        # The first hour is still warming up (the equity chart's newest snapshots fill over the first
        # day, to 500): the hour after the first report is the fair start.
        warm = [ms for i, ms in read_times if every < i <= every + 60]
        if warm and every + 60 < cycles - 60:
            p99_warm = sorted(warm)[int(len(warm) * 0.99)]
            print(
                f"  after warm-up (hour {every / 60:g} to {every / 60 + 1:g}): p50 {statistics.median(warm):.1f} "
                f"p99 {p99_warm:.1f}; the last hour's p99 {p99_last / p99_warm:.2f}x of it"
            )
    print(f"open fds {min(fds)}..{max(fds)} ({'PASS' if max(fds) == min(fds) else 'CHECK'}: no growth)")
    grown = last[3] - baseline[3]
    rows_grown = {t: last[4][t] - baseline[4][t] for t in TABLES}
    print(
        f"database {last[3] / 1024:.0f} KB for {trades} trades; grew {grown / 1024:.0f} KB after hour {baseline[0]:g}: "
        + ", ".join(f"{t} +{n}" for t, n in rows_grown.items())
    )
    if trades:
        print(
            f"  {last[3] / trades / 1024:.1f} KB per trade overall (orders, fills, signals and events included)"
        )
    return 0 if growth <= 10 else 1


if __name__ == "__main__":
    sys.exit(main())
