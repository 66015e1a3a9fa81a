"""Issue 10 item 4, the runtime half: every limit in force says where it came from (default,
.env, environment, or a /risk set override with who and when), and /risk reset drops overrides."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bot.commands import Caller
from tests.helpers import make_app

ROOT = Path(__file__).parents[1]


def ann(clock):
    return Caller("telegram", chat_id=1, user_id=7, name="ann", sent_at=clock.now())


def confirmed(app, clock, text):
    asked = app.router.handle(text, ann(clock))
    assert asked.confirmation is not None, asked.text
    return app.router.confirm(asked.confirmation.token, ann(clock)).text


def test_risk_and_status_show_every_limit_with_its_origin_and_an_override(tmp_path):
    app, clock = make_app(tmp_path / "bot.db", RISK_PER_TRADE_PCT="3")
    shown = app.router.handle("/risk", ann(clock)).text
    assert "risk_per_trade_pct: 3 (0.1..5) environment" in shown
    assert "max_position_pct: 20 (1..50) default" in shown

    clock.advance(minutes=5)
    assert (
        confirmed(app, clock, "/risk set risk_per_trade_pct 1") == "Risk limit risk_per_trade_pct is now 1."
    )
    at = clock.now().strftime("%Y-%m-%d %H:%M:%S UTC (simulated clock)")
    shown = app.router.handle("/risk", ann(clock)).text
    assert f"risk_per_trade_pct: 1 (0.1..5) set by ann at {at} (configured 3, from the environment)" in shown
    status = app.router.handle("/status", ann(clock)).text
    assert f"  risk_per_trade_pct 1: set by ann at {at} (configured 3, from the environment)" in status
    assert "  max_open_trades 5: default" in status
    assert app.service.limits().risk_per_trade_pct == 1  # what trades is what is shown


def test_risk_reset_drops_overrides_after_confirmation(tmp_path):
    app, clock = make_app(tmp_path / "bot.db")
    confirmed(app, clock, "/risk set max_open_trades 3")
    confirmed(app, clock, "/risk set stop_loss_pct 1.5")
    assert app.router.handle("/risk reset take_profit_pct", ann(clock)).text == (
        "Nothing to reset: take_profit_pct is not overridden."
    )
    assert "unknown limit 'nosuch'" in app.router.handle("/risk reset nosuch", ann(clock)).text

    asked = app.router.handle("/risk reset max_open_trades", ann(clock))
    assert "reset max_open_trades from 3 to 5" in asked.text
    assert app.service.limits().max_open_trades == 3  # not before the confirmation
    done = app.router.confirm(asked.confirmation.token, ann(clock)).text
    assert done == "Back to the configured values: max_open_trades."
    assert app.service.limits().max_open_trades == 5 and app.service.limits().stop_loss_pct == 1.5

    clock.advance(seconds=1)
    assert confirmed(app, clock, "/risk reset all") == "Back to the configured values: stop_loss_pct."
    assert "stop_loss_pct: 2 (0.2..20) default" in app.router.handle("/risk", ann(clock)).text
    restarted, _ = make_app(tmp_path / "bot.db", clock=clock)
    assert restarted.service.limits() == app.service.limits()


def test_tradebot_config_shows_an_override_stored_by_a_running_bot(tmp_path):
    """After /risk set, `tradebot config` used to print the configured value as if it were in force."""
    db = tmp_path / "bot.db"
    app, clock = make_app(db, MAX_POSITION_PCT="30")
    clock.advance(minutes=1)
    confirmed(app, clock, "/risk set max_position_pct 10")
    app.db.dispose()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRADEBOT_", "DATABASE_URL", "MAX_"))}
    env.update(PYTHONPATH=str(ROOT), DATABASE_URL=f"sqlite:///{db}", MAX_POSITION_PCT="30")
    result = subprocess.run(
        [sys.executable, "-m", "bot", "config"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    at = clock.now().strftime("%Y-%m-%d %H:%M:%S UTC (simulated clock)")
    assert (
        f"MAX_POSITION_PCT=10  (set by ann at {at} with /risk set; configured 30 from the environment)"
        in result.stdout.splitlines()
    )
    assert "RISK_PER_TRADE_PCT=2  (default)" in result.stdout.splitlines()
