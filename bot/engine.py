"""The engine: one trading cycle, step by step, and the scheduler that repeats it.

``Engine.tick()`` is what ``tradebot tick``, the scheduler and the tests all call. It only
computes and asks: every order goes through ``TradingService``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import numpy as np

from bot import formatting as fmt
from bot.bars import Bars, Timeframe
from bot.clock import Clock
from bot.data.cache import HistoryCache
from bot.data.validate import validate_bars
from bot.domain import EventKind, Severity, Side, Signal
from bot.outage import DatabaseOutage, is_database_failure
from bot.overrun import Overruns
from bot.service import TradingService
from bot.strategy import BUY, SELL, Strategy
from bot.views import OrderOutcome, TickReport

log = logging.getLogger(__name__)

# APScheduler instances of the tick job at once: one cycle, plus runs that fell due meanwhile and
# are ending (they return at once); see start_scheduler.
TICK_INSTANCES = 10


class Engine:
    def __init__(
        self,
        service: TradingService,
        cache: HistoryCache,
        strategies: list[Strategy],
        symbols: list[str],
        timeframe: Timeframe,
        clock: Clock,
    ) -> None:
        self.service = service
        self.cache = cache
        self.strategies = strategies
        self.symbols = symbols
        self.timeframe = timeframe
        self.clock = clock
        self._unhealthy: dict[str, str] = {}  # symbol -> problem already alerted
        self._failing: set[tuple[str, str]] = set()  # (strategy, symbol) already alerted
        self._evaluated: dict[str, int] = {}  # symbol -> last bar time the strategies saw
        self._lock = asyncio.Lock()
        # The database going away under `tradebot run`: reported once, retried with backoff.
        self.outage = DatabaseOutage(service.notifier.publish)
        # Runs that fall due while a cycle is still running: skipped, counted, said in one line.
        self.overruns = Overruns()

    # ------------------------------------------------------------------ one cycle

    def tick(self) -> TickReport:
        """One cycle: broker sync -> bars -> validation -> strategies -> service."""
        started = self.clock.now()
        self.service.sync()  # fills, stops and targets since the last cycle
        tradable = [s for s in self.symbols if self.service.broker.is_tradable_now(s, started)]
        windows, problems = self._fetch_bars(tradable)
        self._alert_data_health(problems, tradable)
        signals, outcomes, errors = self._run_strategies(windows)
        if outcomes:
            self.service.sync()
        self.service.snapshot_equity()
        report = TickReport(
            started=started,
            finished=self.clock.now(),
            signals=signals,
            orders=outcomes,
            data_problems=problems,
            strategy_errors=errors,
        )
        self.service.record_tick(report)
        log.info(
            "tick: %d symbols (%d tradable), %s; %d data problems",
            len(self.symbols),
            len(tradable),
            fmt.cycle(report),
            len(problems),
        )
        return report

    def _fetch_bars(self, symbols: list[str]) -> tuple[dict[str, Bars], dict[str, str]]:
        now = self.clock.now()
        result = self.cache.update(symbols, now)
        problems = dict(result.errors)
        windows: dict[str, Bars] = {}
        for symbol in symbols:
            if symbol in problems:
                continue
            bars = result.bars.get(symbol)
            if bars is None or len(bars) == 0:
                problems[symbol] = "no bars received"
                continue
            issues = validate_bars(bars, self.timeframe, now)
            if issues:
                problems[symbol] = "; ".join(issues[:3])
                continue
            windows[symbol] = bars
        return windows, problems

    def _alert_data_health(self, problems: dict[str, str], checked: list[str]) -> None:
        for symbol, problem in problems.items():
            if self._unhealthy.get(symbol) != problem:
                self.service.emit(
                    EventKind.DATA_OUTAGE,
                    f"No trading on {symbol} this cycle: {problem}",
                    severity=Severity.WARNING,
                    symbol=symbol,
                )
            self._unhealthy[symbol] = problem
        for symbol in checked:
            if symbol not in problems and self._unhealthy.pop(symbol, None) is not None:
                self.service.emit(
                    EventKind.DATA_RECOVERED, f"Data for {symbol} is back; trading resumes.", symbol=symbol
                )

    def _run_strategies(self, windows: dict[str, Bars]) -> tuple[int, list[OrderOutcome], dict[str, str]]:
        signals, outcomes, errors = 0, [], {}
        for symbol, bars in windows.items():
            last_time = int(bars.time[-1])
            if self._evaluated.get(symbol) == last_time:
                continue  # no new closed bar since the last cycle
            self._evaluated[symbol] = last_time
            for strategy in self.strategies:
                try:
                    signal = self.evaluate(strategy, symbol, bars)
                except Exception as exc:  # one broken strategy must not stop the others
                    errors[f"{strategy.label}/{symbol}"] = f"{type(exc).__name__}: {exc}"
                    self._alert_strategy_error(strategy, symbol, exc)
                    continue
                self._failing.discard((strategy.label, symbol))
                if signal is None:
                    continue
                signals += 1
                try:
                    outcomes.append(self.service.on_signal(signal))
                except Exception as exc:
                    if is_database_failure(exc):
                        # No order went out (the service turns a sent one into "books behind"):
                        # the database is down, which the cycle reports once as an outage.
                        raise
                    log.exception("order for %s failed", symbol)
                    self.service.emit(
                        EventKind.ORDER_FAILED,
                        f"Order for {symbol} ({strategy.label}) failed: {exc}",
                        severity=Severity.ERROR,
                        symbol=symbol,
                    )
        return signals, outcomes, errors

    def evaluate(self, strategy: Strategy, symbol: str, bars: Bars) -> Signal | None:
        """The strategy's signal on the last closed bar, if any: the live half of the one code path."""
        if len(bars) < strategy.warmup + 1:
            return None
        output = strategy.compute(bars)
        if len(output.signal) != len(bars):
            raise ValueError(f"returned {len(output.signal)} signals for {len(bars)} bars")
        value = int(output.signal[-1])
        if value not in (BUY, SELL):
            return None
        stop = None
        if output.stop is not None and math.isfinite(float(output.stop[-1])):
            stop = float(output.stop[-1])
        close = float(bars.close[-1])
        lines = ", ".join(f"{k} {float(v[-1]):.2f}" for k, v in output.lines.items() if np.isfinite(v[-1]))
        return Signal(
            strategy=strategy.label,
            symbol=symbol,
            side=Side.BUY if value == BUY else Side.SELL,
            bar_time=bars.last_time(),
            price=close,
            reason=f"{strategy.name} {'buy' if value == BUY else 'sell'} at close {close:.2f}{f' ({lines})' if lines else ''}",
            stop_loss=stop,
        )

    def _alert_strategy_error(self, strategy: Strategy, symbol: str, exc: Exception) -> None:
        key = (strategy.label, symbol)
        log.error("strategy %s failed on %s", strategy.label, symbol, exc_info=exc)
        if key not in self._failing:
            self._failing.add(key)
            self.service.emit(
                EventKind.STRATEGY_ERROR,
                f"Strategy {strategy.label} failed on {symbol}: {type(exc).__name__}: {exc}",
                severity=Severity.ERROR,
                symbol=symbol,
            )

    # ------------------------------------------------------------------ async entry points

    async def run_tick(self) -> TickReport | None:
        """The scheduler's job: one cycle in a worker thread, never overlapping, never raising.

        While the database is down (``bot/outage.py``) cycles wait on the retry policy's backoff
        and are skipped quietly; the outage is said once, and again when it ends."""
        if self._lock.locked():
            self.overruns.skipped()  # said once the running cycle ends (bot/overrun.py)
            return None
        async with self._lock:
            if self.outage.waiting():
                return None
            started = time.monotonic()
            try:
                report = await asyncio.to_thread(self.tick)
            except Exception as exc:
                if is_database_failure(exc):
                    self.outage.failed(exc, "a cycle", began=started)
                    return None
                log.exception("engine cycle failed")
                try:
                    await asyncio.to_thread(
                        self.service.emit,
                        EventKind.CYCLE_FAILED,
                        f"Engine cycle failed: {type(exc).__name__}: {exc}",
                        severity=Severity.ERROR,
                    )
                except Exception:
                    log.exception("could not record the failure either (database down?)")
                return None
            finally:
                self.overruns.finished(time.monotonic() - started)
            await self.database_answered()
            return report

    async def database_answered(self) -> None:
        """The database answered (a cycle, a lease renewal): if it had been down, say (and record)
        that it is back."""
        message = self.outage.recovered()
        if message is None:
            return
        try:
            await asyncio.to_thread(self.service.emit, EventKind.DATABASE_BACK, message)
        except Exception as exc:  # gone again at once: the next cycle reports it
            self.outage.failed(exc, "recording that it is back")

    async def wait_idle(self) -> None:
        """Return once no cycle is running (a cycle is never cut off mid-order)."""
        async with self._lock:
            pass


def start_scheduler(
    tick: Callable[[], Awaitable[Any]],
    interval_seconds: float,
    *,
    extra_jobs: Sequence[tuple[Callable[..., Any], dict[str, Any]]] = (),
) -> Any:
    """An AsyncIOScheduler on the running loop: ``tick`` every ``interval_seconds`` of real time.

    A cycle that overruns its interval is handled by the engine, not by APScheduler: the runs
    due meanwhile still start, find the cycle in progress (``Engine.run_tick``'s lock), and end
    at once, counted; the engine then logs one line (``bot/overrun.py``). So ``max_instances``
    is only a backstop against a pile of such instantly-ending runs, set high enough that
    APScheduler never refuses one with its "maximum number of running instances reached"
    warning. ``coalesce``: runs missed while the loop was blocked become one, not a burst.
    ``misfire_grace_time=None``: that one still runs however late (a late cycle is better than
    none; the executor's "was missed by" warning is silenced with the other noisy loggers).

    Must be called from a coroutine (the loop must be running), e.g. PTB's ``post_init``.
    """
    from datetime import UTC, datetime

    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    scheduler = AsyncIOScheduler(timezone=UTC)
    scheduler.add_job(
        tick,
        "interval",
        seconds=interval_seconds,
        id="tick",
        next_run_time=datetime.now(UTC),
        coalesce=True,
        max_instances=TICK_INSTANCES,
        misfire_grace_time=None,
    )
    for func, trigger in extra_jobs:
        scheduler.add_job(func, coalesce=True, max_instances=1, misfire_grace_time=60, **trigger)
    scheduler.start()
    return scheduler
