"""The console front end, driven as a user would: a real `tradebot run` process fed on stdin."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time


def run_bot(tmp_path, commands: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'bot.db'}",
        "TRADEBOT_SYMBOLS": "AAPL,BTC/USD",
        "TELEGRAM_BOT_TOKEN": "",
        "ALPACA_API_KEY": "",
        "TRADEBOT_WEB_PORT": "off",  # the console is under test, not the web (and no port clash)
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "bot", "run"],
        input=commands,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=environ,
    )


def test_status_pause_resume_and_a_malformed_command(tmp_path):
    result = run_bot(tmp_path, "/status\n/pause\n/status\n/resume\n/status\n/trades many\n/frobnicate\n")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Trading a SIMULATED market" in out
    assert "60x faster than real time" in out
    statuses = [block for block in out.split("Mode: ")[1:]]
    assert len(statuses) == 3
    assert "State: active" in statuses[0]
    assert "State: PAUSED since " in statuses[1]
    assert "State: active" in statuses[2]
    assert "Paused: no new entries" in out
    assert "Resumed: new entries allowed." in out
    assert "Usage: /trades [N]" in out
    assert "Unknown command /frobnicate" in out


def test_paused_state_survives_a_restart(tmp_path):
    first = run_bot(tmp_path, "/pause\n")
    assert first.returncode == 0, first.stderr
    second = run_bot(tmp_path, "/status\n")
    assert "State: PAUSED since " in second.stdout
    # Said at start, in the banner and in an alert (Telegram hears it too): since when, by whom.
    assert re.search(
        r"^Trading is PAUSED since \S+ \S+ UTC \(simulated clock\) by console: ", second.stdout, re.M
    )
    assert "ALERT Trading is still PAUSED since " in second.stdout
    assert re.search(
        r"^State: PAUSED since \S+ \S+ UTC \(simulated clock\) by console: no new entries",
        second.stdout,
        re.M,
    )


def test_end_of_input_exits_cleanly_even_with_no_commands(tmp_path):
    """With the console asked for; unset (auto), an input with no line is no console at all and
    the run trades on (tests/test_run_startup.py)."""
    result = run_bot(tmp_path, "", TRADEBOT_CONSOLE="on")
    assert result.returncode == 0
    assert "Traceback" not in result.stderr


def test_dangerous_commands_need_confirmation(tmp_path):
    result = run_bot(tmp_path, "/buy AAPL 3\n/positions\n")
    assert "Confirm: buy 3 AAPL at market?" in result.stdout
    assert "No open positions." in result.stdout  # nothing happened without /confirm
    token = result.stdout.split("Send /confirm ")[1].split()[0]
    assert len(token) == 8


def test_confirmed_buy_trades_through_the_risk_checks(tmp_path):
    # the token is random, so read it from the reply and answer within the same session
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "run"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env={
            **os.environ,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'bot.db'}",
            "TRADEBOT_SYMBOLS": "AAPL",
            "TELEGRAM_BOT_TOKEN": "",
            "ALPACA_API_KEY": "",
            "TRADEBOT_WEB_PORT": "off",
        },
    )
    assert proc.stdin and proc.stdout
    proc.stdin.write("/buy AAPL 3\n")
    proc.stdin.flush()
    token = None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("Send /confirm "):
            token = line.split()[2]
            break
    assert token, "".join(lines)
    proc.stdin.write(f"/confirm {token}\n/positions\n/buy AAPL 100000\n")
    proc.stdin.close()
    out = proc.stdout.read()
    assert proc.wait(timeout=60) == 0
    assert "Done: Bought 3 AAPL at" in out
    assert "AAPL: 3 @" in out
    # a second entry on the symbol is answered at once: the risk checks would block it
    assert "Not bought: already holding or buying AAPL." in out
    assert "Confirm: buy 100,000 AAPL" not in out


def test_the_console_shows_the_feed_so_a_standby_sees_the_active_instances_alerts(tmp_path):
    """The console reads the transport-neutral event feed (as the web's WebSocket does), not this
    process's notifier: a standby instance's console shows what the trading instance records,
    each alert once."""
    from tests import processes

    url = f"sqlite:///{tmp_path / 'bot.db'}"
    active = processes.start(tmp_path, "active", processes.environment(url), "run")
    standby = None
    try:
        processes.wait_for(tmp_path, "active", "trading lease held by this instance")
        standby = processes.start(
            tmp_path,
            "standby",
            processes.environment(url, TRADEBOT_CONSOLE="on"),
            "run",
            stdin=subprocess.PIPE,
        )
        processes.wait_for(tmp_path, "standby", "standby: the trading lease is")
        # The active one trades; its fills reach the standby's console through the events table.
        deadline = time.monotonic() + 90
        while "ALERT Bought " not in processes.output_of(tmp_path, "standby"):
            assert time.monotonic() < deadline, processes.output_of(tmp_path, "standby")[-2000:]
            time.sleep(0.2)
        seen = processes.output_of(tmp_path, "standby")  # before either stops (it may take over then)
    finally:
        for process in (standby, active):
            if process is not None:
                process.terminate()
        for process in (standby, active):
            if process is not None:
                process.wait(timeout=60)
    shown = re.findall(r"^\d\d:\d\d:\d\d ALERT (.+)$", seen, re.M)
    assert any(line.startswith("Bought ") for line in shown)
    assert len(shown) == len(set(shown)), shown  # each once (fills differ in quantity, price or symbol)
