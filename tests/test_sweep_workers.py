"""A sweep's worker processes die with ``tradebot backtest``, however it ends (issue 19 §3): SIGTERM,
SIGKILL, or Ctrl-C at a terminal (SIGINT to the whole process group). Before, they went on
computing their chunk of the sweep at full CPU with no parent, for minutes.

Each test starts a real sweep in a real process (a grid large enough that each worker's chunk
takes many seconds), waits until its workers are computing, signals it, and checks that no
process it started is left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

psutil = pytest.importorskip("psutil")

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="process groups and prctl: Linux")

ENV = {k: v for k, v in os.environ.items() if not k.startswith(("ALPACA_", "TRADEBOT_", "POLYGON_"))}
# 1,000 x 91 = 91,000 backtests of 7,983 bars on 2 processes: chunks of 11,375, each many seconds.
SWEEP = [
    "backtest", "--strategy", "supertrend", "--sample", "msft-daily", "--workers", "2",
    "--param", "period=1..1000", "--param", "multiplier=1..10:0.1", "--no-progress",
]  # fmt: skip
GONE_WITHIN = 10.0  # seconds for the kernel (or the watchdog, every 0.5 s) to end every worker


def start(tmp_path, new_session: bool = False) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bot", *SWEEP],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=ENV,
        start_new_session=new_session,
    )


def computing_workers(process: subprocess.Popen[str], timeout: float = 120.0) -> list:
    """The sweep's worker processes, once both have used CPU on the sweep."""
    parent = psutil.Process(process.pid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        workers = [
            child for child in parent.children(recursive=True) if "spawn_main" in " ".join(child.cmdline())
        ]
        if len(workers) == 2 and all(sum(w.cpu_times()[:2]) > 1.0 for w in workers):
            return parent.children(recursive=True)  # the workers, and the pool's helper processes
        time.sleep(0.1)
    raise AssertionError("the sweep's workers never started computing")


def alive(processes: list) -> list:
    left = []
    for p in processes:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                left.append(p)
        except psutil.NoSuchProcess:
            pass
    return left


def wait_gone(processes: list) -> list:
    deadline = time.monotonic() + GONE_WITHIN
    while alive(processes) and time.monotonic() < deadline:
        time.sleep(0.1)
    return alive(processes)


def clean_up(process: subprocess.Popen[str], children: list) -> None:
    """Whatever the outcome: no process left (orphans hold the command's pipes open)."""
    for p in alive(children):
        p.kill()
    process.kill()
    process.communicate(timeout=30)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_the_workers_die_with_a_killed_parent(tmp_path, sig):
    process = start(tmp_path)
    children: list = []
    try:
        children = computing_workers(process)
        process.send_signal(sig)
        process.wait(timeout=30)
        left = wait_gone(children)
        assert not left, [(p.pid, p.cmdline()) for p in left]
    finally:
        clean_up(process, children)


def test_ctrl_c_stops_the_sweep_and_its_workers_with_one_line(tmp_path):
    """Ctrl-C at a terminal: SIGINT to the whole process group. The command stops (not after the
    chunks already handed out), says one line, and leaves no process."""
    process = start(tmp_path, new_session=True)
    children: list = []
    try:
        children = computing_workers(process)
        os.killpg(process.pid, signal.SIGINT)
        _out, err = process.communicate(timeout=30)
        assert process.returncode == 130, err
        assert err.splitlines()[-1] == "tradebot backtest: error: interrupted"
        assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
        left = wait_gone(children)
        assert not left, [(p.pid, p.cmdline()) for p in left]
    finally:
        clean_up(process, children)
