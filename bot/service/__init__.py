"""TradingService: the one door to money and state.

The engine, the console, Telegram, the web dashboard and the tests call this class; none of
them talks to a broker or the database directly. Every order, automatic or manual, passes the
same risk checks, carries a deterministic ``client_order_id``, and is written to the database
before the broker is called (write-ahead), so a crash, a retry or a replayed signal can never
place a second order.

The class is a thin front over parts with one job each, in this package:

- ``store.SettingsStore``: paused, risk overrides, the last cycle (the ``settings`` table);
- ``events.EventLog``: record an event (audit log and outbox), then publish it;
- ``feed.EventFeed``: the events for every transport: replay, cursors, live (``service.feed``);
- ``alerts.AlertPrefs``: which alert groups push transports send (``/alerts``);
- ``trader.Trader``: what to order: signals, /buy, /sell, /flatten -> checked, sized intents;
- ``orders.OrderRouter``: the order path: record pending, send, on rejected, on unknown;
- ``ledger.FillLedger``: the broker's fills and order updates applied once; prices, equity;
- ``reconcile.Reconciler``: our books brought in line with the broker's;
- ``reports.Reports``: read-only answers (status, positions, P&L, risk view).

The front adds what they share: one lock, so two requests never interleave inside an order,
and the trading lease (``bot/lease.py``), passed in at construction and asked before every
order ("order") and every change to the books ("books"): only one process trades.

The API is synchronous and thread-safe: async front ends call it through ``asyncio.to_thread``
so a slow broker never stalls the event loop.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

from bot import formatting as fmt
from bot.brokers.base import Broker
from bot.clock import Clock
from bot.domain import (
    Event,
    EventKind,
    Order,
    OrderStatus,
    OutcomeStatus,
    Position,
    Severity,
    Side,
    Signal,
    StopCover,
    Trade,
)
from bot.lease import TradingLease
from bot.notify import Notifier
from bot.periods import Period, PeriodProfit
from bot.risk import BOUNDS, RiskLimits
from bot.service.alerts import AlertPrefs
from bot.service.events import EventLog
from bot.service.feed import EventFeed
from bot.service.ledger import FillLedger
from bot.service.orders import OrderRouter
from bot.service.reconcile import Reconciler
from bot.service.reports import Reports
from bot.service.store import SettingsStore
from bot.service.trader import Trader
from bot.views import (
    EquityHistory,
    OrderOutcome,
    Page,
    Pause,
    PnlReport,
    RiskView,
    SignalRecord,
    StatusView,
    TickReport,
)
from storage.db import Database

__all__ = ["TradingService"]

log = logging.getLogger(__name__)

SUMMARY_DAY = "daily_summary.last"
_SENT = (OutcomeStatus.PLACED, OutcomeStatus.FILLED)  # the broker has the order


class TradingService:
    def __init__(
        self,
        db: Database,
        broker: Broker,
        clock: Clock,
        limits: RiskLimits,
        notifier: Notifier | None = None,
        *,
        lease: TradingLease,
        symbols: tuple[str, ...] = (),
        strategies: tuple[str, ...] = (),
        timeframe: str = "1m",
        alert_defaults: Mapping[str, bool] | None = None,
        limit_sources: Mapping[str, str] | None = None,
    ) -> None:
        self.broker = broker
        self.clock = clock
        self.notifier = notifier or Notifier()
        self.lease = lease
        self.symbols = symbols
        self.strategies = strategies
        self._lock = threading.RLock()
        self._store = SettingsStore(db, limits, limit_sources)
        self._events = EventLog(db, clock, self.notifier)
        self.feed = EventFeed(db, clock, self.notifier)
        self._alerts = AlertPrefs(self._store, alert_defaults or {})
        self._orders = OrderRouter(db, broker, clock, self._events, lease)
        self._ledger = FillLedger(db, broker, clock, self._events, self._orders)
        self._reconciler = Reconciler(db, broker, clock, self._orders)
        self._reports = Reports(
            db, broker, clock, self._store, lease, symbols=symbols, strategies=strategies, timeframe=timeframe
        )
        self._trader = Trader(broker, clock, self._store, self._events, self._orders, self._reports)

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the service's lock across several calls: nothing else changes the books or the
        settings meanwhile (no cycle, no sync, no order of another chat). A confirmation reads the
        state it showed again and acts on it inside one of these (``bot/commands.py``)."""
        with self._lock:
            yield

    # ------------------------------------------------------------------ state

    def paused(self) -> bool:
        """Whether new entries are stopped (read from the database: survives restarts)."""
        return self._store.paused()

    def pause_state(self) -> Pause | None:
        """Who paused, since when, and the entries blocked since; None while trading is active."""
        return self._store.pause()

    def limits(self) -> RiskLimits:
        """The risk limits in force: the configured ones with ``/risk set`` changes applied."""
        return self._store.limits()

    def instance_key(self, name: str) -> bytes:
        """A random 32-byte key kept in the database under ``name``, made on first use, the same
        for every instance on this database and across restarts (the web's device cookies)."""
        return self._store.random_key(name)

    def pause(self, by: str = "") -> bool:
        """Stop new entries. Returns False if already paused. Exits, stops and targets keep working."""
        with self._lock:
            if self._store.paused():
                return False
            self._store.set_paused(True, self.clock.now(), by)
            self.emit(
                EventKind.PAUSED,
                f"Trading paused{f' by {by}' if by else ''}: no new entries; exits still run.",
            )
            return True

    def resume(self, by: str = "") -> bool:
        """Allow new entries again. Returns False if not paused."""
        with self._lock:
            pause = self._store.pause()
            if pause is None:
                return False
            self._store.set_paused(False, self.clock.now())
            held_back = ""
            if pause.blocked:
                verb = "was" if pause.blocked == 1 else "were"
                held_back = f" {fmt.plural(pause.blocked, 'entry', 'entries')} {verb} blocked while paused."
            self.emit(EventKind.RESUMED, f"Trading resumed{f' by {by}' if by else ''}.{held_back}")
            return True

    def set_risk(self, name: str, value: float, by: str = "") -> RiskLimits:
        """Change one limit within ``risk.BOUNDS``; persisted. Raises ValueError with the reason."""
        with self._lock:
            limits = self._store.override_limit(name, value, by=by, at=self.clock.now())
            key = name.strip().lower()
            self.emit(
                EventKind.RISK_CHANGED,
                f"Risk limit {key} set to {getattr(limits, key):g}{f' by {by}' if by else ''}.",
            )
            return limits

    def reset_risk(self, name: str, by: str = "") -> list[str]:
        """Drop the ``/risk set`` override of ``name`` (``all``: every one), back to the configured
        value. Returns the names reset. Raises ValueError for an unknown name."""
        key = name.strip().lower()
        if key != "all" and key not in BOUNDS:
            raise ValueError(f"unknown limit {name!r}: one of {', '.join(BOUNDS)} or all")
        with self._lock:
            dropped = self._store.reset_limits(None if key == "all" else [key])
            if dropped:
                limits = self._store.limits()
                values = ", ".join(f"{n} {getattr(limits, n):g}" for n in dropped)
                self.emit(
                    EventKind.RISK_CHANGED,
                    f"Risk limits back to their configured values{f' by {by}' if by else ''}: {values}.",
                )
            return dropped

    # ------------------------------------------------------------------ events

    def emit(
        self,
        kind: EventKind,
        message: str,
        *,
        severity: Severity = Severity.INFO,
        symbol: str | None = None,
        **data: Any,
    ) -> Event:
        """Record an event in the audit log (the alert outbox), then publish it."""
        return self._events.record(kind, message, severity=severity, symbol=symbol, **data)

    def recent_events(
        self, limit: int = 20, kind: EventKind | None = None, before: int | None = None
    ) -> list[Event]:
        """The newest events (of one ``kind``, if given; older than id ``before``), newest first."""
        return self._events.recent(limit, kind, before)

    def alert_groups(self) -> dict[str, bool]:
        """Alert group -> on or off (``bot/service/alerts.py``)."""
        return self._alerts.current()

    def set_alert_groups(self, groups: Iterable[str], on: bool) -> None:
        """Switch alert groups on or off, persisted. Raises ValueError naming an unknown group."""
        self._alerts.set(groups, on)

    def alert_allowed(self, kind: EventKind) -> bool:
        """Whether push transports send events of this kind now."""
        return self._alerts.allows(kind)

    def daily_summary(self, day: date) -> Event | None:
        """Emit the summary of ``day`` unless it was emitted already (restart, second process)."""
        with self._lock:
            if self._store.get(SUMMARY_DAY) == day.isoformat():
                return None
            event = self.emit(EventKind.DAILY_SUMMARY, fmt.daily_summary(day, self.status(), self.pnl()))
            self._store.set(SUMMARY_DAY, day.isoformat())
            return event

    def recent_signals(self, limit: int = 100) -> list[SignalRecord]:
        """The strategies' latest signals and what came of each, newest first."""
        return self._events.recent_signals(limit)

    # ------------------------------------------------------------------ orders

    def on_signal(self, signal: Signal) -> OrderOutcome:
        """Turn a strategy's signal into an order, if risk allows and it was not placed before."""
        with self._lock:
            outcome = self._trader.on_signal(signal)
            if (
                outcome.status is OutcomeStatus.PLACED
                and outcome.order
                and outcome.order.status is OrderStatus.FILLED
            ):
                # Filled at once (the simulator; a fast market): book it now, so the risk check of
                # the next signal in this cycle counts this position.
                outcome = self._book(outcome)
            try:
                self._events.record_signal(signal, f"{outcome.status}: {outcome.message}"[:500])
            except Exception as exc:
                if outcome.status is OutcomeStatus.BOOKS_BEHIND:
                    log.exception("could not record the signal of %s either", signal.client_order_id)
                elif outcome.status in _SENT:
                    outcome = self._orders.fell_behind(outcome, exc)  # the order exists all the same
                else:
                    raise
            return outcome

    def place_manual(
        self, symbol: str, side: Side, qty: float | None, request_id: str, by: str = ""
    ) -> OrderOutcome:
        """A trader's /buy or /sell. ``qty=None`` on a sell means the whole position.

        ``request_id`` identifies the request (e.g. the chat message), so a replayed command maps
        to the same order id. Buys pass the same risk checks as strategy entries.
        """
        with self._lock:
            outcome = self._trader.manual(symbol.upper(), side, qty, request_id, by)
            if outcome.order is None or outcome.status is OutcomeStatus.DUPLICATE:
                return outcome  # nothing was sent
            outcome = self._book(outcome)  # the simulator fills at once: the reply can say at what price
            return outcome if outcome.status is OutcomeStatus.BOOKS_BEHIND else self._trader.refresh(outcome)

    def preview_manual(
        self, symbol: str, side: Side, qty: float | None, request_id: str
    ) -> OrderOutcome | None:
        """What ``place_manual`` would answer without sending anything: a duplicate (this request
        was placed already) or a refusal ("blocked", with the reason); None when it would be sent.
        Front ends ask before their confirmation question; ``place_manual`` checks again."""
        with self._lock:
            return self._trader.preview(symbol.upper(), side, qty, request_id)

    def flatten(self, request_id: str, by: str = "") -> list[OrderOutcome]:
        """Close every position at market. Not subject to pause (it only reduces risk)."""
        with self._lock:
            outcomes = self._trader.flatten(request_id, by)
            try:
                self._sync_locked()
            except Exception as exc:
                return [self._orders.fell_behind(o, exc) if o.status in _SENT else o for o in outcomes]
            return [self._trader.refresh(o) for o in outcomes]

    def cancel_refusal(self, client_order_id: str) -> str | None:
        """Why ``cancel_order`` would refuse this order now (None: it would cancel it). Front ends
        ask before their confirmation question; ``cancel_order`` asks again."""
        with self._lock:
            return self._orders.cancel_refusal(client_order_id)

    def cancel_order(self, client_order_id: str, by: str = "") -> OrderOutcome:
        """Cancel what is left of one of the bot's working orders (an entry not filled yet, the rest
        of a partial fill, a working exit); what filled stays. Protective legs are refused."""
        with self._lock:
            outcome = self._orders.cancel(client_order_id, by)
            if outcome.status is OutcomeStatus.CANCELED:
                try:
                    self._sync_locked()  # book the broker's word: canceled, and any last fill
                except Exception as exc:
                    log.exception(
                        "cancel of %s done; the books will follow at the next sync", client_order_id
                    )
                    return replace(
                        outcome, message=f"{outcome.message} (the books follow at the next sync: {exc})"
                    )
                order = self._orders.get(client_order_id) or outcome.order
                if order is not None and any(p.symbol == order.symbol for p in self.positions()):
                    # What filled stays held, and the broker may have canceled a bracket's legs
                    # with its entry: put the stop and target back now, not at the next
                    # reconciliation (up to 15 minutes unprotected).
                    try:
                        self._reconcile_locked()
                    except Exception:
                        log.exception("after the cancel of %s: reconciliation failed", client_order_id)
                return replace(outcome, order=order)
            return outcome

    # ------------------------------------------------------------------ the books

    def sync(self) -> int:
        """Take fills and order updates from the broker; mark prices; snapshot equity. Returns fills applied."""
        with self._lock:
            return self._sync_locked()

    def _book(self, outcome: OrderOutcome) -> OrderOutcome:
        """Record what the broker did with the order just placed. The broker accepted it: a failure
        here leaves the books behind the broker (``books_behind``), never "the order failed"."""
        if outcome.status not in _SENT:
            return outcome
        try:
            self._sync_locked()
        except Exception as exc:
            return self._orders.fell_behind(outcome, exc)
        return outcome

    def _sync_locked(self) -> int:
        if self.lease.refusal("books"):
            return 0  # the instance that holds the lease keeps the books
        if self._orders.books_behind:
            applied, _ = self._reconcile_locked()  # entries wait for this
            return applied
        applied = self._ledger.sync()
        self._protect_locked()
        return applied

    def _protect_locked(self) -> None:
        """The invariant, checked at the broker after every sync (every cycle, every order, every
        fill the stream brings): every position has a working stop for its whole quantity there.
        The broker repairs what it can; each note is an alert."""
        try:
            notes = self.broker.ensure_protection(self._reports.positions())
        except Exception as exc:  # the check failed: say so, the next sync tries again
            log.warning("protection could not be checked at the broker: %s", exc)
            notes = [f"stops could not be checked at the broker: {exc}"]
        for note in notes:  # a stop put back is a warning; anything still unprotected an error
            repaired = "put back" in note and "NO stop" not in note
            self.emit(EventKind.PROTECTION, note, severity=Severity.WARNING if repaired else Severity.ERROR)

    def protection(self) -> list[StopCover]:
        """Every position's stop as the broker has it now (the invariant), for /status and the web."""
        return self.broker.check_protection(self._reports.positions())

    def snapshot_equity(self, force: bool = False) -> None:
        """Record equity and cash, at most every 5 minutes unless ``force``, and at the first call
        of each UTC day (the day's opening equity, which the daily loss limit counts from)."""
        self._ledger.snapshot_equity(force)

    def reconcile(self) -> list[str]:
        """Bring the database in line with the broker (the truth) and alert on every difference."""
        with self._lock:
            refusal = self.lease.refusal("books")
            if refusal:
                log.info("reconciliation skipped: %s", refusal)
                return []
            return self._reconcile_locked()[1]

    def _reconcile_locked(self) -> tuple[int, list[str]]:
        applied = self._ledger.sync()
        diffs = self._reconciler.differences()
        for diff in diffs:
            self.emit(EventKind.RECONCILE_DIFF, f"Reconciliation: {diff}", severity=Severity.WARNING)
        self._orders.caught_up()
        return applied, diffs

    def record_tick(self, report: TickReport) -> None:
        """The engine's report of one cycle: its time (persisted, with the real time then, so the
        next process resumes the simulated clock where this one left it) and its data health."""
        self._reports.last_tick = report
        self._store.set_last_tick(report.finished, wall=datetime.now(UTC))

    # ------------------------------------------------------------------ reports

    def status(self) -> StatusView:
        view = self._reports.status()
        behind = self._orders.books_behind
        if behind:
            view = replace(view, books_behind=behind)
        try:
            return replace(view, protection=tuple(self.protection()))
        except Exception as exc:  # the status still answers; it says the stops could not be read
            log.warning("stops could not be read at the broker: %s", exc)
            return replace(view, protection_error=f"{type(exc).__name__}: {exc}")

    def position(self, symbol: str) -> Position | None:
        """The open position in ``symbol`` as the books hold it, or None."""
        return self._reports.position(symbol.upper())

    def positions(self) -> list[Position]:
        return self._reports.positions()

    def marked_positions(self) -> list[Position]:
        """The positions at the broker's latest prices, as ``status`` prices them (for views)."""
        return self._reports.marked(self.clock.now())[1]

    def orders(self, open_only: bool = True, limit: int = 20) -> list[Order]:
        return self._orders.list(open_only=open_only, limit=limit)

    def order_page(self, *, limit: int, before: int | None = None, **filters: Any) -> Page[Order]:
        """One page of orders, newest first (``storage.repository.order_page``: ``open_only``,
        ``symbol``, ``side``, ``status``, ``strategy``); ``before`` is the last page's cursor."""
        return self._reports.order_page(limit=limit, before=before, **filters)

    def trade_page(self, *, limit: int, before: int | None = None, **filters: Any) -> Page[Trade]:
        """One page of closed trades, newest first (``storage.repository.trade_page``: ``symbol``,
        ``strategy``, ``since``, ``until``, ``result``). Raises LookupError for an unknown cursor."""
        return self._reports.trade_page(limit=limit, before=before, **filters)

    def order(self, client_order_id: str) -> Order | None:
        return self._orders.get(client_order_id)

    def trades(self, limit: int = 10) -> list[Trade]:
        return self._reports.trades(limit)

    def equity_curve(self) -> list[tuple[datetime, float]]:
        return self._reports.equity_curve()

    def equity_history(self) -> EquityHistory:
        """The equity curve as /equity draws it (earlier days by day, the last ones in full)."""
        return self._reports.equity_history()

    def pnl(self) -> PnlReport:
        return self._reports.pnl()

    def risk_view(self) -> RiskView:
        return self._reports.risk_view()

    def profit(self, period: Period, count: int) -> list[PeriodProfit]:
        """Realized profit by day, week or month (``bot/periods.py``), newest first."""
        return self._reports.profit(period, count)
