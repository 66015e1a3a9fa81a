"""Issue 12 item 1 and issue 10 item 4: every bad value is refused before anything runs.

One test per attack class. Each value of the class is refused by the settings loader with one
line naming the variable; then one value of the class goes through the real ``tradebot config``,
``doctor``, ``tick`` and ``run`` (started together, as processes), and each must answer with one
line naming the variable, the value (masked when secret) and what is allowed, exit status 2, no
traceback, and no database file created.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import ConfigError, Settings

ROOT = Path(__file__).parents[1]
COMMANDS = ("config", "doctor", "tick", "run")
OWN_PREFIXES = (
    "TRADEBOT_",
    "ALPACA_",
    "TELEGRAM_",
    "POLYGON_",
    "DATABASE_URL",
    "LOG_",
    "PORT",
    "DAILY_",
    "MAX_",
)


def refused_in_process(name: str, value: str) -> str:
    with pytest.raises(ConfigError) as caught:
        Settings.from_mapping({name: value})
    lines = caught.value.lines
    assert len(lines) == 1 and lines[0].startswith(f"{name}="), lines
    return lines[0]


def refused_by_every_command(tmp_path: Path, name: str, value: str, *expected: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(OWN_PREFIXES)}
    env.update(PYTHONPATH=str(ROOT), TRADEBOT_CONSOLE="on")
    env[name] = value
    processes = {
        command: subprocess.Popen(
            [sys.executable, "-m", "bot", command],
            cwd=tmp_path,
            env=env,
            stdin=subprocess.PIPE,  # left open: `run` must not wait for the console
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for command in COMMANDS
    }
    for command, process in processes.items():
        try:
            out, err = process.communicate(timeout=60)
        finally:
            process.kill()
        said = [line for line in (out + err).splitlines() if line.strip()]
        assert process.returncode == 2, f"{command}: exit {process.returncode}\n{out}{err}"
        assert len(said) == 1, f"{command} said more than one line:\n{out}{err}"
        assert "Traceback" not in out + err
        assert f"{name}=" in said[0] and "allowed" in said[0], f"{command}: {said[0]}"
        for text in expected:
            assert text in said[0], f"{command}: {text!r} not in {said[0]!r}"
    assert not list(tmp_path.glob("*.db*")), "a refused configuration must not create the database"


def test_overflowing_intervals_and_sim_speeds(tmp_path):
    for name, value in [
        ("TRADEBOT_INTERVAL_SECONDS", "1e20"),
        ("TRADEBOT_INTERVAL_SECONDS", "0"),
        ("TRADEBOT_INTERVAL_SECONDS", "nan"),
        ("TRADEBOT_SIM_SPEED", "1e20"),
        ("TRADEBOT_SIM_SPEED", "1e-300"),
        ("TRADEBOT_SIM_SPEED", "inf"),
        ("TRADEBOT_LEASE_SECONDS", "1"),
        ("PORT", "70000"),
    ]:
        assert "allowed a" in refused_in_process(name, value)
    refused_by_every_command(tmp_path, "TRADEBOT_SIM_SPEED", "1e20", "'1e20'", "from 1 to 3600")


def test_absurd_history_sizes(tmp_path):
    for value in ("99999999999999999999", "10000000", "0", "-5", "1.5"):
        assert "from 10 to 10000 bars" in refused_in_process("TRADEBOT_HISTORY_BARS", value)
    with pytest.raises(ConfigError, match="holds 1,200,000 bars in memory: allowed at most 1,000,000"):
        Settings.from_mapping(
            {
                "TRADEBOT_HISTORY_BARS": "10000",
                "TRADEBOT_SYMBOLS": ",".join(f"S{chr(65 + i // 26)}{chr(65 + i % 26)}" for i in range(120)),
            }
        )
    refused_by_every_command(tmp_path, "TRADEBOT_HISTORY_BARS", "10000000", "'10000000'", "from 10 to 10000")


def test_a_history_shorter_than_a_strategy_needs(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "bot", "tick"],
        cwd=tmp_path,
        env={
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "TRADEBOT_HISTORY_BARS": "20",
            "TRADEBOT_STRATEGIES": "supertrend:period=50,multiplier=3",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "tradebot: error: TRADEBOT_HISTORY_BARS='20' is invalid: supertrend(period=50,multiplier=3) "
        "needs 52 bars of history; allowed 52 to 10000; set in the environment"
    ]


def test_absurd_and_ambiguous_timeframes(tmp_path):
    for value in ("999999999d", "0m", "2h", "1 minute", "", "1w"):
        assert "allowed one of 1m, 5m, 15m, 30m, 1h, 4h, 1d" in refused_in_process(
            "TRADEBOT_TIMEFRAME", value
        )
    assert "1M would be months" in refused_in_process("TRADEBOT_TIMEFRAME", "1M")
    refused_by_every_command(tmp_path, "TRADEBOT_TIMEFRAME", "999999999d", "'999999999d'", "1m, 5m")


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "not a database URL"),
        ("garbage", "not a database URL"),
        ("mysql://u:p@h/db", "mysql is not supported"),
        ("http://example.com/db", "http is not supported"),
        ("sqlite://", "no database file named"),
        ("sqlite:///", "no database file named"),
        ("sqlite:///:memory:", "in-memory database is lost at exit"),
        ("sqlite:///file:x?mode=memory&uri=true", "in-memory database is lost at exit"),
        ("postgres://u:hunter2hunter2@db.example.com:5432", "no database name"),
        ("postgresql://u@db.example.com:port/db", "port is not a number"),
    ],
)
def test_bad_database_urls_in_process(value, reason):
    line = refused_in_process("DATABASE_URL", value)
    assert reason in line and "hunter2hunter2" not in line


def test_bad_database_urls(tmp_path):
    """`sqlite:///:memory:` used to leave `run` in standby forever; a Postgres URL without a
    database name silently used the server's default database. The password stays masked."""
    refused_by_every_command(tmp_path, "DATABASE_URL", "sqlite:///:memory:", "in-memory")
    refused_by_every_command(
        tmp_path,
        "DATABASE_URL",
        "postgres://trader:hunter2hunter2@127.0.0.1:5432",
        "trader:***@",
        "no database name",
    )


def test_bad_feeds_urls_and_log_levels(tmp_path):
    for name, value, allowed in [
        ("ALPACA_DATA_FEED", "xyz", "one of iex, sip, delayed_sip, otc"),
        ("ALPACA_TRADING_URL", "garbage", "http:// or https:// URL"),
        ("ALPACA_DATA_URL", "ftp://x", "http:// or https:// URL"),
        ("ALPACA_STREAM_URL", "http://x", "ws:// or wss:// URL"),
        ("POLYGON_BASE_URL", "", "http:// or https:// URL"),
        ("TELEGRAM_BASE_URL", "127.0.0.1:8081/bot", "http:// or https:// URL"),
        ("TELEGRAM_WEBHOOK_URL", "not a url", "https:// URL"),
        ("TELEGRAM_WEBHOOK_URL", "http://bot.example.com/hook", "https:// URL"),
        ("TELEGRAM_WEBHOOK_URL", "https://bot.example.com:9000/hook", "ports 443, 80, 88, 8443"),
        ("LOG_LEVEL", "LOUD", "one of DEBUG, INFO, WARNING, ERROR"),
        ("LOG_FORMAT", "xml", "one of text, json"),
        ("TRADEBOT_CONSOLE", "sometimes", "one of auto, on, off"),
        ("ALPACA_PAPER", "maybe", "true or false"),
        ("TELEGRAM_ALLOWED_CHAT_IDS", "me", "chat ids"),
        ("TELEGRAM_ALLOWED_USER_IDS", "-5", "positive whole numbers"),
        ("DAILY_SUMMARY_TIME", "25:00", "HH:MM"),
        ("DAILY_SUMMARY_TIME", "10:00 ../../etc/passwd", "unknown time zone"),
    ]:
        assert allowed in refused_in_process(name, value), (name, value)
    refused_by_every_command(tmp_path, "TELEGRAM_WEBHOOK_URL", "not a url", "'not a url'", "https://")
    refused_by_every_command(tmp_path, "LOG_LEVEL", "LOUD", "'LOUD'", "DEBUG, INFO")


def test_malformed_and_hostile_symbols(tmp_path):
    for value in (
        "BTC/",
        "/",
        "BTC/USD/EUR",
        "🚀",
        "AAPL DROP",
        "../../etc/passwd",
        "A" * 300,
        "AAPL;rm -rf",
        "",
    ):
        line = refused_in_process("TRADEBOT_SYMBOLS", value)
        assert "stock tickers (AAPL, BRK.B) or crypto pairs BASE/QUOTE (BTC/USD)" in line, line
        assert len(line) < 300
    assert "given twice" in refused_in_process("TRADEBOT_SYMBOLS", "AAPL,MSFT,aapl")
    assert Settings.from_mapping({"TRADEBOT_SYMBOLS": "brk.b, eth/btc"}).tradebot_symbols == (
        "BRK.B",
        "ETH/BTC",
    )
    refused_by_every_command(
        tmp_path, "TRADEBOT_SYMBOLS", "AAPL,../../etc/passwd", "'../../etc/passwd' is not a symbol"
    )


def test_repeated_strategy_parameters_and_unknown_strategies(tmp_path):
    line = refused_in_process("TRADEBOT_STRATEGIES", "supertrend:period=10,multiplier=3,period=20")
    assert "parameter 'period' is given twice" in line
    assert "configured twice" in refused_in_process("TRADEBOT_STRATEGIES", "supertrend;supertrend")
    assert "malformed parameter" in refused_in_process("TRADEBOT_STRATEGIES", "supertrend:period")
    refused_by_every_command(tmp_path, "TRADEBOT_STRATEGIES", "supertrend:period=10,period=20", "given twice")
    refused_by_every_command(tmp_path, "TRADEBOT_STRATEGIES", "supertrend:period=0", "below its minimum")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MAX_POSITION_PCT", "100"),
        ("RISK_PER_TRADE_PCT", "50"),
        ("STOP_LOSS_PCT", "0"),
        ("TAKE_PROFIT_PCT", "-1"),
        ("MAX_PORTFOLIO_RISK_PCT", "nan"),
        ("MAX_OPEN_TRADES", "1000"),
        ("DAILY_LOSS_LIMIT_PCT", "inf"),
    ],
)
def test_risk_limits_from_the_environment_keep_the_bounds_of_risk_set(name, value):
    from bot.risk import BOUNDS

    low, high = BOUNDS[name.lower()]
    line = refused_in_process(name, value)
    assert f"from {low:g} to {high:g} (the bounds /risk set allows)" in line


def test_max_position_pct_100_stops_start_up_and_fails_the_doctor(tmp_path):
    """Issue 10 item 4: the environment is held to the same bounds as /risk set."""
    refused_by_every_command(tmp_path, "MAX_POSITION_PCT", "100", "'100'", "from 1 to 50")


def test_a_password_stays_masked_in_the_refusal(tmp_path):
    refused_by_every_command(tmp_path, "DATABASE_URL", "mysql://root:hunter2hunter2@db/books", "root:***@")
