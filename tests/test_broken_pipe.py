"""Every command ends quietly when the reader of its output goes away (`tradebot config | head -2`).

Deterministic: the pipe's reading end is closed before the command starts, so its very first
write fails, whatever the buffering. A new sub-command fails ``test_every_command_is_covered``
until it has a case here.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import EXIT_BROKEN_PIPE, build_parser
from tests import processes

CASES = {
    "help": (["--help"], ""),
    "version": (["--version"], ""),
    "run": (["run"], "/help\n/status\n/positions\n"),
    "tick": (["tick"], ""),
    "strategies": (["strategies"], ""),
    "config": (["config"], ""),
    "config --example": (["config", "--example"], ""),
    "db current": (["db", "current"], ""),
    "db upgrade": (["db", "upgrade"], ""),
    "db check": (["db", "check"], ""),
    "doctor": (["doctor"], ""),
    "sim reset": (["sim", "reset", "--yes"], ""),
    "data list": (["data", "list"], ""),
    "backtest": (
        [
            "backtest",
            "--strategy",
            "supertrend",
            "--symbol",
            "AAPL",
            "--start",
            "2024-01-02",
            "--end",
            "2024-01-04",
        ],
        "",
    ),
}


def run_into_a_closed_pipe(tmp_path: Path, args: list[str], stdin: str) -> subprocess.CompletedProcess[str]:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first byte
    try:
        return subprocess.run(
            [sys.executable, "-m", "bot", *args],
            cwd=tmp_path,
            env=processes.environment(f"sqlite:///{tmp_path / 'tradebot.db'}", TRADEBOT_CONSOLE="auto"),
            input=stdin,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(write_end)


@pytest.mark.parametrize("name", list(CASES))
def test_a_closed_output_pipe_ends_the_command_without_a_traceback(tmp_path, name):
    args, stdin = CASES[name]
    result = run_into_a_closed_pipe(tmp_path, args, stdin)
    assert "Traceback" not in result.stderr, result.stderr
    assert "Exception ignored" not in result.stderr, result.stderr
    assert "BrokenPipeError" not in result.stderr, result.stderr
    # Quiet, with the status a shell reports for a program stopped by SIGPIPE (`seq 10000 | head -1`),
    # or 0 where the output was dropped after the work was done (argparse's --help, the run).
    assert result.returncode in (0, EXIT_BROKEN_PIPE), result.stderr


def test_the_run_stops_cleanly_when_its_output_goes_away(tmp_path):
    """Nobody reads the replies: the run stops as on SIGTERM (cycle finished, lease released),
    though its standard input stays open."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "run"],
        cwd=tmp_path,
        env=processes.environment(f"sqlite:///{tmp_path / 'tradebot.db'}", TRADEBOT_CONSOLE="auto"),
        stdin=subprocess.PIPE,  # left open: only the closed output can end this run
        stdout=write_end,
        stderr=(tmp_path / "err").open("w"),
    )
    os.close(write_end)
    try:
        status = process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
        assert process.stdin
        process.stdin.close()
    err = (tmp_path / "err").read_text()
    assert status == 0, err
    assert "console output closed" in err and "Traceback" not in err
    assert "shutting down" in err
    with sqlite3.connect(tmp_path / "tradebot.db") as c:
        lease = c.execute("SELECT renewed_at, expires_at FROM leases").fetchone()
    # The closed output is noticed at the banner: before the lease is taken (nothing to release),
    # or, if the lease was quicker, it is released on the way out.
    if lease is not None:
        renewed_at, expires_at = lease
        assert expires_at <= renewed_at


def test_every_command_is_covered():
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "==SUPPRESS==" and a.choices)  # the sub-commands
    covered = {name.split()[0] for name in CASES}
    assert set(commands.choices) <= covered, set(commands.choices) - covered
