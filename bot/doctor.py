"""``tradebot doctor``: is this deployment able to trade, and if not, what to change.

Checks, each printed as one line (ok, warn or FAIL) with a "fix:" line under every problem:
configuration (the console setting, and the dashboard's address, port, password or token as
``run`` checks them before it starts), web (that port free now, the Telegram webhook reaching the
server that receives it), database (reachable, schema revision, who holds the trading lease),
broker (Alpaca keys accepted, or the simulator), Telegram (token accepted, webhook as
configured) and research (``TRADEBOT_DASK_SCHEDULER``, when set, answering within 15 s). What ``run``
refuses, the doctor fails: it never says all is well for a configuration ``run`` will not start.
Every network call has a time limit. Every line passes through the log redaction filter, so no
configured secret (and nothing shaped like a Telegram token) is ever printed.

Exit status 2 when a variable has a value tradebot cannot use (one line each, as ``run`` and
``tick`` refuse it; nothing else is checked), 1 if any other check failed, else 0.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from bot.config import ConfigError, Settings, checks, unknown_names
from bot.config.types import ConsoleMode
from bot.logs import RedactingFilter, setup_logging

if TYPE_CHECKING:
    from bot.strategy import Strategy
    from bot.web.config import WebConfig

OK, WARN, FAIL = "ok", "warn", "FAIL"
NETWORK_TIMEOUT = 10.0
EXIT_CONFIG = 2
DASK_BOUND = 15.0  # as bot.backtest.cluster.CONNECT_TIMEOUT: doctor waits as long as the command would


@dataclass(frozen=True, slots=True)
class Check:
    area: str  # configuration, web, database, broker, telegram, research
    level: str  # ok, warn, FAIL
    message: str
    fix: str = ""


def run_doctor(
    env_file: str | Path | None = ".env",
    environ: Mapping[str, str] | None = None,
    out: TextIO | None = None,
    timeout: float = NETWORK_TIMEOUT,
) -> int:
    out = out or sys.stdout
    from bot.plugins import load_registry

    registry = load_registry()
    try:
        settings = Settings.load(environ, env_file=env_file)
        strategies = checks.strategies(settings, registry)
    except ConfigError as exc:  # the lines mask secrets and the database password themselves
        for line in exc.lines:
            out.write(RedactingFilter([]).redact(f"{FAIL:<5} {'configuration':<13} {line}") + "\n")
        out.flush()
        return EXIT_CONFIG
    if settings.tradebot_pure_python:
        from bot import kernels

        kernels.use_pure_python()
    redact = RedactingFilter(settings.secrets()).redact
    setup_logging("ERROR", "text", settings.secrets())  # library warnings stay out of the report
    found = check_configuration(settings, environ, env_file, strategies, registry.errors)
    found += check_listening(settings)
    found += _bounded("database", lambda: check_database(settings), timeout * 2)
    found += _bounded("broker", lambda: check_broker(settings, timeout), timeout * 2)
    found += _bounded("telegram", lambda: check_telegram(settings, timeout), timeout * 2)
    found += _bounded("research", lambda: check_dask(settings), DASK_BOUND + 5)
    _print(out, redact, found)
    return 1 if any(c.level == FAIL for c in found) else 0


def _print(out: TextIO, redact: Callable[[str], str], checks: list[Check]) -> None:
    for check in checks:
        out.write(redact(f"{check.level:<5} {check.area:<13} {check.message}") + "\n")
        if check.fix:
            out.write(redact(f"{'':<5} {'':<13} fix: {check.fix}") + "\n")
    counts = {level: sum(c.level == level for c in checks) for level in (OK, WARN, FAIL)}
    out.write(f"{counts[OK]} ok, {counts[WARN]} warnings, {counts[FAIL]} failed\n")
    out.flush()


def _bounded(area: str, check: Callable[[], list[Check]], seconds: float) -> list[Check]:
    """Run a check that may hang on the network (a dropped TCP SYN waits minutes) within a bound."""
    result: list[list[Check]] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            result.append(check())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, name=f"doctor-{area}", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        return [Check(area, FAIL, f"no answer within {seconds:.0f} s", "check the host name and the network")]
    if errors:
        exc = errors[0]
        return [Check(area, FAIL, f"check crashed: {type(exc).__name__}: {exc}", "report this as a bug")]
    return result[0]


# ---------------------------------------------------------------------- configuration


def check_configuration(
    settings: Settings,
    environ: Mapping[str, str] | None = None,
    env_file: str | Path | None = None,
    strategies: Sequence[Strategy] = (),
    plugin_errors: Sequence[str] = (),
) -> list[Check]:
    """What the variables say together. Each value was already validated when it was read."""
    import os

    from bot import kernels

    env = os.environ if environ is None else environ
    area = "configuration"
    problems = [Check(area, WARN, line, "") for line in unknown_names(environ, env_file)]
    problems += [
        Check(area, WARN, error, "`tradebot strategies` lists what is installed") for error in plugin_errors
    ]
    key, secret = settings.alpaca_enabled, bool(settings.alpaca_api_secret.get_secret_value())
    if key != secret:
        problems.append(
            Check(
                area,
                FAIL,
                "only one of ALPACA_API_KEY and ALPACA_API_SECRET is set",
                "set both (Alpaca dashboard, API keys) or neither (simulated market)",
            )
        )
    if key and not settings.alpaca_paper:
        problems.append(
            Check(area, WARN, "ALPACA_PAPER=false: this trades the LIVE account with real money", "")
        )
    token = settings.telegram_enabled
    if token and not settings.telegram_allowed_chat_ids:
        problems.append(
            Check(
                area,
                WARN,
                "TELEGRAM_BOT_TOKEN is set but TELEGRAM_ALLOWED_CHAT_IDS is empty: nobody may command, no alerts",
                "send /start to the bot, then put your chat id in TELEGRAM_ALLOWED_CHAT_IDS",
            )
        )
    if env.get("DYNO") and settings.database_url.startswith("sqlite"):
        problems.append(
            Check(
                area,
                FAIL,
                "DATABASE_URL is a SQLite file on Heroku, whose disk is wiped at every restart: state would be lost",
                "heroku addons:create heroku-postgresql:essential-0 (it sets DATABASE_URL)",
            )
        )
    if env.get("DYNO") and settings.tradebot_console is ConsoleMode.ON:
        problems.append(
            Check(
                area,
                FAIL,
                f"{settings.origin('TRADEBOT_CONSOLE')} turns the console on, but a dyno has no standard "
                "input: `tradebot run` would stop at once",
                "heroku config:unset TRADEBOT_CONSOLE (auto trades on without a console) or set it to off",
            )
        )
    webhook = settings.telegram_webhook_url
    if webhook and not token:
        problems.append(
            Check(
                area,
                WARN,
                "TELEGRAM_WEBHOOK_URL is set but TELEGRAM_BOT_TOKEN is not: no Telegram updates are received",
                "set TELEGRAM_BOT_TOKEN, or empty TELEGRAM_WEBHOOK_URL",
            )
        )
    problems += check_web(settings)
    if not any(p.level == FAIL for p in problems):
        mode = ("Alpaca " + ("paper" if settings.alpaca_paper else "LIVE")) if key else "simulated market"
        summary = (
            f"{mode}; {len(settings.tradebot_symbols)} symbols on {settings.tradebot_timeframe} bars; "
            f"strategies {', '.join(s.label for s in strategies)}; "
            f"{_front_ends(settings)}; "
            f"{kernels.implementation()} indicator kernels"
        )
        problems.insert(0, Check(area, OK, summary))
    return problems


def _front_ends(settings: Settings) -> str:
    """Telegram, and what ``run`` does with standard input (TRADEBOT_CONSOLE)."""
    mode = settings.tradebot_console
    if mode is ConsoleMode.ON:
        console = "the console (the end of standard input stops the run)"
    elif mode is ConsoleMode.OFF or settings.telegram_enabled:
        console = ""
    else:
        console = "the console on standard input (with none, it trades on without one)"
    shown = [name for name in ("Telegram" if settings.telegram_enabled else "", console) if name]
    return "front end " + (" and ".join(shown) or "none but the dashboard (TRADEBOT_CONSOLE=off)")


def check_web(settings: Settings) -> list[Check]:
    """What ``tradebot run`` checks before it binds the dashboard: credentials and password
    strength on a public address (``bot.web.config``), and whose X-Forwarded-For it believes."""
    from bot.web.config import WebConfig, WebConfigError

    area = "configuration"
    try:
        config = WebConfig.from_settings(settings)
    except WebConfigError as exc:
        return [
            Check(
                area,
                FAIL,
                f"tradebot run would refuse to start: {exc}",
                "change the variable it names (`tradebot config` shows each value and where it came from); "
                "where only `tradebot tick` runs, TRADEBOT_WEB_PORT=off",
            )
        ]
    if config is None:
        return []
    where = f"{config.host}:{config.port or 'any free port'}"
    proxies = config.proxies
    if proxies.platform:
        believed = "X-Forwarded-For from the platform's router ($PORT is set)"
    elif proxies.networks:
        believed = "X-Forwarded-For from " + ", ".join(map(str, proxies.networks))
    else:
        believed = "no X-Forwarded-For (clients are counted by their own address)"
    login = "password or token" if config.has_credentials else "one-time link, loopback only"
    return [Check(area, OK, f"dashboard on {where}: {login}; believes {believed}")]


# ---------------------------------------------------------------------- web


def check_listening(settings: Settings) -> list[Check]:
    """Where ``run`` will listen, checked on this machine now: the dashboard's port is free (an
    explicit port in use stops ``run``; the default one turns the dashboard off), and Telegram's
    webhook reaches the server that receives it."""
    from bot.web.config import WebConfig, WebConfigError

    try:
        config = WebConfig.from_settings(settings)
    except WebConfigError:
        return []  # the configuration check failed it already
    checks = [] if config is None else _port_free(config)
    return checks + _webhook_reachable(settings, config)


def _port_free(config: WebConfig) -> list[Check]:
    from bot.web.server import PortInUse, WebStartError, bind

    area = "web"
    if config.port == 0:
        return []
    try:
        bind(config).close()
    except PortInUse as exc:
        if config.explicit:
            return [
                Check(
                    area,
                    FAIL,
                    f"tradebot run would refuse to start: {exc}",
                    "stop what uses it, or pick another",
                )
            ]
        return [
            Check(
                area,
                WARN,
                f"{exc}: `tradebot run` would start with the dashboard off",
                "stop what uses it, or set TRADEBOT_WEB_PORT",
            )
        ]
    except WebStartError as exc:
        return [Check(area, FAIL, f"tradebot run would refuse to start: {exc}", "check TRADEBOT_WEB_HOST")]
    return [Check(area, OK, f"port {config.port} on {config.host} is free now")]


def _webhook_reachable(settings: Settings, config: WebConfig | None) -> list[Check]:
    """Telegram posts to TELEGRAM_WEBHOOK_URL; `run`'s web server must be where that leads."""
    webhook = settings.telegram_webhook_url
    if not webhook or not settings.telegram_enabled:
        return []
    area = "web"
    if config is None:
        return [
            Check(
                area,
                OK,
                f"Telegram webhook: python-telegram-bot's own server takes it on 0.0.0.0:{settings.port} "
                f"({settings.origin('PORT')}), the dashboard being off",
            )
        ]
    if config.loopback:
        return [
            Check(
                area,
                WARN,
                f"Telegram posts to {webhook}, but the web server listens on {config.host}:{config.port} only "
                f"({settings.origin('TRADEBOT_WEB_HOST')}): Telegram reaches it only through a proxy on this "
                "machine",
                "run behind a reverse proxy that forwards the webhook URL, or set TRADEBOT_WEB_HOST=0.0.0.0 "
                "with TRADEBOT_WEB_PASSWORD",
            )
        ]
    return [Check(area, OK, f"Telegram webhook: received by the web server on port {config.port}")]


# ---------------------------------------------------------------------- database


def check_database(settings: Settings) -> list[Check]:
    from bot.lease import TRADER, Lease
    from storage import migrate
    from storage.db import Database, DatabaseError, safe_url

    area = "database"
    url = settings.database_url
    where = safe_url(url)
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        path = Path(url.removeprefix("sqlite:///"))
        if not path.exists():
            if not path.parent.exists():
                return [
                    Check(
                        area,
                        FAIL,
                        f"{where}: folder {path.parent} does not exist",
                        "create it or change DATABASE_URL",
                    )
                ]
            return [Check(area, OK, f"{where} does not exist yet: the first start creates it")]
    db = Database(url)
    try:
        try:
            revision, newest = migrate.current(db), migrate.head()
        except DatabaseError as exc:
            return [
                Check(
                    area,
                    FAIL,
                    f"cannot connect: {str(exc).splitlines()[0]}",
                    "check DATABASE_URL (user, password, host, database name) and that the server runs",
                )
            ]
        checks = []
        if revision == newest:
            checks.append(Check(area, OK, f"{where}, schema at {migrate.describe(revision)}"))
        elif not migrate.is_known(revision):
            checks.append(
                Check(
                    area,
                    FAIL,
                    f"{where} is at schema revision {revision}, unknown to this version (migrated by a newer one)",
                    "deploy the newer version again, or restore a backup",
                )
            )
        elif settings.tradebot_auto_migrate:
            checks.append(
                Check(
                    area,
                    OK,
                    f"{where}, schema at {migrate.describe(revision)}; the next start upgrades it to {newest}",
                )
            )
        else:
            checks.append(
                Check(
                    area,
                    FAIL,
                    f"{where} is at schema revision {revision or 'none'}, this tradebot needs {newest}",
                    "tradebot db upgrade (or TRADEBOT_AUTO_MIGRATE=true)",
                )
            )
        if revision is not None and migrate.is_known(revision) and revision >= "0002":
            info = Lease(db, seconds=settings.tradebot_lease_seconds, name=TRADER).info()
            if info is None:
                checks.append(Check(area, OK, "trading lease: never taken (no instance has run yet)"))
            else:
                checks.append(Check(area, OK, f"trading lease: {info.describe()}"))
        if revision is not None:
            try:  # a read-only database reads fine: only a write shows it (rolled back, nothing kept)
                db.check_writable()
                checks.append(Check(area, OK, "writable (a test write was rolled back)"))
            except DatabaseError as exc:
                checks.append(
                    Check(
                        area, FAIL, f"refuses writes: {exc}", "the bot cannot record orders: fix this first"
                    )
                )
        return checks
    finally:
        db.dispose()


# ---------------------------------------------------------------------- broker


def check_broker(settings: Settings, timeout: float = NETWORK_TIMEOUT) -> list[Check]:
    area = "broker"
    if not settings.alpaca_enabled:
        return [Check(area, OK, "simulated exchange (no ALPACA_API_KEY): no real orders")]
    if not settings.alpaca_api_secret.get_secret_value():
        return [Check(area, FAIL, "ALPACA_API_SECRET is not set", "set it from the Alpaca dashboard")]
    from bot.alpaca.setup import build_alpaca
    from bot.brokers.base import AuthenticationError, BrokerError

    paper = settings.alpaca_paper
    try:
        broker, _source = build_alpaca(settings, timeout=timeout)
        account = broker.account()
    except ConfigError as exc:
        return [Check(area, FAIL, str(exc), "fix the variable named")]
    except AuthenticationError as exc:
        which = "paper" if paper else "live"
        return [
            Check(
                area,
                FAIL,
                f"Alpaca refused the keys: {exc}",
                f"use the {which} account's keys (paper and live keys differ) or set ALPACA_PAPER accordingly",
            )
        ]
    except BrokerError as exc:
        return [
            Check(
                area,
                FAIL,
                f"cannot reach Alpaca: {exc}",
                "check the network, ALPACA_TRADING_URL, status.alpaca.markets",
            )
        ]
    mode = "paper" if paper else "LIVE (real money)"
    checks = [
        Check(
            area,
            OK,
            f"Alpaca {mode} account reachable: equity {account.equity:,.2f}, cash {account.cash:,.2f}",
        )
    ]
    from bot.alpaca.setup import check_feed

    delayed = check_feed(settings, broker.paper)  # live was refused above, as a ConfigError
    if delayed:
        checks.append(Check(area, WARN, delayed, "set ALPACA_DATA_FEED=iex (free) or sip (paid)"))
    try:
        flags = broker.flags()
        covers = broker.check_protection([])
    except BrokerError as exc:
        return [*checks, Check(area, FAIL, f"cannot read the positions' stops at Alpaca: {exc}", "try again")]
    refusal = flags.refusal
    checks.append(
        Check(
            area,
            FAIL if refusal else OK,
            f"Alpaca account: {flags.describe()}",
            "the account's owner or Alpaca must lift it (dashboard, support)" if refusal else "",
        )
    )
    if not covers:
        checks.append(Check(area, OK, "no open positions at Alpaca"))
    for cover in covers:
        stop = f" at {cover.stop:,.2f}" if cover.stop is not None else ""
        line = f"{cover.symbol} {cover.qty:g}: stop {cover.state.value}{stop}" + (
            f" ({cover.note})" if cover.note else ""
        )
        fix = (
            ""
            if cover.ok
            else f"place a stop at Alpaca for it, or close it (/sell {cover.symbol} all, /flatten)"
        )
        checks.append(Check(area, OK if cover.ok else FAIL, line, fix))
    return checks


# ---------------------------------------------------------------------- telegram


def check_dask(settings: Settings) -> list[Check]:
    """TRADEBOT_DASK_SCHEDULER, when set: Dask installed, and the scheduler answering within the
    bound ``tradebot backtest --cluster`` gives it (its address was checked when it was read)."""
    address = settings.tradebot_dask_scheduler
    if not address:
        return []
    area, origin = "research", settings.origin("TRADEBOT_DASK_SCHEDULER")
    try:
        import distributed  # noqa: F401
    except ImportError:
        return [
            Check(
                area, FAIL, f"{origin}: sweeps go to a Dask cluster, but Dask is not installed",
                "pip install 'tradebot[cluster]', or empty TRADEBOT_DASK_SCHEDULER (local processes)",
            )
        ]  # fmt: skip
    from bot.backtest.cluster import ClusterError, probe

    try:
        identity = probe(address, DASK_BOUND)
    except ClusterError as exc:
        return [
            Check(
                area, FAIL, f"{origin}: {exc}",
                "start the scheduler (dask scheduler --port 8786) or fix or empty TRADEBOT_DASK_SCHEDULER",
            )
        ]  # fmt: skip
    workers = len(identity.get("workers") or {})
    if not workers:
        return [
            Check(area, WARN, f"Dask scheduler at {address} answered, with no workers", "start dask worker")
        ]
    return [Check(area, OK, f"Dask scheduler at {address} answered: {workers} workers")]


def check_telegram(settings: Settings, timeout: float = NETWORK_TIMEOUT) -> list[Check]:
    import requests

    area = "telegram"
    token = settings.telegram_bot_token.get_secret_value()
    if not token:
        return [Check(area, OK, "not configured (no TELEGRAM_BOT_TOKEN): commands on the console")]
    base = settings.telegram_base_url or "https://api.telegram.org/bot"

    def call(method: str) -> dict[str, Any]:
        response = requests.get(f"{base}{token}/{method}", timeout=timeout)
        try:
            body: dict[str, Any] = response.json()
        except ValueError:
            body = {"ok": False, "description": f"HTTP {response.status_code}, not JSON"}
        body.setdefault("error_code", response.status_code)
        return body

    try:
        me = call("getMe")
    except requests.RequestException as exc:
        # The exception's text holds the URL, and the URL holds the token: say only what kind it was.
        return [
            Check(
                area,
                FAIL,
                f"cannot reach the Bot API: {type(exc).__name__}",
                "check the network and TELEGRAM_BASE_URL",
            )
        ]
    if not me.get("ok"):
        if me.get("error_code") in (401, 404):
            return [
                Check(
                    area,
                    FAIL,
                    "Telegram rejected the token",
                    "copy the token again from @BotFather (/mybots, API Token)",
                )
            ]
        return [
            Check(area, FAIL, f"getMe failed: {me.get('description', 'no reason given')}", "try again later")
        ]
    username = me.get("result", {}).get("username", "?")
    checks = [Check(area, OK, f"token accepted: bot @{username}")]
    webhook = settings.telegram_webhook_url
    try:
        info = call("getWebhookInfo").get("result", {})
    except requests.RequestException:
        return checks
    registered = info.get("url", "")
    if webhook and registered and registered != webhook:
        checks.append(
            Check(
                area,
                WARN,
                f"Telegram posts updates to {registered}, not TELEGRAM_WEBHOOK_URL",
                "restart the web process: it registers TELEGRAM_WEBHOOK_URL at start",
            )
        )
    if info.get("last_error_message"):
        checks.append(
            Check(
                area,
                WARN,
                f"Telegram's last webhook delivery failed: {info['last_error_message']}",
                "the web process must be up and reachable at TELEGRAM_WEBHOOK_URL",
            )
        )
    if not webhook and registered:
        checks.append(
            Check(area, OK, "a webhook is registered; `tradebot run` removes it when it starts polling")
        )
    return checks
