"""`tradebot run` at a real (pseudo-)terminal with the keyboard left attached, as a person runs it.

Ctrl-C and SIGTERM end it promptly even though the console is waiting for a line (issue 10,
point 1: a worker thread blocked in the terminal read used to hold the process at exit until
Enter was pressed). The screen shows replies and each alert once, not the log (point 2).
"""

from __future__ import annotations

import re
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.terminal import CTRL_C, CTRL_D, Terminal, environment

# Bounds for a hang, not performance figures: the old behaviour never exited at all.
EXIT_WITHIN = 15


@pytest.fixture
def terminal(tmp_path):
    opened: list[Terminal] = []

    def start(**env: str) -> Terminal:
        term = Terminal(tmp_path, environment(tmp_path, **env), "run")
        opened.append(term)
        return term

    yield start
    for term in opened:
        term.close()


def lease_released(db: Path) -> bool:
    with sqlite3.connect(db) as c:
        renewed_at, expires_at = c.execute("SELECT renewed_at, expires_at FROM leases").fetchone()
    return expires_at <= renewed_at


def test_ctrl_c_at_the_terminal_ends_the_run(terminal, tmp_path):
    term = terminal()
    term.wait_for("ALERT tradebot started")
    term.wait_for("ALERT Bought")  # trading, with the console waiting for a line
    term.type(CTRL_C)
    status = term.wait_exit(EXIT_WITHIN)
    assert status == 130, term.screen[-3000:]  # 128 + SIGINT, as documented
    screen = term.screen
    assert "Stopping: no new orders; finishing the cycle in progress." in screen
    assert "ALERT tradebot stopped." in screen
    assert "Traceback" not in screen and "KeyboardInterrupt" not in screen
    assert lease_released(tmp_path / "tradebot.db")


def test_sigterm_at_the_terminal_ends_the_run(terminal, tmp_path):
    term = terminal()
    term.wait_for("ALERT Bought")
    term.process.send_signal(signal.SIGTERM)
    status = term.wait_exit(EXIT_WITHIN)
    assert status == 0, term.screen[-3000:]
    assert "ALERT tradebot stopped." in term.screen
    assert lease_released(tmp_path / "tradebot.db")


def test_sigint_while_standard_input_is_an_open_pipe(tmp_path):
    """Not only terminals: any standard input left open (a supervisor's pipe) blocked the exit."""
    env = environment(tmp_path)
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "run"],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout
        for line in process.stdout:
            if "ALERT tradebot started" in line:
                break
        process.send_signal(signal.SIGINT)
        status = process.wait(timeout=EXIT_WITHIN)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
    assert status == 130


def test_ctrl_d_still_ends_the_session(terminal):
    term = terminal()
    term.wait_for("Type /help")
    term.type(CTRL_D)
    assert term.wait_exit(EXIT_WITHIN) == 0, term.screen[-3000:]


ALERT_LINE = re.compile(r"^\d\d:\d\d:\d\d ALERT (.+?)(?: id tb-\S+)?$", re.MULTILINE)


def test_the_screen_shows_replies_and_each_alert_once_and_the_log_goes_to_a_file(terminal, tmp_path):
    term = terminal()
    term.wait_for("ALERT Bought", count=2)
    term.type("/status\n")
    term.wait_for("Open positions:")
    term.type(CTRL_C)
    assert term.wait_exit(EXIT_WITHIN) == 130
    screen = term.screen

    alerts = ALERT_LINE.findall(screen)
    assert len(alerts) >= 4  # started, an order placed and filled twice, stopped
    for message in alerts:
        assert screen.count(message) == 1, f"shown more than once: {message!r}\n{screen}"
    # No log lines: no cycle line every bar, no scheduler chatter, no INFO records.
    assert " tick: " not in screen
    assert "Adding job" not in screen and "Scheduler started" not in screen
    assert " INFO " not in screen
    # The banner names the full log, and everything is in it.
    match = re.search(r"^Full log: (\S+) ", screen, re.MULTILINE)
    assert match, screen
    log_file = Path(match.group(1))
    assert log_file == tmp_path / "tradebot.log"
    log = log_file.read_text()
    assert "INFO bot.engine: tick:" in log
    for message in alerts:
        assert message in log


def test_an_explicit_log_level_wins_at_the_terminal(terminal, tmp_path):
    term = terminal(LOG_LEVEL="INFO")
    term.wait_for("INFO bot.engine: tick:")
    term.wait_for("ALERT Bought")
    term.type(CTRL_C)
    assert term.wait_exit(EXIT_WITHIN) == 130
    screen = term.screen
    assert "Full log:" not in screen and not (tmp_path / "tradebot.log").exists()
    for message in ALERT_LINE.findall(screen):  # the log is shown, yet each alert still once
        assert screen.count(message) == 1, message


def test_without_a_terminal_the_full_log_goes_to_standard_error(tmp_path):
    env = environment(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "bot", "run"],
        cwd=tmp_path,
        env=env,
        input="/status\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "ALERT tradebot started" in result.stdout
    assert re.search(r"INFO bot\.service[.\w]*: started: tradebot started", result.stderr), result.stderr
    assert "INFO bot.runner: trading lease held" in result.stderr
    assert "Full log:" not in result.stdout and not (tmp_path / "tradebot.log").exists()


def test_json_logs_at_the_terminal_stay_full(terminal, tmp_path):
    """LOG_FORMAT=json is for a log collector: the screen gets today's full logs, as JSON."""
    term = terminal(LOG_FORMAT="json")
    term.wait_for('"message": "tick: ')
    term.type(CTRL_C)
    assert term.wait_exit(EXIT_WITHIN) == 130
    assert "Full log:" not in term.screen and not (tmp_path / "tradebot.log").exists()
    assert '"level": "info"' in term.screen
