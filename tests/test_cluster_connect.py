"""``--cluster`` and ``TRADEBOT_DASK_SCHEDULER`` from the outside (issue 19 §3): a bad address is
refused in one line before any connection (by the command, ``tradebot config`` and ``doctor``), and
a port that accepts and never answers, or answers something else, ends the command with one line
within the documented bound (``CONNECT_TIMEOUT``, 15 s), never a traceback from
``Client.__del__``. Each runs a real ``tradebot`` process against a real socket on 127.0.0.1."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

pytest.importorskip("distributed")  # the dev extra installs it

ENV = {k: v for k, v in os.environ.items() if not k.startswith(("ALPACA_", "TRADEBOT_", "POLYGON_"))}
SWEEP = ["backtest", "--strategy", "supertrend", "--sample", "msft-daily", "--param", "period=7..9"]
# The command must end well within this: the bound is 15 s; the rest is slack for a loaded machine.
BOUND_WITH_SLACK = 60


def tradebot(*args: str, cwd, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**ENV, **env},
        timeout=BOUND_WITH_SLACK,
    )


def serve(answer: bytes | None) -> Iterator[str]:
    """A TCP server on 127.0.0.1 that accepts every connection and writes ``answer`` (``None``:
    never writes anything), holding the connection open."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(conn)
            if answer is not None:
                conn.sendall(answer)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"tcp://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        listener.close()


@pytest.fixture
def silent_port() -> Iterator[str]:
    yield from serve(None)


@pytest.fixture
def http_port() -> Iterator[str]:
    """What a proxy or a web server says to Dask's handshake."""
    yield from serve(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n" * 4)


@pytest.mark.parametrize(
    "address",
    ["garbage", "http://127.0.0.1:8786", "nan", "tcp://127.0.0.1:0", "tcp://127.0.0.1:8786/x", "tcp://:8786"],
)
def test_a_bad_cluster_option_is_one_line_before_any_connection(tmp_path, address):
    run = tradebot(*SWEEP, "--cluster", address, cwd=tmp_path)
    assert run.returncode == 2, run.stderr
    assert run.stderr.splitlines() == [
        f"tradebot backtest: error: --cluster {address!r} is invalid: allowed empty (local processes) or a "
        "Dask scheduler's address tcp://HOST:PORT or HOST:PORT (tcp://10.0.0.5:8786)"
        + (
            ": http:// is the scheduler's dashboard (port 8787); the scheduler itself listens on tcp://, "
            "port 8786 by default"
            if address.startswith("http")
            else "; the port is a number from 1 to 65535"
            if address.endswith(":0")
            else ""
        )
    ]
    assert run.stdout == ""


def test_a_bad_scheduler_variable_is_refused_by_the_backtest_config_and_doctor(tmp_path):
    line = (
        "TRADEBOT_DASK_SCHEDULER='nan' is invalid: allowed empty (local processes) or a Dask scheduler's "
        "address tcp://HOST:PORT or HOST:PORT (tcp://10.0.0.5:8786); set in the environment"
    )
    backtest = tradebot(*SWEEP, cwd=tmp_path, TRADEBOT_DASK_SCHEDULER="nan")
    assert backtest.returncode == 2
    assert backtest.stderr.splitlines() == [f"tradebot backtest: error: configuration: {line}"]
    config = tradebot("config", cwd=tmp_path, TRADEBOT_DASK_SCHEDULER="nan")
    assert config.returncode == 2
    assert config.stderr.splitlines() == [f"tradebot: error: {line}"]
    doctor = tradebot("doctor", cwd=tmp_path, TRADEBOT_DASK_SCHEDULER="nan")
    assert doctor.returncode == 2
    assert doctor.stdout.splitlines() == [f"FAIL  configuration {line}"]


def test_a_port_that_accepts_and_never_answers_ends_the_command_in_one_line(tmp_path, silent_port):
    """It hung past 90 s: Dask's handshake has no time limit. ``subprocess.run`` raises after
    ``BOUND_WITH_SLACK`` seconds if it still hangs."""
    run = tradebot(*SWEEP, cwd=tmp_path, TRADEBOT_DASK_SCHEDULER=silent_port)
    assert run.returncode == 1, run.stderr
    assert run.stderr.splitlines() == [
        f"tradebot backtest: error: cluster: the Dask scheduler at {silent_port} did not answer within 15 s "
        "(is a scheduler listening there, or another program?)"
    ]


def test_a_port_that_answers_something_else_is_one_line_at_once(tmp_path, http_port):
    """What an address routed to some other program does (seen on a network whose proxy answered:
    a numpy MemoryError traceback, then one from ``Client.__del__``)."""
    run = tradebot(*SWEEP, "--cluster", http_port, cwd=tmp_path)
    assert run.returncode == 1, run.stderr
    lines = run.stderr.splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith(f"tradebot backtest: error: cluster: {http_port} answered, but not as a Dask")


def test_doctor_reports_a_scheduler_that_answers_something_else(tmp_path, http_port):
    run = tradebot("doctor", cwd=tmp_path, TRADEBOT_DASK_SCHEDULER=http_port, TRADEBOT_WEB_PORT="off")
    assert run.returncode == 1
    failed = [line for line in run.stdout.splitlines() if line.startswith("FAIL  research")]
    assert len(failed) == 1, run.stdout
    assert f"TRADEBOT_DASK_SCHEDULER='{http_port}' (from the environment): {http_port} answered" in failed[0]
    assert "Traceback" not in run.stdout + run.stderr
