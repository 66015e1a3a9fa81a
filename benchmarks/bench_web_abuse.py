"""The web server under abuse, whole process (issue 19 item 1): what a hostile client costs.

Starts a real ``tradebot run`` (simulated market, dashboard with a password and a token on a free
loopback port), then, each from a raw socket:

* POSTs 200 MB to ``/api/v1/orders`` with no credentials, with the right token, and to ``/login``
  (before issue 19: answered 422 after growing the process by 800, 390 and 400 MB);
* opens 400 connections that trickle a header byte at a time (before: all stayed open).

Prints, for each, the answer, how much of the upload the server took before answering, the
growth of the process's resident memory (now and peak), and how long the trickling connections
lasted. The load average is printed beside the figures: the machine is shared.
"""

from __future__ import annotations

import os
import select
import socket
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.test_web_abuse import MB, TOKEN, memory_kb, raw_post, start_bot  # noqa: E402


def trickle(port: int, count: int = 400, limit: float = 30.0) -> tuple[int, int, float]:
    """(refused at once, dropped later, seconds until the last one was gone)."""
    socks = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        socks.append(sock)
    started = time.monotonic()
    gone: dict[int, bool] = {}  # fileno -> answered 503 at once
    last = 0.0
    while len(gone) < count and time.monotonic() - started < limit:
        open_ = [s for s in socks if s.fileno() not in gone]
        readable, _, _ = select.select(open_, [], [], 0.2)
        for sock in readable:
            try:
                data = sock.recv(4096)
            except ConnectionResetError:
                data = b""
            gone[sock.fileno()] = data.startswith(b"HTTP/1.1 503")
            last = time.monotonic() - started
        for sock in open_:
            if sock.fileno() not in gone:
                try:
                    sock.send(b"a")
                except OSError:
                    gone[sock.fileno()] = False
                    last = time.monotonic() - started
    for sock in socks:
        sock.close()
    refused = sum(gone.values())
    return refused, len(gone) - refused, last if len(gone) == count else float("inf")


def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench_web_abuse_"))
    process, port = start_bot(workdir)
    try:
        time.sleep(2)  # past start-up's own allocations
        print(f"load average {os.getloadavg()[0]:.2f} at start")
        for label, path, headers in (
            ("no credentials", "/api/v1/orders", ""),
            ("the right token", "/api/v1/orders", f"Authorization: Bearer {TOKEN}\r\n"),
            ("login form", "/login", ""),
        ):
            before = memory_kb(process.pid)
            started = time.monotonic()
            status, sent, _ = raw_post(port, path, 200 * MB, headers)
            seconds = time.monotonic() - started
            after = memory_kb(process.pid)
            print(
                f"200 MB POST {path} with {label}: HTTP {status} after {sent / MB:.1f} MB sent, {seconds:.2f} s; "
                f"RSS {(after['VmRSS'] - before['VmRSS']) / 1024:+.1f} MB, "
                f"peak {(after['VmHWM'] - before['VmHWM']) / 1024:+.1f} MB"
            )
        refused, dropped, last = trickle(port)
        print(
            f"400 trickling connections: {refused} refused at once (503), {dropped} dropped by the header "
            f"deadline; the last gone after {last:.1f} s"
        )
        print(f"load average {os.getloadavg()[0]:.2f} at the end")
    finally:
        process.terminate()
        process.wait(30)


if __name__ == "__main__":
    main()
