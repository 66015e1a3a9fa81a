"""Configuration: environment over .env, clear errors, masked secrets, a complete .env.example."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import ConfigError, Secret, Settings, all_variables, database_url
from bot.logs import RedactingFilter

ROOT = Path(__file__).parents[1]


def test_defaults_are_the_embedded_simulator():
    settings = Settings.from_mapping({})
    assert settings.database_url == "sqlite:///tradebot.db"
    assert settings.tradebot_symbols == ["AAPL", "MSFT", "SPY", "BTC/USD", "ETH/USD"]
    assert settings.tradebot_strategies == ["supertrend:period=10,multiplier=3"]
    assert settings.tradebot_sim_speed == 60
    assert settings.risk_per_trade_pct == 2 and settings.max_position_pct == 20
    assert settings.stop_loss_pct == 2 and settings.take_profit_pct == 4
    assert settings.max_portfolio_risk_pct == 6


def test_env_file_is_read_but_never_overrides_the_environment(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("TRADEBOT_SYMBOLS=TSLA\nMAX_OPEN_TRADES=2\n")
    settings = Settings.load({"MAX_OPEN_TRADES": "7"}, env_file=env_file)
    assert settings.tradebot_symbols == ["TSLA"]
    assert settings.max_open_trades == 7


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MAX_OPEN_TRADES", "many"),
        ("STOP_LOSS_PCT", "-1"),
        ("TRADEBOT_SIM_SPEED", "nan"),
        ("ALPACA_PAPER", "maybe"),
    ],
)
def test_invalid_values_name_the_variable(name, value):
    with pytest.raises(ConfigError, match=f"^{name}="):
        Settings.from_mapping({name: value})


def test_heroku_postgres_urls_are_normalised():
    assert database_url("postgres://u:p@h:5432/db") == "postgresql+psycopg://u:p@h:5432/db"
    assert database_url("postgresql://h/db") == "postgresql+psycopg://h/db"
    assert database_url("sqlite:///x.db") == "sqlite:///x.db"


def test_secrets_never_print_themselves():
    settings = Settings.from_mapping(
        {"ALPACA_API_KEY": "PKSECRETVALUE123", "ALPACA_API_SECRET": "s3cr3t-value"}
    )
    key = settings.alpaca_api_key
    assert isinstance(key, Secret) and key.get() == "PKSECRETVALUE123"
    shown = repr(settings) + str(key) + repr(settings.describe())
    assert "PKSECRETVALUE123" not in shown and "s3cr3t-value" not in shown
    rows = {name: shown for name, shown, _help in settings.describe()}
    assert rows["ALPACA_API_KEY"] == "(set)" and rows["POLYGON_API_KEY"] == "(not set)"


def test_log_redaction_masks_configured_secrets_and_bot_tokens(caplog):
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


def test_env_example_lists_every_variable_with_a_comment():
    text = (ROOT / ".env.example").read_text()
    lines = text.splitlines()
    for var in all_variables():
        matches = [i for i, line in enumerate(lines) if re.match(rf"^{var.name}=", line)]
        assert matches, f"{var.name} is missing from .env.example"
        assert lines[matches[0] - 1].startswith("# "), f"{var.name} has no comment line above it"


def test_env_example_is_what_tradebot_config_example_prints():
    out = subprocess.run(
        [sys.executable, "-m", "bot", "config", "--example"], capture_output=True, text=True, check=True
    )
    assert out.stdout == (ROOT / ".env.example").read_text(), (
        "regenerate: tradebot config --example > .env.example"
    )
