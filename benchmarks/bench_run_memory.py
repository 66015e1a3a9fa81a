"""Resident memory of a real `tradebot run` process: 100 symbols x 1,000 cached bars (target < 250 MB).

Starts the bot on the simulated market (console off, a temporary SQLite file), lets it fill its
history cache and trade for a while, and reads VmRSS from /proc every few seconds. The dashboard
is on, as it is by default in ``tradebot run``, on a free port named explicitly (a taken default
port would turn it off with a warning), and is asked for every API read between samples, so the
memory of a dashboard in use is counted.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

SYMBOLS = [f"S{chr(65 + i // 26)}{chr(65 + i % 26)}" for i in range(90)] + [f"C{i}/USD" for i in range(10)]
SECONDS = 40
TOKEN = "bench-token-0123456789abcdef"
ENDPOINTS = [
    "/status",
    "/overview",
    "/positions",
    "/orders",
    "/trades",
    "/risk",
    "/events",
    "/pnl",
    "/equity",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def read_api(port: int) -> int:
    """Every API read once; how many answered (the dashboard may still be starting)."""
    answered = 0
    for path in ENDPOINTS:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v1{path}", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                response.read()
                answered += 1
        except OSError:
            pass
    return answered


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    # As a user runs it: Python writes the project's .pyc files once and reuses them. With
    # PYTHONDONTWRITEBYTECODE set (it is, on the shared machine) every measured process would
    # compile some 60 of tradebot's modules from source again.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{Path(tmp) / 'bench.db'}",
            "TRADEBOT_SYMBOLS": ",".join(SYMBOLS),
            "TRADEBOT_HISTORY_BARS": "1000",
            "TRADEBOT_CONSOLE": "off",
            "TRADEBOT_WEB_PORT": str(port),
            "TRADEBOT_WEB_TOKEN": TOKEN,
            "MAX_OPEN_TRADES": "50",
            "MAX_PORTFOLIO_RISK_PCT": "20",
            "MAX_POSITION_PCT": "2",
            "LOG_LEVEL": "WARNING",
            "TELEGRAM_BOT_TOKEN": "",
            "ALPACA_API_KEY": "",
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "run"],
            cwd=tmp,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        samples = []
        answered = 0
        try:
            start = time.monotonic()
            while time.monotonic() - start < SECONDS:
                time.sleep(4)
                answered += read_api(port)
                samples.append(rss_mb(proc.pid))
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
        print(
            f"tradebot run, {len(SYMBOLS)} symbols x 1,000 cached bars, {SECONDS} s on the simulated market: "
            f"RSS {samples[0]:.0f} MB at 4 s, peak {max(samples):.0f} MB, last {samples[-1]:.0f} MB (target < 250 MB);"
            f" dashboard on, {answered} API reads answered"
        )
        if not answered:
            raise SystemExit("the dashboard never answered: the figure would be of a bot without it")


if __name__ == "__main__":
    main()
