"""Real ``tradebot`` processes for the lease and shutdown tests, optionally with a fault injected.

Run as a script (``python tests/processes.py run``) it is ``tradebot`` itself, except that the
simulated exchange's ``submit`` misbehaves as ``TRADEBOT_FAULT`` says, once, on the first order:

- ``kill-before-submit``: SIGKILL after the service's write-ahead, before the exchange sees the order;
- ``kill-after-submit``: SIGKILL after the exchange accepted and filled it, before the service
  recorded that (the worst moment: the money moved, the books do not know yet);
- ``term-during-submit``: SIGTERM to itself, then a second's delay, then the order goes through
  (a shutdown request arriving mid-order).

``TEST_SQLITE_BUSY_TIMEOUT`` (seconds) shortens how long a write waits for another process's lock
(``storage.db.SQLITE_BUSY_TIMEOUT``), so a test that holds the lock need not hold it for 30 s.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ISOLATED_PREFIXES = ("TRADEBOT_", "ALPACA_", "TELEGRAM_", "POLYGON_", "DATABASE_URL", "LOG_", "PORT")


def environment(database_url: str, **overrides: str) -> dict[str, str]:
    """The parent's environment without any tradebot setting (never real keys), plus these."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(ISOLATED_PREFIXES)}
    env.update(
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
        DATABASE_URL=database_url,
        TRADEBOT_CONSOLE="off",
        TRADEBOT_SIM_SPEED="600",  # a 1m bar every 0.1 s: orders within seconds
        TRADEBOT_LEASE_SECONDS="4",
        # No web server unless a test is about the web (it passes TRADEBOT_WEB_PORT or PORT and
        # "auto"): tests running side by side would fight over port 8000, and each would start
        # uvicorn for nothing.
        TRADEBOT_WEB_PORT="off",
        LOG_LEVEL="INFO",
    )
    env.update(overrides)
    return env


def start(
    workdir: Path, name: str, env: dict[str, str], *args: str, stdin: int = subprocess.DEVNULL
) -> subprocess.Popen[bytes]:
    """``tradebot ARGS`` (through this file, so TRADEBOT_FAULT works), output in workdir/name.{out,err}.
    ``stdin=subprocess.PIPE`` to type into its console (with ``TRADEBOT_CONSOLE=on``)."""
    out = open(workdir / f"{name}.out", "wb")  # noqa: SIM115  (the child owns it)
    err = open(workdir / f"{name}.err", "wb")  # noqa: SIM115
    return subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), *args],
        cwd=workdir,
        env=env,
        stdin=stdin,
        stdout=out,
        stderr=err,
    )


def run(workdir: Path, name: str, env: dict[str, str], *args: str, timeout: float = 60) -> int:
    process = start(workdir, name, env, *args)
    return process.wait(timeout=timeout)


def log_of(workdir: Path, name: str) -> str:
    path = workdir / f"{name}.err"
    return path.read_text(errors="replace") if path.exists() else ""


def output_of(workdir: Path, name: str) -> str:
    path = workdir / f"{name}.out"
    return path.read_text(errors="replace") if path.exists() else ""


def wait_for(workdir: Path, name: str, text: str, timeout: float = 30, count: int = 1) -> str:
    """Wait until ``text`` appears ``count`` times in the process's log; return the log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = log_of(workdir, name)
        if log.count(text) >= count:
            return log
        time.sleep(0.1)
    raise AssertionError(
        f"{name}: {text!r} not logged {count}x within {timeout}s:\n{log_of(workdir, name)[-3000:]}"
    )


def _inject(fault: str) -> None:
    from bot.brokers import sim

    original = sim.SimBroker.submit
    fired = []

    def submit(self, intent):  # type: ignore[no-untyped-def]
        if fired:
            return original(self, intent)
        fired.append(intent.client_order_id)
        if fault == "kill-before-submit":
            os.kill(os.getpid(), signal.SIGKILL)
        if fault == "term-during-submit":
            sys.stderr.write(f"FAULT: SIGTERM while submitting {intent.client_order_id}\n")
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1.0)
        order = original(self, intent)
        if fault == "kill-after-submit":
            sys.stderr.write(f"FAULT: SIGKILL after submitting {intent.client_order_id}\n")
            sys.stderr.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        return order

    sim.SimBroker.submit = submit


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    if os.environ.get("TEST_SQLITE_BUSY_TIMEOUT"):
        import storage.db

        storage.db.SQLITE_BUSY_TIMEOUT = float(os.environ["TEST_SQLITE_BUSY_TIMEOUT"])
    if os.environ.get("TRADEBOT_FAULT"):
        _inject(os.environ["TRADEBOT_FAULT"])
    from bot.cli import main

    sys.exit(main(sys.argv[1:]))
