"""A year of history costs what a day costs (issue 19, section 6): the API's reads on a database
holding 100,000 closed trades against the same reads on a fresh one.

The history is written in bulk, row for row as the bot writes it: per round trip a buy and a sell
order (filled), their two fills, the trade, an ``order_placed`` and an ``order_filled`` event
each, an equity snapshot after each fill, plus one every five minutes, spread over a year (about
1.2 million rows for 100,000 trades). Then a real ``tradebot run`` (simulated broker, web server
on loopback) opens that database and each read is timed through HTTP, uncached: one round of
requests per 1.1 s, longer than the web server's read memo keeps an answer.

Targets: each read p99 < 50 ms uncached, ``/pnl`` p99 < 20 ms.

    python benchmarks/bench_history.py [--trades 100000] [--rounds 100] [--database-url URL]

``--database-url`` takes an empty database (Postgres: create one whose name says whose it is);
by default a SQLite file in a temporary folder. ``--trades 0`` times the fresh database alone.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SYMBOLS = [
    "AAPL",
    "MSFT",
    "SPY",
    "QQQ",
    "NVDA",
    "AMZN",
    "GOOG",
    "META",
    "TSLA",
    "AMD",
    "NFLX",
    "INTC",
    "IBM",
    "ORCL",
    "JPM",
    "XOM",
]
TOKEN = "bench-token-0123456789abcdef"
START = datetime(2025, 3, 2, 14, 30, tzinfo=UTC)
YEAR = timedelta(days=365)
READS = {
    "orders": "/orders?limit=100",
    "trades": "/trades?limit=100",
    "events": "/events?limit=100",
    "pnl": "/pnl",
    "equity": "/equity",
    "status": "/status",
    "profit": "/profit",
    "bars": "/bars/AAPL",
}
BATCH = 20_000


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def build_history(url: str, trades: int, seed: int = 19) -> dict[str, int]:
    """Migrate ``url`` to the newest schema and write ``trades`` round trips into it."""
    from sqlalchemy import insert

    from storage import migrate
    from storage.db import Database
    from storage.models import EquitySnapshotRow, EventRow, FillRow, OrderRow, TradeRow

    db = Database(url)
    migrate.upgrade(db)
    rng = random.Random(seed)
    step = YEAR / max(trades, 1)
    rows: dict[str, list[dict[str, Any]]] = {"orders": [], "fills": [], "trades": [], "events": [], "eq": []}
    written = dict.fromkeys(rows, 0)
    equity = 100_000.0

    def flush(force: bool = False) -> None:
        tables = {
            "orders": OrderRow,
            "fills": FillRow,
            "trades": TradeRow,
            "events": EventRow,
            "eq": EquitySnapshotRow,
        }
        with db.engine.begin() as connection:
            for key, model in tables.items():
                if rows[key] and (force or len(rows[key]) >= BATCH):
                    connection.execute(insert(model.__table__), rows[key])  # type: ignore[attr-defined]
                    written[key] += len(rows[key])
                    rows[key].clear()

    next_snapshot = START
    for i in range(trades):
        symbol = SYMBOLS[i % len(SYMBOLS)]
        entry_time = START + step * i
        exit_time = entry_time + step * 0.8
        while next_snapshot < entry_time:  # the five-minute snapshots between fills
            rows["eq"].append({"time": next_snapshot, "equity": equity, "cash": equity * 0.4})
            next_snapshot += timedelta(minutes=5)
        qty = float(rng.randint(1, 50))
        entry = rng.uniform(50, 500)
        exit_ = entry * (1 + rng.gauss(0.0005, 0.01))
        commission = round(qty * entry * 0.0005, 4)
        pnl = (exit_ - entry) * qty - commission
        strategy = "supertrend" if i % 3 else "supertrend_fast"
        for side, when, price in (("buy", entry_time, entry), ("sell", exit_time, exit_)):
            coid = f"tb-{strategy}-{symbol}-{int(entry_time.timestamp())}-{side}-{i}"
            rows["orders"].append(
                {
                    "client_order_id": coid,
                    "broker_order_id": f"sim-{coid}",
                    "symbol": symbol,
                    "side": side,
                    "qty": qty,
                    "order_type": "market",
                    "limit_price": None,
                    "stop_loss": round(price * 0.97, 2) if side == "buy" else None,
                    "take_profit": None,
                    "status": "filled",
                    "filled_qty": qty,
                    "filled_avg_price": price,
                    "strategy": strategy,
                    "reason": "supertrend flipped up" if side == "buy" else "supertrend flipped down",
                    "exit_reason": None if side == "buy" else "signal",
                    "error": None,
                    "created_at": when,
                    "updated_at": when,
                }
            )
            rows["fills"].append(
                {
                    "fill_id": f"sim-{coid}",
                    "client_order_id": coid,
                    "symbol": symbol,
                    "side": side,
                    "qty": qty,
                    "price": price,
                    "commission": commission if side == "buy" else 0.0,
                    "exit_reason": None if side == "buy" else "signal",
                    "time": when,
                }
            )
            verb = "Bought" if side == "buy" else "Sold"
            for kind, message in (
                ("order_placed", f"Order {side} {qty:g} {symbol} placed ({strategy})"),
                ("order_filled", f"{verb} {qty:g} {symbol} at {price:,.2f}"),
            ):
                rows["events"].append(
                    {
                        "time": when,
                        "kind": kind,
                        "severity": "info",
                        "symbol": symbol,
                        "message": message,
                        "data": f'{{"client_order_id": "{coid}", "strategy": "{strategy}"}}',
                    }
                )
            if side == "sell":
                equity += pnl
            rows["eq"].append({"time": when, "equity": equity, "cash": equity * 0.4})
        rows["trades"].append(
            {
                "symbol": symbol,
                "strategy": strategy,
                "qty": qty,
                "entry_time": entry_time,
                "entry_price": entry,
                "exit_time": exit_time,
                "exit_price": exit_,
                "pnl": pnl,
                "commission": commission,
                "exit_reason": "signal",
            }
        )
        flush()
    flush(force=True)
    if url.startswith("sqlite"):
        with db.engine.connect() as c:
            c.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    else:
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.exec_driver_sql("ANALYZE")
    db.dispose()
    return written


class Bot:
    """``tradebot run`` on ``url`` with the web server on a free loopback port."""

    def __init__(self, url: str, folder: Path) -> None:
        self.port = free_port()
        env = {
            **{
                k: v for k, v in os.environ.items() if not k.startswith(("TRADEBOT_", "ALPACA_", "TELEGRAM_"))
            },
            "DATABASE_URL": url,
            "TRADEBOT_SYMBOLS": ",".join(SYMBOLS),
            "TRADEBOT_CONSOLE": "off",
            "TRADEBOT_WEB_PORT": str(self.port),
            "TRADEBOT_WEB_PASSWORD": "bench password",
            "TRADEBOT_WEB_TOKEN": TOKEN,
            "LOG_LEVEL": "WARNING",
        }
        self.log = open(folder / "bot.log", "wb")  # noqa: SIM115  (closed in stop)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "run"], cwd=folder, env=env, stdout=self.log, stderr=self.log
        )

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"the bot exited with {self.proc.returncode}: see {self.log.name}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1).json()["role"] == "active":
                    return
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            time.sleep(0.2)
        raise SystemExit("the bot did not become active within 120 s")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=40)
        self.log.close()


def time_reads(port: int, rounds: int) -> dict[str, list[float]]:
    """Each read once per round, rounds 1.1 s apart (past the memo's second): every answer computed."""
    times: dict[str, list[float]] = {name: [] for name in READS}
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}/api/v1", headers=headers, timeout=30) as client:
        for path in READS.values():  # warm-up: imports, first connections, the bars cache
            client.get(path)
        for _ in range(rounds):
            started_round = time.monotonic()
            for name, path in READS.items():
                started = time.perf_counter()
                response = client.get(path)
                elapsed = (time.perf_counter() - started) * 1000
                if response.status_code != 200:
                    raise SystemExit(f"{path} answered {response.status_code}: {response.text[:200]}")
                times[name].append(elapsed)
            time.sleep(max(0.0, 1.1 - (time.monotonic() - started_round)))
    return times


def measure(url: str, trades: int, rounds: int, folder: Path) -> dict[str, list[float]]:
    started = time.perf_counter()
    written = build_history(url, trades)
    print(
        f"  built in {time.perf_counter() - started:.0f} s: "
        + ", ".join(f"{k} {v:,}" for k, v in written.items() if v)
        if trades
        else "  fresh database"
    )
    bot = Bot(url, folder)
    try:
        started = time.perf_counter()
        bot.wait_ready()
        # The bulk rows bypass the running totals: the start rebuilds them from the books.
        print(f"  tradebot run ready in {time.perf_counter() - started:.1f} s (totals checked at start)")
        return time_reads(bot.port, rounds)
    finally:
        bot.stop()


def main() -> int:
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trades", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--database-url", default="", help="an empty database (default: a SQLite file)")
    parser.add_argument("--no-fresh", action="store_true", help="skip the fresh database's figures")
    args = parser.parse_args()
    results: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        runs = [("fresh", 0)] if not args.no_fresh and args.trades else []
        runs.append((f"{args.trades:,} trades", args.trades))
        for label, trades in runs:
            folder = Path(tmp, label.replace(",", "").replace(" ", "_"))
            folder.mkdir()
            url = f"sqlite:///{folder / 'history.db'}"
            if args.database_url:
                url = args.database_url
                _empty(url)
            print(f"{label} ({url.split(':')[0]}):")
            results[label] = measure(url, trades, args.rounds, folder)
    print(f"\nuncached reads through HTTP, {args.rounds} each, ms (load average {load_average()}):")
    labels = list(results)
    print(f"{'read':>8} " + " ".join(f"{label + ' p50':>20} {label + ' p99':>20}" for label in labels))
    failed = []
    for name in READS:
        cells = []
        for label in labels:
            values = results[label][name]
            cells.append(f"{statistics.median(values):20.1f} {pct(values, 0.99):20.1f}")
        print(f"{name:>8} " + " ".join(cells))
        p99 = pct(results[labels[-1]][name], 0.99)
        target = 20 if name == "pnl" else 50
        if p99 >= target:
            failed.append(f"{name} p99 {p99:.1f} ms >= {target} ms")
    print(
        "targets (each read p99 < 50 ms, /pnl < 20 ms): "
        + ("PASS" if not failed else "FAIL: " + "; ".join(failed))
    )
    return 0 if not failed else 1


def _empty(url: str) -> None:
    """Drop every table of the bench's own Postgres database, so each run starts empty."""
    from sqlalchemy import MetaData, create_engine

    engine = create_engine(url)
    meta = MetaData()
    meta.reflect(engine)
    meta.drop_all(engine)
    engine.dispose()


if __name__ == "__main__":
    sys.exit(main())
