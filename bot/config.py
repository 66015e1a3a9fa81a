"""Settings from the environment and ``.env`` (12-factor), read once and passed around.

Every variable is declared once in ``VARIABLES`` with its default and a one-line help; that
table drives parsing, ``tradebot config`` and the test that keeps ``.env.example`` complete.
Secrets are wrapped in ``Secret`` so a ``repr``, a log line or an error message never shows them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A variable has a value tradebot cannot use; the message names the variable."""


class Secret:
    """A string that does not print itself."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('**********')" if self._value else "Secret('')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError("expected true or false")


def _list(text: str) -> list[str]:
    return [item.strip() for item in text.replace(";", ",").split(",") if item.strip()]


def _strategies(text: str) -> list[str]:
    # Strategies are separated by ';' because their own parameters use ','.
    return [item.strip() for item in text.split(";") if item.strip()]


def _ids(text: str) -> list[int]:
    return [int(item) for item in _list(text)]


def _positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        value = kind(text)
        if not math.isfinite(value) or value <= 0:
            raise ValueError("must be a positive number")
        return value

    return parse


def _non_negative(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise ValueError("must be zero or more")
    return value


def _lease_seconds(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or not 3 <= value <= 600:
        raise ValueError("must be between 3 and 600 seconds")
    return value


def database_url(text: str) -> str:
    """Heroku hands out ``postgres://``; SQLAlchemy wants ``postgresql+psycopg://``."""
    url = text.strip()
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


@dataclass(frozen=True, slots=True)
class Var:
    name: str
    default: str
    help: str
    parse: Callable[[str], Any] = str
    secret: bool = False
    group: str = "General"


VARIABLES: tuple[Var, ...] = (
    # General
    Var(
        "TRADEBOT_SYMBOLS",
        "AAPL,MSFT,SPY,BTC/USD,ETH/USD",
        "Symbols to trade, comma-separated; crypto pairs contain a slash",
        _list,
    ),
    Var("TRADEBOT_TIMEFRAME", "1m", "Bar length the strategies run on: 1m, 5m, 15m, 1h, 4h or 1d"),
    Var(
        "TRADEBOT_STRATEGIES",
        "supertrend:period=10,multiplier=3",
        "Strategies to run, separated by ';', each name:param=value,...",
        _strategies,
    ),
    Var(
        "TRADEBOT_INTERVAL_SECONDS",
        "60",
        "Seconds between engine cycles (clock seconds: divided by TRADEBOT_SIM_SPEED in the simulator)",
        _positive(float),
    ),
    Var(
        "TRADEBOT_HISTORY_BARS",
        "300",
        "Bars of history kept per symbol in memory (the bounded cache)",
        _positive(int),
    ),
    Var(
        "TRADEBOT_CONSOLE",
        "auto",
        "Read commands from standard input: auto (when no Telegram token), on, off",
    ),
    Var(
        "DATABASE_URL",
        "sqlite:///tradebot.db",
        "Database URL: SQLite file by default; Heroku's postgres:// URLs are accepted",
        database_url,
    ),
    Var("LOG_LEVEL", "INFO", "Log level: DEBUG, INFO, WARNING or ERROR", lambda s: s.strip().upper()),
    Var("LOG_FORMAT", "text", "Log format: text or json (one JSON object per line)"),
    Var(
        "TRADEBOT_AUTO_MIGRATE",
        "true",
        "Upgrade the database schema at start; false: refuse to start until `tradebot db upgrade` has run",
        _bool,
    ),
    Var(
        "TRADEBOT_LEASE_SECONDS",
        "30",
        "One trading instance per database: a holder that stops renewing its lease (every third of this) "
        "is replaced after this many seconds",
        _lease_seconds,
    ),
    # Telegram
    Var(
        "TELEGRAM_BOT_TOKEN",
        "",
        "Bot token from @BotFather; when set, `tradebot run` takes commands and sends alerts on Telegram",
        secret=True,
        group="Telegram",
    ),
    Var(
        "TELEGRAM_ALLOWED_CHAT_IDS",
        "",
        "Chats that receive alerts and may command, comma-separated (groups are negative); empty: none",
        _ids,
        group="Telegram",
    ),
    Var(
        "TELEGRAM_ALLOWED_USER_IDS",
        "",
        "Users who may command inside an allowed group chat, comma-separated; empty: nobody in groups",
        _ids,
        group="Telegram",
    ),
    Var(
        "TELEGRAM_BASE_URL",
        "",
        "Bot API base URL, as python-telegram-bot's base_url (e.g. http://127.0.0.1:8081/bot); empty: Telegram's",
        group="Telegram",
    ),
    Var(
        "TELEGRAM_WEBHOOK_URL",
        "",
        "Public HTTPS URL Telegram posts updates to (webhook mode, listening on PORT); empty: long polling",
        group="Telegram",
    ),
    Var(
        "PORT",
        "8443",
        "Port the webhook server listens on (Heroku sets it)",
        _positive(int),
        group="Telegram",
    ),
    Var(
        "TELEGRAM_ALERT_ORDERS", "true", "Alert when an order is placed or canceled", _bool, group="Telegram"
    ),
    Var("TELEGRAM_ALERT_FILLS", "true", "Alert when an order fills", _bool, group="Telegram"),
    Var(
        "TELEGRAM_ALERT_REJECTIONS",
        "true",
        "Alert when an order is rejected or an entry is blocked by a risk check (with the reason)",
        _bool,
        group="Telegram",
    ),
    Var(
        "TELEGRAM_ALERT_STOPS",
        "true",
        "Alert when a stop-loss or take-profit is hit",
        _bool,
        group="Telegram",
    ),
    Var(
        "TELEGRAM_ALERT_ERRORS",
        "true",
        "Alert on strategy errors, broker errors and reconciliation differences",
        _bool,
        group="Telegram",
    ),
    Var(
        "TELEGRAM_ALERT_DATA", "true", "Alert on market data outages and recoveries", _bool, group="Telegram"
    ),
    Var(
        "TELEGRAM_ALERT_STATE",
        "true",
        "Alert on start, stop, pause, resume and risk limit changes",
        _bool,
        group="Telegram",
    ),
    Var(
        "TELEGRAM_ALERT_SECURITY",
        "true",
        "Alert when someone outside the allow-lists tries to use the bot",
        _bool,
        group="Telegram",
    ),
    Var(
        "DAILY_SUMMARY_TIME",
        "21:00",
        "Daily summary time, HH:MM in UTC or HH:MM Area/City (e.g. 16:15 America/New_York); off: none",
        group="Telegram",
    ),
    # Simulator
    Var(
        "TRADEBOT_SIM_SPEED",
        "60",
        "Simulated market only: clock speed-up for `tradebot run` (60 = one 1m bar per second; 1 = real time)",
        _positive(float),
        group="Simulator",
    ),
    Var(
        "TRADEBOT_SIM_CASH",
        "100000",
        "Simulated market only: starting cash of the simulated account, USD",
        _positive(float),
        group="Simulator",
    ),
    Var(
        "TRADEBOT_SIM_COMMISSION",
        "0",
        "Simulated market only: commission as a fraction of notional (0.001 = 0.1 %)",
        _non_negative,
        group="Simulator",
    ),
    # Risk
    Var(
        "RISK_PER_TRADE_PCT",
        "2",
        "Equity risked per entry, in percent: size = equity x this / |entry - stop|",
        _positive(float),
        group="Risk",
    ),
    Var(
        "MAX_POSITION_PCT",
        "20",
        "Largest position value, in percent of equity",
        _positive(float),
        group="Risk",
    ),
    Var(
        "STOP_LOSS_PCT",
        "2",
        "Stop-loss attached to every entry, in percent below the entry price",
        _positive(float),
        group="Risk",
    ),
    Var(
        "TAKE_PROFIT_PCT",
        "4",
        "Take-profit attached to every entry, in percent above the entry price",
        _positive(float),
        group="Risk",
    ),
    Var(
        "MAX_PORTFOLIO_RISK_PCT",
        "6",
        "Sum over open positions of the loss if every stop were hit, in percent of equity",
        _positive(float),
        group="Risk",
    ),
    Var("MAX_OPEN_TRADES", "5", "Most positions open at once", _positive(int), group="Risk"),
    Var(
        "DAILY_LOSS_LIMIT_PCT",
        "5",
        "New entries stop for the rest of the UTC day once equity is this many percent below the day's start",
        _positive(float),
        group="Risk",
    ),
    # Alpaca
    Var(
        "ALPACA_API_KEY",
        "",
        "Alpaca API key id; when set, tradebot trades on Alpaca instead of the simulator",
        secret=True,
        group="Alpaca",
    ),
    Var("ALPACA_API_SECRET", "", "Alpaca API secret key", secret=True, group="Alpaca"),
    Var(
        "ALPACA_PAPER",
        "true",
        "Paper trading (true) or live money (false: must be set explicitly)",
        _bool,
        group="Alpaca",
    ),
    Var(
        "ALPACA_TRADING_URL",
        "",
        "Override of the trading API origin, e.g. http://127.0.0.1:8080 (no /v2); empty: Alpaca's paper or live",
        group="Alpaca",
    ),
    Var(
        "ALPACA_DATA_URL",
        "",
        "Override of the market data API origin (no /v2); empty: https://data.alpaca.markets",
        group="Alpaca",
    ),
    Var(
        "ALPACA_STREAM_URL",
        "",
        "Override of the market data stream origin, e.g. ws://127.0.0.1:8765 (/v2/<feed> and /v1beta3/crypto/us are appended)",
        group="Alpaca",
    ),
    Var(
        "ALPACA_DATA_FEED",
        "iex",
        "Stock data feed: iex (free plans) or sip (paid)",
        lambda s: s.strip().lower(),
        group="Alpaca",
    ),
    Var(
        "ALPACA_STREAMING",
        "false",
        "Live streams: evaluate strategies as bars close and record fills from trade updates at once",
        _bool,
        group="Alpaca",
    ),
    Var(
        "POLYGON_API_KEY",
        "",
        "Polygon API key; when set, Polygon's aggregates serve bars Alpaca's data API could not",
        secret=True,
        group="Alpaca",
    ),
    Var(
        "POLYGON_BASE_URL",
        "https://api.polygon.io",
        "Polygon API origin (override for tests or a proxy)",
        group="Alpaca",
    ),
    Var(
        "TRADEBOT_PURE_PYTHON",
        "false",
        "Use the pure-Python indicator kernels instead of the C extension (same results, slower); "
        "read from the process environment at import, not from .env",
        _bool,
        group="Developer",
    ),
)


@dataclass(frozen=True)
class Settings:
    """Parsed configuration. Build with ``Settings.load()``; tests pass an explicit mapping."""

    values: Mapping[str, Any] = field(default_factory=dict)

    def __getattr__(self, item: str) -> Any:
        values = object.__getattribute__(self, "values")
        key = item.upper()
        if key in values:
            return values[key]
        raise AttributeError(item)

    def get(self, name: str) -> Any:
        return self.values[name]

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, env_file: str | Path | None = ".env") -> Settings:
        """Read ``environ`` (default ``os.environ``) over the ``.env`` file, which never overrides it."""
        source: dict[str, str] = {}
        if env_file is not None and Path(env_file).is_file():
            from dotenv import dotenv_values

            source.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
        source.update(os.environ if environ is None else environ)
        return cls.from_mapping(source)

    @classmethod
    def from_mapping(cls, source: Mapping[str, str]) -> Settings:
        values: dict[str, Any] = {}
        for var in all_variables():
            raw = source.get(var.name, var.default)
            if raw is None:
                raw = var.default
            try:
                value = var.parse(raw)
            except (ValueError, TypeError) as exc:
                shown = "(hidden)" if var.secret else repr(raw)
                raise ConfigError(f"{var.name}={shown} is invalid: {exc}") from None
            values[var.name] = Secret(value) if var.secret else value
        return cls(values)

    def with_overrides(self, **overrides: Any) -> Settings:
        merged = dict(self.values)
        merged.update({k.upper(): v for k, v in overrides.items()})
        return Settings(merged)

    def secrets(self) -> list[str]:
        """Every secret value that is set, for the log redaction filter."""
        return [v.get() for v in self.values.values() if isinstance(v, Secret) and v]

    def describe(self) -> list[tuple[str, str, str]]:
        """(name, shown value, help) for every variable; secrets masked."""
        rows = []
        for var in all_variables():
            value = self.values.get(var.name)
            if isinstance(value, Secret):
                shown = "(set)" if value else "(not set)"
            elif isinstance(value, list):
                shown = ",".join(map(str, value))
            else:
                shown = str(value)
            rows.append((var.name, shown, var.help))
        return rows


def all_variables() -> tuple[Var, ...]:
    return VARIABLES


def env_example() -> str:
    """The text of ``.env.example``: every variable, its default, a one-line comment, by group."""
    lines = [
        "# tradebot configuration. Copy to .env and edit; real environment variables win over this file.",
        "# With nothing set, tradebot trades a simulated market and stores its state in tradebot.db.",
    ]
    group = None
    for var in all_variables():
        if var.group != group:
            group = var.group
            lines += ["", f"# --- {group} ---"]
        lines += [f"# {var.help}", f"{var.name}={'' if var.secret else var.default}"]
    return "\n".join(lines) + "\n"
