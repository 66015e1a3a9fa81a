"""The trading cycle while a research sweep runs from the dashboard (issue 20, section 5).

A real `tradebot run` (100 simulated symbols, a cycle every second, dashboard on) trades; its
cycle times are read as the page reads them, from the `cycle` messages of the WebSocket
(finished - started, on a clock running at real speed). A quiet stretch, then a sweep over a
1,000,000-bar CSV file started through the API as the research page starts it
(`POST /api/v1/research/jobs`), the cycles counted while the job runs, then quiet again (the
quiet figure is both quiet stretches together: on a shared machine the load moves meanwhile).
Printed: the median and 90th percentile cycle of each stretch, the ratio (target: the sweep's
median no more than 1.5x the quiet one), the sweep's length, and the load average. Run once per
research worker count asked.

Run: python benchmarks/bench_research.py [--workers 1 2] [--combinations 400] [--quiet-seconds 30]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import httpx
import numpy as np

_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
SYMBOLS = [f"S{_LETTERS[i // 26]}{_LETTERS[i % 26]}" for i in range(90)] + [
    f"C{_LETTERS[i]}/USD" for i in range(10)
]
TOKEN = "bench-token-0123456789abcdef"
BARS = 1_000_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_csv(path: Path, count: int) -> None:
    """``count`` one-minute bars, a random walk, as `tradebot backtest --csv` reads them."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    rng = np.random.default_rng(20)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.001, count)))
    open_ = np.r_[close[0], close[:-1]]
    table = pa.table(
        {
            "timestamp": 1_600_000_000 + np.arange(count, dtype=np.int64) * 60,
            "open": open_,
            "high": np.maximum(open_, close) * 1.001,
            "low": np.minimum(open_, close) * 0.999,
            "close": close,
            "volume": np.full(count, 100.0),
        }
    )
    pacsv.write_csv(table, path)


class Cycles:
    """Collects cycle durations (seconds) from the bot's WebSocket, each with when it arrived."""

    def __init__(self, url: str) -> None:
        self.seen: list[tuple[float, float]] = []
        self.drops: list[str] = []
        self.url = url
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from websockets.exceptions import ConnectionClosed
        from websockets.sync.client import connect

        while not self._stop.is_set():  # as the page does: reconnect when the connection drops
            try:
                self._listen(connect)
            except (ConnectionClosed, OSError) as exc:
                self.drops.append(f"{time.monotonic():.1f}: {exc}")
                time.sleep(0.5)

    def _listen(self, connect) -> None:
        with connect(self.url, additional_headers={"Authorization": f"Bearer {TOKEN}"}) as ws:
            while not self._stop.is_set():
                try:
                    message = json.loads(ws.recv(1))
                except TimeoutError:
                    continue
                if message["type"] == "cycle":
                    c = message["cycle"]
                    took = (
                        datetime.fromisoformat(c["finished"]) - datetime.fromisoformat(c["started"])
                    ).total_seconds()
                    self.seen.append((time.monotonic(), took))

    def between(self, start: float, end: float) -> list[float]:
        return [took for at, took in self.seen if start <= at <= end]

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def run(folder: Path, workers: int, combinations: int, quiet_seconds: float) -> dict:
    port = free_port()
    csv_dir = folder / "csv"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("TRADEBOT_", "ALPACA_", "TELEGRAM_"))},
        "DATABASE_URL": f"sqlite:///{folder / f'bench-{workers}.db'}",
        "TRADEBOT_SYMBOLS": ",".join(SYMBOLS),
        "TRADEBOT_CONSOLE": "off",
        "TRADEBOT_WEB_PORT": str(port),
        "TRADEBOT_WEB_TOKEN": TOKEN,
        "TRADEBOT_INTERVAL_SECONDS": "1",
        "TRADEBOT_SIM_SPEED": "1",  # cycle times on the real clock
        "TRADEBOT_RESEARCH_CSV_DIR": str(csv_dir),
        "TRADEBOT_RESEARCH_DIR": str(folder / f"research-{workers}"),
        "TRADEBOT_RESEARCH_WORKERS": str(workers),
        "TRADEBOT_RESEARCH_MEMORY_MB": "2048",
        "MAX_OPEN_TRADES": "50",
        "MAX_PORTFOLIO_RISK_PCT": "20",
        "MAX_POSITION_PCT": "2",
        "LOG_LEVEL": "WARNING",
    }
    log = (folder / f"bot-{workers}.log").open("w")
    bot = subprocess.Popen([sys.executable, "-m", "bot", "run"], cwd=folder, env=env, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(base + "/healthz", timeout=1).json()["role"] == "active":
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the bot did not become active within 60 s")
            time.sleep(0.1)
        cycles = Cycles(base.replace("http", "ws") + "/api/v1/ws")
        time.sleep(5)  # the first cycles fetch each symbol's history: not the steady state
        quiet_start = time.monotonic()
        time.sleep(quiet_seconds)
        quiet_end = time.monotonic()
        periods = max(1, combinations // 4)
        body = {
            "strategy": "supertrend",
            "data": "csv",
            "file": "bars.csv",
            "params": {"period": f"5..{4 + periods}", "multiplier": "1.5,2,2.5,3"},
        }
        with httpx.Client(
            base_url=base + "/api/v1", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
        ) as api:
            started = api.post("/research/jobs", json=body)
            started.raise_for_status()
            job = started.json()
            sweep_start = time.monotonic()
            while True:
                state = api.get(f"/research/jobs/{job['id']}").json()["job"]
                if state["state"] != "running":
                    break
                time.sleep(0.5)
            sweep_end = time.monotonic()
        time.sleep(quiet_seconds)  # quiet again: the machine's own load moves meanwhile
        after_end = time.monotonic()
        cycles.stop()
        if state["state"] != "done":
            raise SystemExit(f"the sweep ended {state['state']}: {state['error']}")
        quiet = cycles.between(quiet_start, quiet_end) + cycles.between(sweep_end + 1, after_end)
        busy = cycles.between(sweep_start, sweep_end)
        if cycles.drops:
            print(f"  (the live feed dropped and reconnected {len(cycles.drops)} times)")
        return {
            "workers": workers,
            "combinations": state["total"],
            "sweep_seconds": sweep_end - sweep_start,
            "quiet": quiet,
            "busy": busy,
        }
    finally:
        bot.send_signal(signal.SIGTERM)
        bot.wait(40)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)  # as a user runs it: .pyc files written once
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[1, 2], help="TRADEBOT_RESEARCH_WORKERS to try"
    )
    parser.add_argument("--combinations", type=int, default=400, help="sweep size (a multiple of 4)")
    parser.add_argument("--quiet-seconds", type=float, default=30, help="length of the quiet stretch")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "csv").mkdir()
        write_csv(folder / "csv" / "bars.csv", BARS)
        for workers in args.workers:
            load_before = os.getloadavg()
            found = run(folder, workers, args.combinations, args.quiet_seconds)
            load_after = os.getloadavg()
            quiet, busy = found["quiet"], found["busy"]
            if not quiet or not busy:
                raise SystemExit(
                    f"too few cycles to compare: {len(quiet)} quiet, {len(busy)} during the sweep"
                )
            q_med, b_med = statistics.median(quiet) * 1000, statistics.median(busy) * 1000
            q_p90, b_p90 = pct(quiet, 0.9) * 1000, pct(busy, 0.9) * 1000
            ratio = b_med / q_med
            print(
                f"{found['combinations']}-combination sweep over {BARS:,} bars from the page, "
                f"{workers} research process{'es' if workers > 1 else ''}: {found['sweep_seconds']:.1f} s"
            )
            print(f"  quiet cycle:        median {q_med:.1f} ms, p90 {q_p90:.1f} ms over {len(quiet)} cycles")
            print(f"  during the sweep:   median {b_med:.1f} ms, p90 {b_p90:.1f} ms over {len(busy)} cycles")
            print(
                f"  ratio of medians {ratio:.2f}x (target <= 1.5x), of p90 {b_p90 / q_p90:.2f}x; "
                f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after "
                f"({os.cpu_count()} cores) -> {'OK' if ratio <= 1.5 else 'OVER TARGET'}"
            )


if __name__ == "__main__":
    main()
