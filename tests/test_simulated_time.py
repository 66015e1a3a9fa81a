"""Simulated time is never confusing (issue 10, point 8).

After an accelerated run the simulated account's clock is ahead of the wall clock: every time
it shows is labelled as simulated, the banner says how far ahead it is and names
`tradebot sim reset`, which starts a fresh simulated account after a confirmation.
"""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests import processes
from tests.terminal import Terminal, environment


def tradebot(tmp_path: Path, *args: str, stdin: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=tmp_path,
        env=environment(tmp_path, **env),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def db(tmp_path: Path) -> sqlite3.Connection:
    return sqlite3.connect(tmp_path / "tradebot.db")


def count(tmp_path: Path, table: str) -> int:
    with db(tmp_path) as c:
        return c.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def trade_until_a_trade_closes(tmp_path: Path) -> str:
    """An accelerated `tradebot run` (600x) until a position closes; then /trades and /status."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "run"],
        cwd=tmp_path,
        env=environment(tmp_path),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdin and process.stdout
    seen = []
    try:
        for line in process.stdout:
            seen.append(line)
            if "ALERT Sold" in line:
                break
        process.stdin.write("/trades\n/status\n")
        process.stdin.close()
        seen.append(process.stdout.read())
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
    return "".join(seen)


def test_simulated_times_are_labelled_and_the_banner_says_how_far_ahead(tmp_path):
    screen = trade_until_a_trade_closes(tmp_path)
    assert re.search(
        r"^Last trade \(times on the simulated clock, UTC\):$|^Last \d+ trades \(times on the simulated",
        screen,
        re.M,
    ), screen
    assert re.search(r"^Last cycle: \S+ \S+ UTC \(simulated clock\)$", screen, re.M), screen
    assert re.search(r"^Clock: \S+ \S+ UTC \(simulated clock, 600x real time", screen, re.M), screen

    # The run left the account's clock ahead of real time; move it 3 hours ahead to be sure.
    ahead = datetime.now(UTC) + timedelta(hours=3, minutes=5)
    with db(tmp_path) as c:
        c.execute("UPDATE settings SET value = ? WHERE key = 'last_tick'", (f'"{ahead.isoformat()}"',))
    tick = tradebot(tmp_path, "tick")
    assert tick.returncode == 0, tick.stderr
    assert re.search(
        r"The simulated account's clock is 3 h \d+ min ahead of real time .*`tradebot sim reset` starts a fresh",
        tick.stdout,
    ), tick.stdout
    cycle = re.search(r"^Cycle at (\S+ \S+) UTC \(simulated clock\)", tick.stdout, re.M)
    assert cycle, tick.stdout
    assert datetime.fromisoformat(cycle.group(1)).replace(tzinfo=UTC) >= ahead - timedelta(seconds=1)
    status = tradebot(tmp_path, "run", stdin="/status\n")
    assert re.search(
        r"^Clock: .*\(simulated clock, 600x real time, 3 h \d+ min ahead of real time\)$", status.stdout, re.M
    )


def test_sim_reset_starts_a_fresh_account_after_confirmation_at_the_terminal(tmp_path):
    trade_until_a_trade_closes(tmp_path)
    assert count(tmp_path, "trades") >= 1 and count(tmp_path, "sim_orders") >= 2
    with db(tmp_path) as c:  # a pause and a risk override outlive the reset
        c.execute("INSERT INTO settings (key, value) VALUES ('risk_overrides', '{\"max_open_trades\": 3}')")
    events_before = count(tmp_path, "events")

    declined = Terminal(tmp_path, environment(tmp_path), "sim", "reset")
    try:
        declined.wait_for("Type 'reset' to delete them: ")
        declined.type("no\n")
        assert declined.wait_exit(30) == 1
        assert "Nothing changed." in declined.screen
    finally:
        declined.close()
    assert count(tmp_path, "trades") >= 1

    term = Terminal(tmp_path, environment(tmp_path), "sim", "reset")
    try:
        screen = term.wait_for("Type 'reset' to delete them: ")
        assert re.search(r"Simulated account in sqlite:///\S+: \d+ orders?, \d+ closed trades?", screen), (
            screen
        )
        term.type("reset\n")
        assert term.wait_exit(30) == 0, term.screen
        assert "Done: a fresh simulated account." in term.screen
    finally:
        term.close()
    for table in (
        "orders",
        "fills",
        "positions",
        "trades",
        "equity_snapshots",
        "signals",
        "sim_orders",
        "sim_fills",
        "sim_positions",
        "sim_account",
    ):
        assert count(tmp_path, table) == 0, table
    with db(tmp_path) as c:
        settings = dict(c.execute("SELECT key, value FROM settings").fetchall())
        last_event = c.execute("SELECT message FROM events ORDER BY id DESC LIMIT 1").fetchone()[0]
    assert settings["risk_overrides"] == '{"max_open_trades": 3}'
    assert count(tmp_path, "events") == events_before + 1
    assert last_event.startswith("Simulated account reset by tradebot sim reset: deleted ")
    # The clock restarts at real time: no longer ahead, and the cash is whole again.
    tick = tradebot(tmp_path, "tick")
    assert "ahead of real time" not in tick.stdout
    status = tradebot(tmp_path, "run", stdin="/status\n")
    equity = re.search(r"^Equity: ([\d,.]+)", status.stdout, re.M)
    assert equity, status.stdout
    # 100,000 again (a trade in the first cycles moves it by a few dollars at most)
    assert abs(float(equity.group(1).replace(",", "")) - 100_000) < 500, status.stdout


def test_sim_reset_without_a_terminal_needs_yes(tmp_path):
    assert tradebot(tmp_path, "tick").returncode == 0
    refused = tradebot(tmp_path, "sim", "reset")
    assert refused.returncode == 2
    assert refused.stderr.strip().endswith(
        "not reset: no terminal to confirm on; `tradebot sim reset --yes` resets without asking"
    )
    done = tradebot(tmp_path, "sim", "reset", "--yes")
    assert done.returncode == 0, done.stderr
    assert "Done: a fresh simulated account." in done.stdout


def test_sim_reset_refuses_while_a_run_trades(tmp_path):
    env = processes.environment(f"sqlite:///{tmp_path / 'tradebot.db'}")
    run = processes.start(tmp_path, "run", env, "run")
    try:
        processes.wait_for(tmp_path, "run", "trading lease held by this instance")
        refused = tradebot(tmp_path, "sim", "reset", "--yes")
    finally:
        run.terminate()
        run.wait(timeout=30)
    assert refused.returncode == 1
    assert re.search(r"not reset: standby: instance \S+ is trading .*; stop it first", refused.stderr), (
        refused.stderr
    )


def test_sim_reset_refuses_books_from_a_real_broker(tmp_path):
    assert tradebot(tmp_path, "tick").returncode == 0
    fills = count(tmp_path, "fills")
    with db(tmp_path) as c:
        c.execute(
            "INSERT INTO fills (fill_id, client_order_id, symbol, side, qty, price, commission, time) "
            "VALUES ('20240102093001::abc', 'tb-x', 'AAPL', 'buy', 1, 100, 0, '2024-01-02 09:30:01')"
        )
    refused = tradebot(tmp_path, "sim", "reset", "--yes")
    assert refused.returncode == 1
    assert "also holds 1 order or fill from a real broker (Alpaca)" in refused.stderr
    assert count(tmp_path, "fills") == fills + 1  # nothing deleted


@pytest.mark.parametrize("key", ["ALPACA_API_KEY"])
def test_sim_reset_refuses_when_alpaca_is_configured(tmp_path, key):
    refused = tradebot(tmp_path, "sim", "reset", "--yes", **{key: "PKTEST", "ALPACA_API_SECRET": "x"})
    assert refused.returncode == 2
    assert "not reset: ALPACA_API_KEY is set" in refused.stderr


def test_charts_and_the_daily_summary_label_the_simulated_clock(tmp_path):
    """The /chart and /equity titles and captions, and the daily summary, say whose clock their
    times are on, as /status and /trades do; on a real broker's market nothing is added."""
    from dataclasses import replace
    from datetime import date

    from bot import formatting as fmt
    from bot.charts import ChartData
    from tests.helpers import make_app

    app, clock = make_app(tmp_path / "t.db", TRADEBOT_SYMBOLS="BTC/USD")
    for _ in range(3):  # equity snapshots every 5 minutes: two at least for a curve
        clock.advance(minutes=5)
        app.engine.tick()
    charts = ChartData.from_app(app)
    price, equity = charts.price("BTC/USD"), charts.equity()
    assert price.title == "BTC/USD 1m (simulated clock)"
    assert equity.title == "Equity and drawdown (simulated clock)"
    assert re.search(r"UTC \(simulated clock\), close ", price.caption), price.caption
    assert "(simulated clock))" in equity.caption

    summary = app.service.daily_summary(date(2026, 3, 2))
    assert summary is not None
    assert re.search(r"^Clock: \S+ \S+ UTC \(simulated clock\b", summary.message, re.M), summary.message

    real = replace(app.service.status(), mode="paper")  # the same figures on Alpaca's paper market
    assert "Clock:" not in fmt.daily_summary(date(2026, 3, 2), real, app.service.pnl())
    assert "simulated" not in replace(price, simulated=False).caption + replace(price, simulated=False).title
    app.db.dispose()
