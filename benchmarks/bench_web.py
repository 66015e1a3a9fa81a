"""The web server's targets, measured on a real `tradebot run` trading 100 simulated symbols.

1. API latency at 50 requests/s (open loop: requests are sent on schedule whether or not earlier
   ones have answered), over /status, /overview, /positions, /orders, /trades, /risk, /events:
   p50, p99, max (target p99 < 50 ms).
2. Event to browser: headless Chromium shows the dashboard; the script pauses and resumes through
   the API and times each `paused`/`resumed` event from the moment the request is sent until the
   page's WebSocket delivered it (an upper bound of "recorded -> on screen"; target < 250 ms).
3. Overview page load on loopback, logged in: navigation start to the positions and cards drawn
   (target < 1 s).
4. Resident memory the web server adds: the same run with TRADEBOT_WEB_PORT=off, then on and under
   the load above; peak VmRSS of each (target < 60 MB more).

Run: python benchmarks/bench_web.py [--seconds 30]. Needs Debian's chromium (apt-get install
chromium) and playwright (the dev extra).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
# 90 stock tickers (SAA, SAB, ...) and 10 crypto pairs (CA/USD, ...): letters only, as the settings require.
SYMBOLS = [f"S{_LETTERS[i // 26]}{_LETTERS[i % 26]}" for i in range(90)] + [
    f"C{_LETTERS[i]}/USD" for i in range(10)
]
TOKEN = "bench-token-0123456789abcdef"
PASSWORD = "bench password"
ENDPOINTS = ["/status", "/overview", "/positions", "/orders", "/trades", "/risk", "/events"]
CHROMIUM = "/usr/bin/chromium"
FAILURES: list[str] = []  # requests that got no answer: counted and shown, never hidden
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Bot:
    """A `tradebot run` on a temporary SQLite file, sampling its RSS every second."""

    def __init__(self, folder: Path, *, web: bool) -> None:
        self.port = free_port()
        env = {
            **{
                k: v for k, v in os.environ.items() if not k.startswith(("TRADEBOT_", "ALPACA_", "TELEGRAM_"))
            },
            "DATABASE_URL": f"sqlite:///{folder / 'bench.db'}",
            "TRADEBOT_SYMBOLS": ",".join(SYMBOLS),
            "TRADEBOT_CONSOLE": "off",
            "TRADEBOT_WEB_PORT": str(self.port) if web else "off",
            "TRADEBOT_WEB_PASSWORD": PASSWORD,
            "TRADEBOT_WEB_TOKEN": TOKEN,
            "MAX_OPEN_TRADES": "50",
            "MAX_PORTFOLIO_RISK_PCT": "20",
            "MAX_POSITION_PCT": "2",
            "LOG_LEVEL": "WARNING",
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "run"],
            cwd=folder,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.samples: list[float] = []
        self._stop = threading.Event()
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self) -> None:
        while not self._stop.wait(1.0):
            try:
                self.samples.append(rss_mb(self.proc.pid))
            except OSError:
                return

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1).json()["role"] == "active":
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise SystemExit("the bot did not become active within 60 s")

    def stop(self) -> float:
        self._stop.set()
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=40)
        return max(self.samples) if self.samples else 0.0


async def api_load(base: str, seconds: float, rate: float = 50.0) -> list[float]:
    latencies: list[float] = []
    headers = {"Authorization": f"Bearer {TOKEN}"}
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    async with httpx.AsyncClient(
        base_url=base + "/api/v1", headers=headers, limits=limits, timeout=10
    ) as client:

        async def one(path: str) -> None:
            started = time.perf_counter()
            try:
                response = await client.get(path)
                response.raise_for_status()
            except httpx.HTTPError as exc:
                FAILURES.append(f"{path}: {type(exc).__name__}: {exc}")
                return
            latencies.append((time.perf_counter() - started) * 1000)

        tasks = []
        start = time.perf_counter()
        for i in range(int(seconds * rate)):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(ENDPOINTS[i % len(ENDPOINTS)])))
        await asyncio.gather(*tasks)
    return latencies


def browser_figures(base: str, rounds: int = 20) -> tuple[list[float], list[float]]:
    from playwright.sync_api import sync_playwright

    loads, events = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        page = browser.new_page()
        page.goto(base + "/login")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_selector("#summary .card")
        for _ in range(10):
            started = time.perf_counter()
            page.goto(base + "/")
            page.wait_for_selector("#positions table, #positions .empty")
            page.wait_for_selector("#summary .card")
            loads.append((time.perf_counter() - started) * 1000)
        page.wait_for_selector("#live.on")
        page.evaluate(
            "() => { window.__arrivals = []; TB.onEvent.push((e) => window.__arrivals.push([e.kind, Date.now()])); }"
        )
        with httpx.Client(base_url=base + "/api/v1", headers={"Authorization": f"Bearer {TOKEN}"}) as client:
            for i in range(rounds):
                kind = "paused" if i % 2 == 0 else "resumed"
                sent = time.time() * 1000
                client.post("/pause" if kind == "paused" else "/resume").raise_for_status()
                page.wait_for_function(
                    "kind => window.__arrivals.some(([k]) => k === kind)", arg=kind, timeout=10_000
                )
                arrived = page.evaluate(
                    "kind => { const i = window.__arrivals.findIndex(([k]) => k === kind);"
                    " const t = window.__arrivals[i][1]; window.__arrivals.splice(i, 1); return t; }",
                    kind,
                )
                events.append(arrived - sent)
                time.sleep(0.2)
        browser.close()
    return loads, events


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    # As a user runs it: Python writes the project's .pyc files once and reuses them. With
    # PYTHONDONTWRITEBYTECODE set (it is, on the shared machine) every measured process would
    # compile some 60 of tradebot's modules from source again.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30, help="length of the 50 requests/s run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        off_dir, on_dir = Path(tmp, "off"), Path(tmp, "on")
        off_dir.mkdir()
        on_dir.mkdir()
        quiet = Bot(off_dir, web=False)
        time.sleep(args.seconds + 20)
        rss_off = quiet.stop()

        bot = Bot(on_dir, web=True)
        bot.wait_ready()
        base = f"http://127.0.0.1:{bot.port}"
        time.sleep(10)  # history cached, first trades placed
        latencies = asyncio.run(api_load(base, args.seconds))
        loads, events = browser_figures(base)
        rss_on = bot.stop()
    print(f"tradebot run, {len(SYMBOLS)} simulated symbols trading (sim clock 60x), 2-core machine:")
    print(
        f"  API at 50 requests/s for {args.seconds:g} s ({len(latencies)} requests): p50 {statistics.median(latencies):.1f} ms,"
        f" p99 {pct(latencies, 0.99):.1f} ms, max {max(latencies):.1f} ms (target p99 < 50 ms);"
        f" {len(FAILURES)} without an answer{': ' + FAILURES[0] if FAILURES else ''}"
    )
    print(
        f"  event to browser ({len(events)} pause/resume events, request sent -> WebSocket delivered):"
        f" median {statistics.median(events):.0f} ms, max {max(events):.0f} ms (target < 250 ms)"
    )
    print(
        f"  overview page load, logged in (10 loads): median {statistics.median(loads):.0f} ms,"
        f" max {max(loads):.0f} ms (target < 1 s)"
    )
    print(
        f"  peak RSS: web off {rss_off:.0f} MB, web on and loaded {rss_on:.0f} MB:"
        f" the web server adds {rss_on - rss_off:.0f} MB (target < 60 MB)"
    )


if __name__ == "__main__":
    main()
