"""The value types of tradebot's variables: fixed choices, symbols, URLs, times, and their parsers.

Each parser takes the text of an environment variable and returns the typed value, or raises
``ValueError`` with a sentence that says what is allowed (the loader puts the variable's name
and value in front of it). Nothing here imports more than the standard library and pydantic.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any
from urllib.parse import parse_qs, urlsplit

from pydantic import BeforeValidator, PlainSerializer, PlainValidator

from bot.summary import SummaryTime, parse_summary_time

# ---------------------------------------------------------------------- fixed choices


class Choice(StrEnum):
    """A variable with a fixed set of values; the loader lists them when a value is not one."""

    @classmethod
    def parse(cls, text: object) -> Any:
        if isinstance(text, cls):
            return text
        lowered = str(text).strip().lower()
        for member in cls:
            if member.value.lower() == lowered:
                return member
        return text  # pydantic then refuses it, listing the members


class ConsoleMode(Choice):
    AUTO = "auto"  # the console when there is no Telegram token
    ON = "on"
    OFF = "off"

    @classmethod
    def parse(cls, text: object) -> Any:
        aliases = {"true": "on", "1": "on", "yes": "on", "false": "off", "0": "off", "no": "off"}
        return super().parse(aliases.get(str(text).strip().lower(), text))


class LogLevel(Choice):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"


class LogFormat(Choice):
    TEXT = "text"
    JSON = "json"


class DataFeed(Choice):
    """Alpaca's stock data feeds that the bars endpoint serves (alpaca-py's ``DataFeed``)."""

    IEX = "iex"
    SIP = "sip"
    DELAYED_SIP = "delayed_sip"
    OTC = "otc"


class TimeframeChoice(Choice):
    """Bar lengths the live bot runs on. Case matters: ``1M`` would be a month, never a minute."""

    M1 = "1m"
    M5 = "5m"
    M15 = "15m"
    M30 = "30m"
    H1 = "1h"
    H4 = "4h"
    D1 = "1d"

    @classmethod
    def parse(cls, text: object) -> Any:
        stripped = str(text).strip()
        for member in cls:
            if member.value == stripped:
                return member
        if stripped.endswith("M"):
            raise ValueError(
                f"{stripped[:-1]}M would be months; allowed minutes written m, e.g. {stripped[:-1]}m"
            )
        return text


class Source(StrEnum):
    """Where an effective value came from, as ``tradebot config`` shows it."""

    DEFAULT = "default"
    DOTENV = ".env"
    ENVIRONMENT = "environment"


# ---------------------------------------------------------------------- lists


def split_list(text: object, separator: str = ",") -> list[str]:
    if isinstance(text, list | tuple):
        return [str(item).strip() for item in text]
    return [item.strip() for item in str(text).split(separator) if item.strip()]


_STOCK = re.compile(r"^[A-Z]{1,6}(\.[A-Z]{1,2})?$")  # AAPL, GOOGL, BRK.B
_CRYPTO = re.compile(r"^[A-Z0-9]{2,10}/[A-Z]{3,5}$")  # BTC/USD, ETH/BTC, SHIB/USDT
SYMBOL_FORMAT = "stock tickers (AAPL, BRK.B) or crypto pairs BASE/QUOTE (BTC/USD)"
MAX_SYMBOLS = 1000  # the S&P 500 and then some; why not more: README "Limits"


def symbol(text: str) -> str:
    """One symbol, upper-cased, or ``ValueError`` saying what a symbol looks like."""
    cleaned = text.strip().upper()
    if not (_STOCK.match(cleaned) or _CRYPTO.match(cleaned)):
        shown = text if len(text) <= 24 else text[:24] + "..."
        raise ValueError(f"{shown!r} is not a symbol: allowed {SYMBOL_FORMAT}")
    return cleaned


def symbols(text: object) -> tuple[str, ...]:
    items = [symbol(item) for item in split_list(text)]
    if not items:
        raise ValueError(f"no symbol: allowed a comma-separated list of {SYMBOL_FORMAT}")
    if len(items) > MAX_SYMBOLS:
        raise ValueError(f"{len(items)} symbols: allowed at most {MAX_SYMBOLS}")
    repeated = sorted({item for item in items if items.count(item) > 1})
    if repeated:
        raise ValueError(f"{', '.join(repeated)} given twice: allowed once each")
    return tuple(items)


_STRATEGY_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
_PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
STRATEGY_FORMAT = "strategies separated by ';', each name or name:param=value,... (supertrend:period=10)"


def strategy_specs(text: object) -> tuple[str, ...]:
    """``name:k=v,k=v`` specs separated by ``;``. The plugin registry checks names and bounds later;
    here: the syntax, each parameter once, each configured strategy once."""
    specs = split_list(text, ";")
    if not specs:
        raise ValueError(f"no strategy: allowed {STRATEGY_FORMAT}")
    normalised = []
    for spec in specs:
        name, _, args = spec.partition(":")
        name = name.strip()
        if not _STRATEGY_NAME.match(name):
            raise ValueError(f"{name!r} is not a strategy name: allowed {STRATEGY_FORMAT}")
        params: dict[str, str] = {}
        for item in filter(None, (part.strip() for part in args.split(","))):
            key, sep, value = (part.strip() for part in item.partition("="))
            if not sep or not _PARAM_NAME.match(key) or not value:
                raise ValueError(f"malformed parameter {item!r} in {spec!r}: allowed name=value")
            if key in params:
                raise ValueError(f"parameter {key!r} is given twice in {spec!r}: allowed once each")
            params[key] = value
        normalised.append(f"{name}:{','.join(f'{k}={v}' for k, v in params.items())}" if params else name)
    repeated = sorted({spec for spec in normalised if normalised.count(spec) > 1})
    if repeated:
        raise ValueError(f"{repeated[0]!r} is configured twice: allowed once each")
    return tuple(normalised)


# Telegram ids have at most 52 significant bits (Bot API, "Chat" and "User" objects).
_ID_LIMIT = 2**52


def chat_ids(text: object) -> tuple[int, ...]:
    return _ids(text, "chat ids (whole numbers; groups are negative)", negative=True)


def user_ids(text: object) -> tuple[int, ...]:
    return _ids(text, "user ids (positive whole numbers)", negative=False)


_WHOLE_NUMBER = re.compile(r"^-?[0-9]{1,20}$")  # ASCII digits: int() would also read "٣" or "３" as 3


def _ids(text: object, what: str, *, negative: bool) -> tuple[int, ...]:
    out: list[int] = []
    for item in split_list(text):
        if not _WHOLE_NUMBER.match(item):
            raise ValueError(f"{item[:24]!r} is not an id: allowed comma-separated {what}")
        value = int(item)
        if value == 0 or abs(value) >= _ID_LIMIT or (value < 0 and not negative):
            raise ValueError(f"{item!r} is not an id: allowed comma-separated {what}")
        if value not in out:
            out.append(value)
    return tuple(out)


# ---------------------------------------------------------------------- URLs

DATABASE_FORMAT = (
    "sqlite:///PATH/TO/FILE.db or postgresql://USER:PASSWORD@HOST:PORT/DATABASE (Heroku's postgres:// too)"
)
_POSTGRES_SCHEMES = ("postgres://", "postgresql://", "postgresql+psycopg://")


def mask_url(text: str) -> str:
    """``text`` with any password between ``user:`` and ``@`` replaced by ``***``."""
    return re.sub(r"^([^@/]*//[^:/@]*:)[^@]*@", r"\1***@", text.strip())


def url_password(text: str) -> str:
    found = re.match(r"^[^@/]*//[^:/@]*:([^@]*)@", text.strip())
    return found.group(1) if found else ""


def database_url(text: object) -> str:
    """A usable database URL, normalised for SQLAlchemy: Heroku's ``postgres://`` becomes
    ``postgresql+psycopg://``. Refuses what would lose data or hang: no file, an in-memory
    SQLite (gone at exit, invisible to a second process), a Postgres URL without a database name."""
    url = str(text).strip()
    if url.startswith("sqlite:"):
        parts = urlsplit(url)
        path = url[len("sqlite:///") :].split("?")[0] if url.startswith("sqlite:///") else ""
        if not path or path.endswith("/"):
            raise ValueError(f"no database file named: allowed {DATABASE_FORMAT}")
        if path == ":memory:" or "memory" in parse_qs(parts.query).get("mode", []):
            raise ValueError(
                "an in-memory database is lost at exit: allowed a file, e.g. sqlite:///tradebot.db"
            )
        return url
    for prefix in _POSTGRES_SCHEMES:
        if url.startswith(prefix):
            normalised = "postgresql+psycopg://" + url[len(prefix) :]
            parts = urlsplit(normalised)
            try:
                parts.port  # noqa: B018  (raises on a port that is not a number)
            except ValueError:
                raise ValueError(f"the port is not a number: allowed {DATABASE_FORMAT}") from None
            if not parts.path.strip("/"):
                raise ValueError(
                    "no database name: Postgres would silently use the server's default database; "
                    "allowed a URL ending in /DATABASE"
                )
            if not parts.hostname and "host" not in parse_qs(parts.query):
                raise ValueError(f"no host: allowed {DATABASE_FORMAT}")
            return normalised
    scheme = url.split("://")[0] if "://" in url else ""
    reason = f"{scheme} is not supported" if scheme else "not a database URL"
    raise ValueError(f"{reason}: allowed {DATABASE_FORMAT}")


def _url(text: object, schemes: tuple[str, ...], example: str, *, empty_ok: bool) -> str:
    url = str(text).strip()
    if not url and empty_ok:
        return ""
    parts = urlsplit(url)
    valid = parts.scheme in schemes and bool(parts.hostname) and not re.search(r"\s", url)
    try:
        parts.port  # noqa: B018
    except ValueError:
        valid = False
    if not valid:
        allowed = " or ".join(f"{s}://" for s in schemes)
        raise ValueError(f"allowed an {allowed} URL such as {example}" + (", or empty" if empty_ok else ""))
    return url


def http_url(empty_ok: bool, example: str) -> Any:
    return BeforeValidator(lambda text: _url(text, ("http", "https"), example, empty_ok=empty_ok))


def websocket_url(text: object) -> str:
    return _url(text, ("ws", "wss"), "wss://stream.data.alpaca.markets", empty_ok=True)


# Telegram delivers webhooks over HTTPS to ports 443, 80, 88 or 8443 only (Bot API, setWebhook).
WEBHOOK_PORTS = (443, 80, 88, 8443)


def webhook_url(text: object) -> str:
    url = _url(text, ("https",), "https://my-tradebot.herokuapp.com/telegram", empty_ok=True)
    if url and (urlsplit(url).port or 443) not in WEBHOOK_PORTS:
        raise ValueError(
            f"Telegram posts webhooks only to ports {', '.join(map(str, WEBHOOK_PORTS))}: allowed those"
        )
    return url


# ---------------------------------------------------------------------- the daily summary time

SUMMARY_FORMAT = "HH:MM (UTC), HH:MM Area/City (16:15 America/New_York) or off"


def daily_time(text: object) -> SummaryTime | None:
    """DAILY_SUMMARY_TIME, parsed by ``bot.summary`` (the one parser), with the loader's wording."""
    if text is None or isinstance(text, SummaryTime):
        return text
    try:
        return parse_summary_time(str(text))
    except ValueError as exc:
        zone = "unknown time zone" in str(exc)
        raise ValueError(("an unknown time zone: " if zone else "") + f"allowed {SUMMARY_FORMAT}") from None


def summary_text(value: SummaryTime | None) -> str:
    if value is None:
        return "off"
    return f"{value.at:%H:%M}" + (f" {value.zone.key}" if value.zone else "")


Symbols = Annotated[tuple[str, ...], BeforeValidator(symbols)]
StrategySpecs = Annotated[tuple[str, ...], BeforeValidator(strategy_specs)]
ChatIds = Annotated[tuple[int, ...], BeforeValidator(chat_ids)]
UserIds = Annotated[tuple[int, ...], BeforeValidator(user_ids)]
DatabaseUrl = Annotated[str, BeforeValidator(database_url)]
WebsocketUrl = Annotated[str, BeforeValidator(websocket_url)]
WebhookUrl = Annotated[str, BeforeValidator(webhook_url)]
DailyTime = Annotated[
    SummaryTime | None,
    PlainValidator(daily_time),
    PlainSerializer(summary_text),
]


# Ports below 1024 are privileged (binding them needs root, which a trading bot should not have),
# and no platform hands one out as $PORT.
LOWEST_PORT = 1024
PORT_RANGE = f"{LOWEST_PORT} to 65535"


def port_number(text: object) -> int:
    """PORT: ASCII digits, 1024 to 65535."""
    value = str(text).strip()
    if not re.fullmatch(r"[0-9]{1,5}", value) or not LOWEST_PORT <= int(value) <= 65_535:
        raise ValueError(f"allowed a port number from {PORT_RANGE}")
    return int(value)


def web_port(text: object) -> str:
    """TRADEBOT_WEB_PORT: ``auto``, ``off``, or a port number (0: any free one), kept as text."""
    value = str(text).strip().lower() or "auto"
    if value in {"auto", "off"}:
        return value
    if not re.fullmatch(r"[0-9]{1,5}", value) or not (int(value) == 0 or LOWEST_PORT <= int(value) <= 65_535):
        raise ValueError(f"allowed auto, off, 0 (any free port) or a port number from {PORT_RANGE}")
    return str(int(value))


WEB_HOST_FORMAT = "auto, localhost, or an IP address of this machine (127.0.0.1, 0.0.0.0, ::)"


def web_host(text: object) -> str:
    """TRADEBOT_WEB_HOST: ``auto``, ``localhost`` or an IP address. A host name is refused: what
    it resolves to can change, and the loopback-only rule (no password) must hold for sure."""
    import ipaddress

    value = str(text).strip()
    if not value or value.lower() == "auto":
        return "auto"
    if value.lower() == "localhost":
        return "localhost"
    try:
        return str(ipaddress.ip_address(value))  # ASCII digits only: the ipaddress module insists
    except ValueError:
        raise ValueError(f"allowed {WEB_HOST_FORMAT}") from None


def web_user(text: object) -> str:
    """TRADEBOT_WEB_USER: a name shown in the audit log, one line of printable characters."""
    value = str(text)
    if value != value.strip() or not value.isprintable() or not 1 <= len(value) <= 40:
        raise ValueError("allowed 1 to 40 printable characters, no tab, newline or spaces at either end")
    return value


# ---------------------------------------------------------------------- the proxy in front

PROXY_FORMAT = (
    "auto ($PORT set: the platform's router, e.g. Heroku's), none, or the proxies' IP addresses "
    "or networks, comma-separated (127.0.0.1, 10.0.0.0/8)"
)


def web_proxy(text: object) -> str:
    """TRADEBOT_WEB_PROXY: whose X-Forwarded-For to believe, kept as normalised text."""
    import ipaddress

    value = str(text).strip().lower() or "auto"
    if value in {"auto", "none"}:
        return value
    networks = []
    for item in split_list(value):
        try:
            networks.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise ValueError(f"{item[:24]!r} is not an address: allowed {PROXY_FORMAT}") from None
    return ",".join(networks)


def web_token(value: Any) -> Any:
    """An API token is a password a script sends: empty, or long enough not to be guessed."""
    secret = value.get_secret_value()
    if secret and len(secret.strip()) < 16:
        raise ValueError(
            "allowed: empty, or at least 16 characters (python -c 'import secrets; print(secrets.token_urlsafe())')"
        )
    return value
