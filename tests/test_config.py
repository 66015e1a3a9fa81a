"""Configuration: typed settings, environment over .env, where each value came from, masked
secrets, a complete .env.example. The attacks of issue 12 item 1 are in test_config_attacks.py."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from bot.config import (
    ConfigError,
    ConsoleMode,
    LogLevel,
    Settings,
    Source,
    all_variables,
    database_url,
    describe,
)
from bot.logs import RedactingFilter

ROOT = Path(__file__).parents[1]
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


def tradebot(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The real command line in ``cwd``, with none of this process's tradebot variables."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(OWN_PREFIXES)}
    environ.update(PYTHONPATH=str(ROOT), **env)
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def test_defaults_are_the_embedded_simulator():
    settings = Settings.from_mapping({})
    assert settings.database_url == "sqlite:///tradebot.db"
    assert settings.tradebot_symbols == ("AAPL", "MSFT", "SPY", "BTC/USD", "ETH/USD")
    assert settings.tradebot_strategies == ("supertrend:period=10,multiplier=3",)
    assert settings.tradebot_sim_speed == 60 and settings.tradebot_history_bars == 300
    assert settings.risk_per_trade_pct == 2 and settings.max_position_pct == 20
    assert settings.stop_loss_pct == 2 and settings.take_profit_pct == 4
    assert settings.max_portfolio_risk_pct == 6 and settings.max_open_trades == 5
    assert settings.tradebot_console is ConsoleMode.AUTO and settings.wants_console()
    assert not settings.alpaca_enabled and not settings.telegram_enabled
    assert all(settings.source(var.name) is Source.DEFAULT for var in all_variables())


def test_values_are_parsed_once_into_their_types():
    settings = Settings.from_mapping(
        {
            "TRADEBOT_SYMBOLS": " aapl , btc/usd ",
            "TRADEBOT_CONSOLE": "false",
            "LOG_LEVEL": "debug",
            "TRADEBOT_STRATEGIES": " supertrend : period = 7 ; supertrend:period=14,multiplier=2",
            "TELEGRAM_ALLOWED_CHAT_IDS": "-100123, 42,42",
            "DAILY_SUMMARY_TIME": "16:15 America/New_York",
            "ALPACA_PAPER": "no",
        }
    )
    assert settings.tradebot_symbols == ("AAPL", "BTC/USD")
    assert settings.tradebot_console is ConsoleMode.OFF and not settings.wants_console()
    assert settings.log_level is LogLevel.DEBUG
    assert settings.tradebot_strategies == ("supertrend:period=7", "supertrend:period=14,multiplier=2")
    assert settings.telegram_allowed_chat_ids == (-100123, 42)
    assert settings.daily_summary_time is not None and settings.daily_summary_time.zone is not None
    assert settings.daily_summary_time.zone.key == "America/New_York"
    assert {row.name: row.shown for row in describe(settings)}[
        "DAILY_SUMMARY_TIME"
    ] == "16:15 America/New_York"
    assert settings.alpaca_paper is False


def test_env_file_is_read_but_never_overrides_the_environment(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("TRADEBOT_SYMBOLS=TSLA\nMAX_OPEN_TRADES=2\n")
    settings = Settings.load({"MAX_OPEN_TRADES": "7"}, env_file=env_file)
    assert settings.tradebot_symbols == ("TSLA",)
    assert settings.max_open_trades == 7
    assert settings.source("TRADEBOT_SYMBOLS") is Source.DOTENV
    assert settings.source("MAX_OPEN_TRADES") is Source.ENVIRONMENT
    assert settings.source("STOP_LOSS_PCT") is Source.DEFAULT and not settings.is_set("STOP_LOSS_PCT")


def test_tradebot_config_says_where_each_value_came_from(tmp_path):
    (tmp_path / ".env").write_text("MAX_OPEN_TRADES=3\nRISK_PER_TRADE_PCT=4\n")
    result = tradebot(tmp_path, "config", RISK_PER_TRADE_PCT="1")
    assert result.returncode == 0, result.stderr
    assert "MAX_OPEN_TRADES=3  (.env)" in result.stdout.splitlines()
    assert "RISK_PER_TRADE_PCT=1  (environment)" in result.stdout.splitlines()
    assert "STOP_LOSS_PCT=2  (default)" in result.stdout.splitlines()


def test_tradebot_config_masks_the_database_password_and_every_secret(tmp_path):
    result = tradebot(
        tmp_path,
        "config",
        DATABASE_URL="postgres://trader:hunter2hunter2@db.example.com:5432/books",
        ALPACA_API_KEY="PKSECRETVALUE123",
        TELEGRAM_BOT_TOKEN="123456789:AAbbCCddEEffGGhhIIjjKKllMMnnOOppQQ",
    )
    assert result.returncode == 0, result.stderr
    assert (
        "DATABASE_URL=postgresql+psycopg://trader:***@db.example.com:5432/books  (environment)"
        in result.stdout
    )
    assert "ALPACA_API_KEY=(set)  (environment)" in result.stdout
    for secret in ("hunter2hunter2", "PKSECRETVALUE123", "AAbbCCdd"):
        assert secret not in result.stdout + result.stderr


def test_pure_python_kernels_can_be_chosen_in_the_env_file(tmp_path):
    """TRADEBOT_PURE_PYTHON used to be read from the process environment only."""
    (tmp_path / ".env").write_text("TRADEBOT_PURE_PYTHON=true\n")
    result = tradebot(tmp_path, "doctor")
    assert "python indicator kernels" in result.stdout, result.stdout
    (tmp_path / ".env").write_text("TRADEBOT_PURE_PYTHON=false\n")
    result = tradebot(tmp_path, "doctor")
    from bot import kernels

    expected = "c" if kernels.C is not None else "python"
    assert f"{expected} indicator kernels" in result.stdout, result.stdout


def test_a_missing_env_file_named_on_the_command_line_is_refused(tmp_path):
    result = tradebot(tmp_path, "--env-file", "prod.env", "config")
    assert result.returncode == 2
    assert result.stderr.strip() == "tradebot: error: --env-file prod.env: no such file"


def test_heroku_postgres_urls_are_normalised():
    assert database_url("postgres://u:p@h:5432/db") == "postgresql+psycopg://u:p@h:5432/db"
    assert database_url("postgresql://h/db") == "postgresql+psycopg://h/db"
    assert database_url("sqlite:///x.db") == "sqlite:///x.db"


def test_secrets_never_print_themselves():
    settings = Settings.from_mapping(
        {
            "ALPACA_API_KEY": "PKSECRETVALUE123",
            "ALPACA_API_SECRET": "s3cr3t-value",
            "DATABASE_URL": "postgresql://u:hunter2hunter2@h/db",
        }
    )
    key = settings.alpaca_api_key
    assert isinstance(key, SecretStr) and key.get_secret_value() == "PKSECRETVALUE123"
    rows = {row.name: row.shown for row in describe(settings)}
    shown = repr(settings) + str(settings) + str(key) + repr(rows)
    for secret in ("PKSECRETVALUE123", "s3cr3t-value", "hunter2hunter2"):
        assert secret not in shown
    assert rows["ALPACA_API_KEY"] == "(set)" and rows["POLYGON_API_KEY"] == "(not set)"
    assert set(settings.secrets()) == {"PKSECRETVALUE123", "s3cr3t-value", "hunter2hunter2"}


def test_a_secret_in_an_invalid_value_is_masked_in_the_message():
    with pytest.raises(ConfigError) as caught:
        Settings.from_mapping({"DATABASE_URL": "postgres://u:hunter2hunter2@h:5432"})
    assert "hunter2hunter2" not in str(caught.value) and "u:***@h" in str(caught.value)


def test_log_redaction_masks_configured_secrets_and_bot_tokens():
    filt = RedactingFilter(["PKSECRETVALUE123"])
    record = logging.LogRecord(
        "t",
        logging.INFO,
        __file__,
        1,
        "GET %s key=%s",
        (
            "https://api.telegram.org/bot123456789:AAbbCCddEEffGGhhIIjjKKllMMnnOOppQQ/getMe",
            "PKSECRETVALUE123",
        ),
        None,
    )
    filt.filter(record)
    text = record.getMessage()
    assert "PKSECRETVALUE123" not in text and "AAbbCCdd" not in text
    assert text.count("***") == 2


def test_the_database_password_stays_out_of_logs_and_errors(tmp_path):
    """Port 1 refuses the connection at once: the start-up error and the debug log name the
    database, never its password."""
    result = tradebot(
        tmp_path, "tick", DATABASE_URL="postgres://trader:hunter2hunter2@127.0.0.1:1/books", LOG_LEVEL="DEBUG"
    )
    assert result.returncode == 1
    assert "127.0.0.1:1/books" in result.stderr
    assert "hunter2hunter2" not in result.stdout + result.stderr


def test_env_example_lists_every_variable_with_a_comment():
    """Every variable, with its comment; those whose mere presence changes what tradebot does
    (PORT, LOG_LEVEL) commented out, so the copy runs as if there were no .env."""
    text = (ROOT / ".env.example").read_text()
    lines = text.splitlines()
    for var in all_variables():
        prefix = "" if var.in_example else "# "
        matches = [i for i, line in enumerate(lines) if line.startswith(f"{prefix}{var.name}=")]
        assert matches, f"{var.name} is missing from .env.example"
        assert lines[matches[0] - 1].startswith("# "), f"{var.name} has no comment line above it"
    assert {var.name for var in all_variables() if not var.in_example} == {"PORT", "LOG_LEVEL"}


def test_the_example_copied_to_dot_env_sets_nothing_that_changes_behaviour(tmp_path):
    """Values equal to the defaults, and no variable whose presence alone changes what runs."""
    from bot.web.config import WebConfig

    copied = tmp_path / ".env"
    copied.write_text((ROOT / ".env.example").read_text())
    settings = Settings.load({}, env_file=copied)
    assert settings.model_dump() == Settings.from_mapping({}).model_dump()
    assert not settings.is_set("PORT") and not settings.is_set("LOG_LEVEL")
    assert WebConfig.from_settings(settings) == WebConfig.from_settings(Settings.load({}, env_file=None))


def test_env_example_is_what_tradebot_config_example_prints():
    out = subprocess.run(
        [sys.executable, "-m", "bot", "config", "--example"], capture_output=True, text=True, check=True
    )
    assert out.stdout == (ROOT / ".env.example").read_text(), (
        "regenerate: tradebot config --example > .env.example"
    )


def test_every_default_in_the_example_is_valid():
    """The example, copied to .env as it is, starts the bot."""
    example = {var.name: var.default for var in all_variables() if not var.secret}
    assert Settings.from_mapping(example).model_dump() == Settings.from_mapping({}).model_dump()
