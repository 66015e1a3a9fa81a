"""`tradebot run`'s first seconds as a platform or a script sees them (issue 18, point 3).

- With no standard input (``< /dev/null``, a closed descriptor: a container, a service manager, a
  platform without a terminal) and TRADEBOT_CONSOLE unset, the run used to exit at once, silently,
  with status 0. It trades on without a console and says so once.
- Commands piped in were handled before start-up finished, so a fresh run that was told
  ``/pause`` announced "Trading is still PAUSED" as if the pause had outlived a restart. Commands
  now wait for start-up.

Real processes on a temporary SQLite file, the simulated market at 600x.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bot.console import NO_INPUT
from tests import processes


def environment(tmp_path: Path, **overrides: str) -> dict[str, str]:
    env = processes.environment(f"sqlite:///{tmp_path / 'tradebot.db'}", **overrides)
    if "TRADEBOT_CONSOLE" not in overrides:
        del env["TRADEBOT_CONSOLE"]  # unset: auto, as a fresh .env leaves it
    return env


def wait_in(path: Path, text: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = path.read_text(errors="replace") if path.exists() else ""
        if text in seen:
            return seen
        time.sleep(0.1)
    raise AssertionError(f"{text!r} not shown within {timeout} s:\n{seen[-3000:]}")


def trades_on(tmp_path: Path, **popen: object) -> str:
    out, err = tmp_path / "run.out", tmp_path / "run.err"
    with out.open("wb") as sink, err.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot", "run"],
            cwd=tmp_path,
            env=environment(tmp_path),
            stdout=sink,
            stderr=log,
            **popen,  # type: ignore[call-overload]
        )
    try:
        wait_in(out, NO_INPUT)
        wait_in(out, "ALERT Bought")  # still trading after the end of (no) input
        assert process.poll() is None, out.read_text()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    shown = out.read_text()
    assert shown.count(NO_INPUT) == 1, shown  # said once
    assert "Type /help" not in shown
    assert "Traceback" not in err.read_text()
    return shown


def test_with_standard_input_at_dev_null_the_run_trades_on_without_a_console(tmp_path):
    trades_on(tmp_path, stdin=subprocess.DEVNULL)


def test_with_standard_input_closed_the_run_trades_on_without_a_console(tmp_path):
    trades_on(tmp_path, stdin=subprocess.DEVNULL, preexec_fn=lambda: os.close(0))


def test_an_explicit_console_still_ends_at_the_end_of_input(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "bot", "run"],
        cwd=tmp_path,
        env=environment(tmp_path, TRADEBOT_CONSOLE="on"),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert NO_INPUT not in result.stdout


def test_piped_commands_wait_for_start_up(tmp_path):
    """A fresh database told /pause: the pause is this run's own, not one that outlived a restart."""
    result = subprocess.run(
        [sys.executable, "-m", "bot", "run"],
        cwd=tmp_path,
        env=environment(tmp_path),
        input="/pause\n/status\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Paused: no new entries." in out and "State: PAUSED since " in out, out
    assert "still PAUSED" not in out, out
    assert out.index("ALERT tradebot started") < out.index("ALERT Trading paused by console"), out
