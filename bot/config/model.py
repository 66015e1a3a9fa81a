"""``Settings``: every tradebot variable, with its type, bounds or choices, default and help.

This class is the one definition: the loader validates against it, ``tradebot config`` prints it,
``tradebot config --example`` writes ``.env.example`` from it (a test keeps the two equal) and
``tradebot doctor`` checks it. The attribute is the variable's name in lower case
(``settings.tradebot_symbols`` is ``TRADEBOT_SYMBOLS``); fields are grouped in ``.env.example``
in the order they are declared here.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, SecretStr
from pydantic import ValidationInfo as _Info

from bot.backtest.dask_address import DASK_ADDRESS_FORMAT, scheduler_address
from bot.config.types import (
    PORT_RANGE,
    PROXY_FORMAT,
    WEB_HOST_FORMAT,
    ChatIds,
    ConsoleMode,
    DailyTime,
    DatabaseUrl,
    DataFeed,
    LogFormat,
    LogLevel,
    Source,
    StrategySpecs,
    Symbols,
    TimeframeChoice,
    UserIds,
    WebhookUrl,
    WebsocketUrl,
    http_url,
    port_number,
    url_password,
    web_host,
    web_port,
    web_proxy,
    web_token,
    web_user,
)
from bot.risk import BOUNDS

# Bars held in memory over all symbols (TRADEBOT_HISTORY_BARS x symbols): ~120 bytes a bar, so
# about 120 MB at most, which leaves room on a 512 MB dyno (issue 12: 1,000,000 bars x 5 symbols
# needed 610 MB).
MAX_CACHED_BARS = 1_000_000


def var(
    default: str, help: str, *, group: str, unit: str = "", allowed: str = "", example: bool = True
) -> Any:
    """A variable: its default as it would be written in ``.env``, a one-line help, its
    ``.env.example`` group; ``unit`` and ``allowed`` complete the message shown for a bad value.
    ``example=False``: ``.env.example`` shows it commented out, because setting it, even to its
    default, changes what tradebot does (``PORT`` makes the dashboard listen on every address;
    ``LOG_LEVEL`` shows the full log at a terminal): the example copied to ``.env`` must run as
    if there were no ``.env``."""
    return Field(
        default,
        description=help,
        json_schema_extra={"group": group, "unit": unit, "allowed": allowed, "example": example},
    )


def _risk_bounds(value: float, info: _Info) -> float:
    low, high = BOUNDS[str(info.field_name)]
    if not low <= value <= high:  # also refuses NaN
        raise ValueError(f"allowed a number from {low:g} to {high:g} (the bounds /risk set allows)")
    return value


def _choice(kind: type) -> Any:
    return BeforeValidator(kind.parse)  # type: ignore[attr-defined]


RiskPct = Annotated[float, AfterValidator(_risk_bounds)]
RiskCount = Annotated[int, AfterValidator(_risk_bounds)]


class Settings(BaseModel):
    """Parsed, validated configuration. Build it with ``Settings.load()`` (environment over
    ``.env``) or ``Settings.from_mapping({...})`` (tests); it never changes afterwards."""

    model_config = ConfigDict(
        frozen=True,
        alias_generator=str.upper,
        populate_by_name=True,
        validate_default=True,
        extra="ignore",
        hide_input_in_errors=True,
    )

    # ------------------------------------------------------------------ General
    tradebot_symbols: Symbols = var(
        "AAPL,MSFT,SPY,BTC/USD,ETH/USD",
        "Symbols to trade, comma-separated, at most 1,000: stock tickers (AAPL, BRK.B) and crypto pairs BASE/QUOTE (BTC/USD)",
        group="General",
    )
    tradebot_timeframe: Annotated[TimeframeChoice, _choice(TimeframeChoice)] = var(
        "1m", "Bar length the strategies run on: 1m, 5m, 15m, 30m, 1h, 4h or 1d", group="General"
    )
    tradebot_strategies: StrategySpecs = var(
        "supertrend:period=10,multiplier=3",
        "Strategies to run, separated by ';', each name:param=value,... (each parameter once)",
        group="General",
    )
    tradebot_interval_seconds: Annotated[float, Field(ge=1, le=86_400)] = var(
        "60",
        "Seconds between engine cycles (clock seconds: divided by TRADEBOT_SIM_SPEED in the simulator)",
        group="General",
        unit="seconds",
    )
    tradebot_extended_hours_bars: bool = var(
        "off",
        "Stock strategies see pre-market and after-hours bars too (on); off: regular hours only, "
        "09:30-16:00 New York (bars straddling the open or close dropped)",
        group="General",
    )
    tradebot_history_bars: Annotated[int, Field(ge=10, le=10_000)] = var(
        "300",
        "Bars of history kept per symbol in memory (the bounded cache), 10 to 10,000",
        group="General",
        unit="bars",
    )
    tradebot_confirm_seconds: Annotated[float, Field(ge=5, le=600)] = var(
        "60",
        "Seconds a dangerous command's question (/buy, /sell, /flatten, /cancel, /risk set) waits for "
        "/confirm or its button, 5 to 600",
        group="General",
        unit="seconds",
    )
    tradebot_console: Annotated[ConsoleMode, _choice(ConsoleMode)] = var(
        "auto", "Read commands from standard input: auto (when no Telegram token), on, off", group="General"
    )
    database_url: DatabaseUrl = var(
        "sqlite:///tradebot.db",
        "Database URL: SQLite file by default; Heroku's postgres:// URLs are accepted",
        group="General",
    )
    log_level: Annotated[LogLevel, _choice(LogLevel)] = var(
        "INFO",
        "Log level: DEBUG, INFO, WARNING or ERROR; unset, a terminal shows only warnings and the full log "
        "goes to tradebot.log",
        group="General",
        example=False,
    )
    log_format: Annotated[LogFormat, _choice(LogFormat)] = var(
        "text", "Log format: text or json (one JSON object per line)", group="General"
    )
    tradebot_auto_migrate: bool = var(
        "true",
        "Upgrade the database schema at start; false: refuse to start until `tradebot db upgrade` has run",
        group="General",
    )
    tradebot_lease_seconds: Annotated[float, Field(ge=3, le=600)] = var(
        "30",
        "One trading instance per database: a holder that stops renewing its lease (every third of this) "
        "is replaced after this many seconds",
        group="General",
        unit="seconds",
    )

    # ------------------------------------------------------------------ Telegram
    telegram_bot_token: SecretStr = var(
        "",
        "Bot token from @BotFather; when set, `tradebot run` takes commands and sends alerts on Telegram",
        group="Telegram",
    )
    telegram_allowed_chat_ids: ChatIds = var(
        "",
        "Chats that receive alerts and may command, comma-separated (groups are negative); empty: none",
        group="Telegram",
    )
    telegram_allowed_user_ids: UserIds = var(
        "",
        "Users who may command inside an allowed group chat, comma-separated; empty: nobody in groups",
        group="Telegram",
    )
    telegram_base_url: Annotated[str, http_url(True, "http://127.0.0.1:8081/bot")] = var(
        "",
        "Bot API base URL, as python-telegram-bot's base_url (e.g. http://127.0.0.1:8081/bot); empty: Telegram's",
        group="Telegram",
    )
    telegram_webhook_url: WebhookUrl = var(
        "",
        "Public HTTPS URL Telegram posts updates to (webhook mode: the web server receives them on its "
        "port); empty: long polling",
        group="Telegram",
    )
    telegram_alert_orders: bool = var("true", "Alert when an order is placed or canceled", group="Telegram")
    telegram_alert_fills: bool = var("true", "Alert when an order fills", group="Telegram")
    telegram_alert_rejections: bool = var(
        "true",
        "Alert when an order is rejected or an entry is blocked by a risk check (with the reason)",
        group="Telegram",
    )
    telegram_alert_stops: bool = var("true", "Alert when a stop-loss or take-profit is hit", group="Telegram")
    telegram_alert_errors: bool = var(
        "true", "Alert on strategy errors, broker errors and reconciliation differences", group="Telegram"
    )
    telegram_alert_data: bool = var("true", "Alert on market data outages and recoveries", group="Telegram")
    telegram_alert_state: bool = var(
        "true", "Alert on start, stop, pause, resume and risk limit changes", group="Telegram"
    )
    telegram_alert_security: bool = var(
        "true", "Alert when someone outside the allow-lists tries to use the bot", group="Telegram"
    )
    daily_summary_time: DailyTime = var(
        "21:00",
        "Daily summary time, HH:MM in UTC or HH:MM Area/City (e.g. 16:15 America/New_York); off: none",
        group="Telegram",
    )

    # ------------------------------------------------------------------ Simulator
    tradebot_sim_speed: Annotated[float, Field(ge=1, le=3_600)] = var(
        "60",
        "Simulated market only: clock speed-up for `tradebot run` (60 = one 1m bar per second; 1 = real time)",
        group="Simulator",
        unit="times real time",
    )
    tradebot_sim_cash: Annotated[float, Field(ge=100, le=1_000_000_000)] = var(
        "100000",
        "Simulated market only: starting cash of the simulated account, USD",
        group="Simulator",
        unit="USD",
    )
    tradebot_sim_commission: Annotated[float, Field(ge=0, le=0.05)] = var(
        "0",
        "Simulated market only: commission as a fraction of notional (0.001 = 0.1 %)",
        group="Simulator",
        unit="(a fraction of notional)",
    )

    # ------------------------------------------------------------------ Risk (bounds: bot.risk.BOUNDS)
    risk_per_trade_pct: RiskPct = var(
        "2", "Equity risked per entry, in percent: size = equity x this / |entry - stop|", group="Risk"
    )
    max_position_pct: RiskPct = var("20", "Largest position value, in percent of equity", group="Risk")
    stop_loss_pct: RiskPct = var(
        "2", "Stop-loss attached to every entry, in percent below the entry price", group="Risk"
    )
    take_profit_pct: RiskPct = var(
        "4", "Take-profit attached to every entry, in percent above the entry price", group="Risk"
    )
    max_portfolio_risk_pct: RiskPct = var(
        "6", "Sum over open positions of the loss if every stop were hit, in percent of equity", group="Risk"
    )
    max_open_trades: RiskCount = var("5", "Most positions open at once", group="Risk")
    daily_loss_limit_pct: RiskPct = var(
        "5",
        "New entries stop for the rest of the UTC day once equity is this many percent below the day's start",
        group="Risk",
    )

    # ------------------------------------------------------------------ Alpaca
    alpaca_api_key: SecretStr = var(
        "", "Alpaca API key id; when set, tradebot trades on Alpaca instead of the simulator", group="Alpaca"
    )
    alpaca_api_secret: SecretStr = var("", "Alpaca API secret key", group="Alpaca")
    alpaca_paper: bool = var(
        "true", "Paper trading (true) or live money (false: must be set explicitly)", group="Alpaca"
    )
    alpaca_trading_url: Annotated[str, http_url(True, "http://127.0.0.1:8080")] = var(
        "",
        "Override of the trading API origin, e.g. http://127.0.0.1:8080 (no /v2); empty: Alpaca's paper or live",
        group="Alpaca",
    )
    alpaca_data_url: Annotated[str, http_url(True, "https://data.alpaca.markets")] = var(
        "",
        "Override of the market data API origin (no /v2); empty: https://data.alpaca.markets",
        group="Alpaca",
    )
    alpaca_stream_url: WebsocketUrl = var(
        "",
        "Override of the market data stream origin, e.g. ws://127.0.0.1:8765 (/v2/<feed> and /v1beta3/crypto/us are appended)",
        group="Alpaca",
    )
    alpaca_data_feed: Annotated[DataFeed, _choice(DataFeed)] = var(
        "iex", "Stock data feed: iex (free plans), sip (paid), delayed_sip or otc", group="Alpaca"
    )
    alpaca_crypto_fee_bps: Annotated[float, Field(ge=0, le=100)] = var(
        "25",
        "Alpaca's crypto fee in basis points, booked on every crypto fill (Alpaca's orders show none): "
        "25 at tier 1; set your tier's rate",
        group="Alpaca",
        unit="basis points",
    )
    alpaca_streaming: bool = var(
        "false",
        "Live streams: evaluate strategies as bars close and record fills from trade updates at once",
        group="Alpaca",
    )
    emergency_exit: bool = var(
        "true",
        "Sell a position at market when no stop can be placed for it at Alpaca after the retries (alerted either way)",
        group="Alpaca",
    )
    polygon_api_key: SecretStr = var(
        "",
        "Polygon API key; when set, Polygon's aggregates serve bars Alpaca's data API could not",
        group="Alpaca",
    )
    polygon_base_url: Annotated[str, http_url(False, "https://api.polygon.io")] = var(
        "https://api.polygon.io", "Polygon API origin (override for tests or a proxy)", group="Alpaca"
    )

    # ------------------------------------------------------------------ Backtest
    tradebot_dask_scheduler: Annotated[str, BeforeValidator(scheduler_address)] = var(
        "",
        "Dask scheduler that runs tradebot backtest sweeps and walk-forward runs, e.g. tcp://10.0.0.5:8786 "
        "(needs pip install 'tradebot[cluster]'); empty: local processes",
        group="Backtest",
        allowed=DASK_ADDRESS_FORMAT,
    )
    tradebot_data_dir: Annotated[str, Field(min_length=1, max_length=4096)] = var(
        "tradebot-data",
        "Folder of the local bar store (one Parquet file per symbol and timeframe) that tradebot data "
        "download fills and backtests with --symbol read first",
        group="Backtest",
    )

    # ------------------------------------------------------------------ Research
    tradebot_research: bool = var(
        "true",
        "Backtests, sweeps and walk-forward runs from the dashboard's research page (never on a standby "
        "instance)",
        group="Research",
    )
    tradebot_research_dir: Annotated[str, Field(min_length=1, max_length=4096)] = var(
        "tradebot-research",
        "Folder where each research job from the dashboard keeps its outputs (JSON, HTML report, text); "
        "the 20 newest are kept",
        group="Research",
    )
    tradebot_research_csv_dir: Annotated[str, Field(max_length=4096)] = var(
        "",
        "Folder of CSV files the research page may backtest (only files inside it, never a path outside); "
        "empty: none",
        group="Research",
    )
    tradebot_research_memory_mb: Annotated[int, Field(ge=384, le=1_048_576)] = var(
        "1024",
        "Memory cap of a research job: each of its processes' address space (RLIMIT_AS; the libraries alone "
        "map about 300 MB), and their resident memory added up; beyond it the job stops with one line",
        group="Research",
        unit="MB",
    )
    tradebot_research_workers: Annotated[int, Field(ge=1, le=64)] = var(
        "1",
        "Processes a research sweep or walk-forward runs on, each at the lowest CPU priority (nice 19)",
        group="Research",
    )

    # ------------------------------------------------------------------ Web
    port: Annotated[int, BeforeValidator(port_number)] = var(
        "8443",
        "Port the platform tells the web process to listen on (Heroku, Render and Railway set it; leave it "
        "unset on your machine): the web server's port, on every address, when TRADEBOT_WEB_PORT=auto",
        group="Web",
        allowed=f"a port number from {PORT_RANGE}",
        example=False,
    )
    tradebot_web_port: Annotated[str, BeforeValidator(web_port)] = var(
        "auto",
        "Dashboard, API and Telegram webhook port: auto ($PORT when set, else 8000), a number (0: any "
        "free port), or off",
        group="Web",
        allowed=f"auto, off, 0 (any free port) or a port number from {PORT_RANGE}",
    )
    tradebot_web_host: Annotated[str, BeforeValidator(web_host)] = var(
        "auto",
        "Address the web server binds: auto (0.0.0.0 when $PORT is set, else 127.0.0.1); anything but "
        "loopback needs TRADEBOT_WEB_PASSWORD (12+ characters) or TRADEBOT_WEB_TOKEN",
        group="Web",
        allowed=WEB_HOST_FORMAT,
    )
    tradebot_web_proxy: Annotated[str, BeforeValidator(web_proxy)] = var(
        "auto",
        "Whose X-Forwarded-For names the client (for login limits): auto (the platform's router when "
        "$PORT is set), none, or your proxies' addresses (127.0.0.1, 10.0.0.0/8)",
        group="Web",
        allowed=PROXY_FORMAT,
    )
    tradebot_web_user: Annotated[str, BeforeValidator(web_user)] = var(
        "trader",
        "Name the dashboard records with the actions taken from it (e.g. 'paused by trader (web)')",
        group="Web",
    )
    tradebot_web_password: SecretStr = var(
        "",
        "Dashboard login password, at least 12 characters unless the address is loopback; empty: "
        "loopback only, with a one-time login link printed at start",
        group="Web",
    )
    tradebot_web_token: Annotated[SecretStr, AfterValidator(web_token)] = var(
        "",
        "API token for scripts (Authorization: Bearer ...), at least 16 characters; also accepted on the "
        "login page",
        group="Web",
        allowed="empty, or at least 16 characters",
    )

    # ------------------------------------------------------------------ Developer
    tradebot_pure_python: bool = var(
        "false",
        "Use the pure-Python indicator kernels instead of the C extension (same results, slower)",
        group="Developer",
    )

    # Where each value came from; set by the loader.
    _sources: dict[str, Source] = PrivateAttr(default_factory=dict)

    # ------------------------------------------------------------------ reading it

    @classmethod
    def load(cls, environ: Any = None, env_file: Any = ".env") -> Settings:
        """Read ``environ`` (default ``os.environ``) over the ``.env`` file, which never overrides it.
        Raises ``ConfigError`` with one line per invalid variable."""
        from bot.config.loading import load

        return load(environ, env_file)

    @classmethod
    def from_mapping(cls, source: Any) -> Settings:
        """Validate explicit ``{NAME: text}`` values (counted as set in the environment)."""
        from bot.config.loading import from_mapping

        return from_mapping(source)

    def source(self, name: str) -> Source:
        """Where ``NAME``'s value came from: default, .env or environment."""
        return self._sources.get(name.upper(), Source.DEFAULT)

    def origin(self, name: str) -> str:
        """``NAME=value`` and where it came from, for a message about a refusal it caused:
        ``PORT='8443' (from .env)``, ``TRADEBOT_WEB_HOST='auto' (the default)``; secrets masked."""
        from bot.config.loading import shown, shown_value

        value = shown_value(name.upper(), shown(getattr(self, name.lower()), name.upper()))
        source = self.source(name)
        where = {
            Source.DEFAULT: "the default",
            Source.DOTENV: "from .env",
            Source.ENVIRONMENT: "from the environment",
        }[source]
        return f"{name.upper()}={value} ({where})"

    def is_set(self, name: str) -> bool:
        """Was ``NAME`` given (environment or ``.env``), rather than left at its default?"""
        return self.source(name) is not Source.DEFAULT

    @property
    def telegram_enabled(self) -> bool:
        return bool(self.telegram_bot_token.get_secret_value())

    @property
    def alpaca_enabled(self) -> bool:
        return bool(self.alpaca_api_key.get_secret_value())

    def wants_console(self) -> bool:
        """Read commands from standard input? ``auto``: when there is no Telegram token."""
        if self.tradebot_console is ConsoleMode.AUTO:
            return not self.telegram_enabled
        return self.tradebot_console is ConsoleMode.ON

    def secrets(self) -> list[str]:
        """Every secret that is set, the database password included, for the log redaction filter."""
        values = [getattr(self, name).get_secret_value() for name in secret_fields()]
        return [v for v in [*values, url_password(self.database_url)] if v]

    def with_overrides(self, **overrides: Any) -> Settings:
        """A copy with typed values replaced (tests); the sources are kept."""
        copy = self.model_copy(update=overrides)
        copy._sources = dict(self._sources)
        return copy

    def __repr_args__(self) -> Any:
        from bot.config.types import mask_url

        for name, value in super().__repr_args__():
            yield name, mask_url(value) if name == "database_url" else value


def secret_fields() -> tuple[str, ...]:
    return tuple(name for name, f in Settings.model_fields.items() if f.annotation is SecretStr)
