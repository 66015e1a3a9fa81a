"""The composition root: build every part from ``Settings`` and wire them together.

Nothing else constructs brokers, data sources or the service; the CLI, the tests and the
benchmarks all call ``build_app``. With no Alpaca keys it builds the embedded default: the
synthetic market, the simulated exchange and a local SQLite file.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from bot import __version__
from bot.bars import Timeframe
from bot.brokers.base import Broker
from bot.clock import AcceleratedClock, Clock
from bot.commands import CommandRouter
from bot.config import Settings, checks
from bot.data.base import BarSource
from bot.data.cache import HistoryCache
from bot.engine import Engine
from bot.lease import Lease
from bot.notify import Notifier
from bot.plugins import Registry, load_registry
from bot.risk import RiskLimits
from bot.service import TradingService
from bot.service.alerts import GROUPS as ALERT_GROUPS
from bot.strategy import Strategy
from storage.db import Database, DatabaseError, safe_url
from storage.revisions import ensure_newest
from storage.totals import verify_totals

if TYPE_CHECKING:
    from bot.web.server import WebServer

log = logging.getLogger(__name__)


class StartupError(RuntimeError):
    """The bot cannot start as configured; the message tells the user what to change."""


@dataclass
class App:
    settings: Settings
    db: Database
    clock: Clock
    broker: Broker
    source: BarSource
    service: TradingService
    engine: Engine
    router: CommandRouter
    registry: Registry
    notifier: Notifier
    strategies: list[Strategy]
    interval_seconds: float  # real seconds between cycles
    lease: Lease  # one trading process per database; `tradebot run` and `tradebot tick` take it
    database_lost: bool = False  # the SQLite file vanished under a running bot (bot/runner.py)
    banner: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    web: WebServer | None = None  # set by `tradebot run` once serving; transports add webhooks to it

    @property
    def mode(self) -> str:
        return self.broker.mode


def build_app(settings: Settings, *, accelerate: bool = True, clock: Clock | None = None) -> App:
    """``accelerate``: let the simulated clock run TRADEBOT_SIM_SPEED times faster (``tradebot run``)."""
    timeframe = Timeframe.parse(settings.tradebot_timeframe)
    registry = load_registry()
    strategies = checks.strategies(settings, registry)  # ConfigError: the CLI exits 2
    db = Database(settings.database_url)
    try:
        ensure_newest(db, auto_migrate=settings.tradebot_auto_migrate)
        db.check_writable()  # read-only: stop here, rather than wait in standby for ever
    except DatabaseError as exc:
        raise StartupError(str(exc)) from None
    verify_totals(db)

    symbols = list(settings.tradebot_symbols)

    notifier = Notifier()
    speed = 1.0
    ahead = timedelta(0)  # how far the simulated account's clock resumes ahead of real time
    if settings.alpaca_enabled:
        broker, source, clock = _alpaca(settings, clock)
    else:
        from bot.simaccount import resume_time

        speed = settings.tradebot_sim_speed if accelerate else 1.0
        wall = datetime.now(UTC)
        resume = resume_time(db, wall)  # where the last process left the clock, plus the time since
        ahead = resume - wall
        clock = clock or AcceleratedClock(resume, speed)
        broker, source = _simulator(settings, db, clock, timeframe)

    lease = Lease(db, seconds=settings.tradebot_lease_seconds)
    service = TradingService(
        db,
        broker,
        clock,
        RiskLimits.from_settings(settings),
        notifier,
        lease=lease,
        symbols=tuple(symbols),
        strategies=tuple(s.label for s in strategies),
        timeframe=timeframe.label,
        limit_sources={f.name: str(settings.source(f.name)) for f in fields(RiskLimits)},
        alert_defaults={
            group: bool(getattr(settings, f"telegram_alert_{group}", True)) for group in ALERT_GROUPS
        },
    )
    cache = HistoryCache(source, timeframe, settings.tradebot_history_bars)
    engine = Engine(service, cache, strategies, symbols, timeframe, clock)
    router = CommandRouter(service, registry, clock, confirm_ttl=settings.tradebot_confirm_seconds)
    app = App(
        settings=settings,
        db=db,
        clock=clock,
        broker=broker,
        source=source,
        service=service,
        engine=engine,
        router=router,
        registry=registry,
        notifier=notifier,
        strategies=strategies,
        interval_seconds=settings.tradebot_interval_seconds / speed,
        lease=lease,
        warnings=list(registry.errors),
    )
    app.banner = _banner(app, timeframe, speed, ahead)
    return app


def _simulator(
    settings: Settings, db: Database, clock: Clock, timeframe: Timeframe
) -> tuple[Broker, BarSource]:
    from bot.brokers.sim import SimBroker
    from bot.data.synthetic import SyntheticMarket

    market = SyntheticMarket()
    broker = SimBroker(
        db,
        market,
        clock,
        timeframe=timeframe,
        starting_cash=settings.tradebot_sim_cash,
        commission=settings.tradebot_sim_commission,
    )
    return broker, market


def _alpaca(settings: Settings, clock: Clock | None) -> tuple[Broker, BarSource, Clock]:
    from bot.brokers.base import AuthenticationError, BrokerError
    from bot.clock import SystemClock

    try:
        from bot.alpaca.setup import build_alpaca
    except ImportError as exc:  # pragma: no cover - only when the Alpaca adapter is missing
        raise StartupError(f"ALPACA_API_KEY is set but the Alpaca adapter cannot load: {exc}") from None
    try:
        broker, source = build_alpaca(settings)
    except AuthenticationError as exc:
        raise StartupError(
            f"Alpaca refused the keys: {exc}. Check ALPACA_API_KEY, ALPACA_API_SECRET and ALPACA_PAPER."
        ) from None
    except BrokerError as exc:
        raise StartupError(f"cannot reach Alpaca: {exc}") from None
    return broker, source, clock or SystemClock()


def _alpaca_data_warnings(s: Settings, timeframe: Timeframe, symbols: list[str], *, paper: bool) -> list[str]:
    """What about Alpaca's bars the trader must know at start: a delayed feed, and hour bars that
    straddle the regular session (bot.data.sessions) when only regular hours are kept."""
    from bot.alpaca.setup import check_feed
    from bot.domain import is_crypto

    lines = []
    delayed = check_feed(s, paper)
    if delayed:
        lines.append(f"WARNING: {delayed}.")
    stocks = any(not is_crypto(symbol) for symbol in symbols)
    if stocks and not s.tradebot_extended_hours_bars and 1800 < timeframe.seconds < 86_400:
        lines.append(
            f"Stock bars: regular hours only; Alpaca's {timeframe.label} bars start on UTC hours, so "
            "those straddling 09:30 or 16:00 New York time mix in extended hours and are dropped "
            "(30m or shorter keeps the open; TRADEBOT_EXTENDED_HOURS_BARS=on keeps every bar)."
        )
    return lines


def _banner(app: App, timeframe: Timeframe, speed: float, ahead: timedelta) -> list[str]:
    s = app.settings
    lines = [f"tradebot {__version__}"]
    if app.mode == "sim":
        lines.append(
            "Trading a SIMULATED market (no Alpaca keys set): synthetic prices, simulated account, no real money."
        )
        if speed != 1:
            per_bar = timeframe.seconds / speed
            lines.append(
                f"Simulated clock runs {speed:g}x faster than real time: each {timeframe.label} bar takes "
                f"{per_bar:g} s (TRADEBOT_SIM_SPEED=1 for real time)."
            )
        if ahead >= timedelta(minutes=1):
            from bot.formatting import duration

            lines.append(
                f"The simulated account's clock is {duration(ahead.total_seconds())} ahead of real time "
                "(earlier accelerated runs; it never runs backwards, and between runs it moves at real "
                "speed): `tradebot sim reset` starts a fresh simulated account."
            )
    elif app.mode == "paper":
        lines.append("Trading the Alpaca PAPER account (no real money).")
    else:
        lines.append("Trading the Alpaca LIVE account: REAL MONEY.")
    flags = getattr(app.broker, "flags", None)
    if app.mode != "sim" and flags is not None:
        try:
            lines.append(f"Alpaca account: {flags().describe()}.")
        except Exception as exc:  # the banner never stops a start; the first cycle reads them again
            lines.append(f"Alpaca account flags could not be read: {exc}")
    if app.mode != "sim":
        lines.extend(_alpaca_data_warnings(s, timeframe, app.engine.symbols, paper=app.mode == "paper"))
    pause = app.service.pause_state()
    if pause is not None:  # state that outlives a run says so at start
        from bot.formatting import paused

        lines.append(f"Trading is {paused(pause, simulated=app.mode == 'sim')}. /resume allows entries.")
    lines.append(f"Symbols: {', '.join(app.engine.symbols)} on {timeframe.label} bars")
    lines.append(f"Strategies: {', '.join(st.label for st in app.strategies)}")
    lines.append(f"Database: {safe_url(s.database_url)}")
    return lines
