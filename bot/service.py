"""TradingService: the one path to money and state.

The engine, the console, Telegram and the tests call this class; none of them talks to a
broker or the database directly. Every order, automatic or manual, passes the same risk
checks here, carries a deterministic ``client_order_id``, and is written to the database
before the broker is called (write-ahead), so a crash, a retry or a replayed signal can
never place a second order.

The API is synchronous and thread-safe (one lock): async front ends call it through
``asyncio.to_thread`` so a slow broker never stalls the event loop.
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from bot import metrics
from bot.brokers.base import Broker, BrokerError, OrderRejected
from bot.clock import Clock
from bot.domain import (
    Event,
    EventKind,
    ExitReason,
    Fill,
    Order,
    OrderIntent,
    OrderStatus,
    OrderType,
    Position,
    Severity,
    Side,
    Signal,
    Trade,
    client_order_id,
)
from bot.notify import Notifier
from bot.risk import BOUNDS, PortfolioState, RiskLimits, check_entry, position_size, protective_levels
from bot.views import OrderOutcome, PnlReport, RiskView, StatusView, StrategyPnl, TickReport
from storage import repository as repo
from storage.db import Database

log = logging.getLogger(__name__)

EPSILON = 1e-9
SNAPSHOT_EVERY = timedelta(minutes=5)


def _fmt_qty(qty: float) -> str:
    return f"{qty:,.6f}".rstrip("0").rstrip(".")


class TradingService:
    def __init__(
        self,
        db: Database,
        broker: Broker,
        clock: Clock,
        limits: RiskLimits,
        notifier: Notifier | None = None,
        *,
        symbols: tuple[str, ...] = (),
        strategies: tuple[str, ...] = (),
        timeframe: str = "1m",
    ) -> None:
        self.db = db
        self.broker = broker
        self.clock = clock
        self.default_limits = limits
        self.notifier = notifier or Notifier()
        self.symbols = symbols
        self.strategies = strategies
        self.timeframe = timeframe
        self._lock = threading.RLock()
        self._last_tick: TickReport | None = None
        self._last_snapshot: datetime | None = None
        # Set by `tradebot run` and `tradebot tick` (bot/lease.py): one trading process per database.
        self.gate: Gate | None = None

    # ------------------------------------------------------------------ state

    @property
    def paused(self) -> bool:
        with self.db.session() as s:
            return bool(repo.get_setting(s, "paused", False))

    @property
    def limits(self) -> RiskLimits:
        with self.db.session() as s:
            overrides: dict[str, float] = repo.get_setting(s, "risk_overrides", {})
        limits = self.default_limits
        for name, value in overrides.items():
            try:
                limits = limits.with_value(name, value)
            except ValueError as exc:  # an override from an older version with other bounds
                log.warning("ignoring stored risk override %s=%s: %s", name, value, exc)
        return limits

    def pause(self, by: str = "") -> bool:
        """Stop new entries. Returns False if already paused. Exits, stops and targets keep working."""
        with self._lock:
            if self.paused:
                return False
            with self.db.session() as s:
                repo.set_setting(s, "paused", True)
                repo.set_setting(s, "paused_at", self.clock.now().isoformat())
            self.emit(
                EventKind.PAUSED,
                f"Trading paused{f' by {by}' if by else ''}: no new entries; exits still run.",
            )
            return True

    def resume(self, by: str = "") -> bool:
        with self._lock:
            if not self.paused:
                return False
            with self.db.session() as s:
                repo.set_setting(s, "paused", False)
            self.emit(EventKind.RESUMED, f"Trading resumed{f' by {by}' if by else ''}.")
            return True

    def set_risk(self, name: str, value: float, by: str = "") -> RiskLimits:
        """Change one limit within ``risk.BOUNDS``; persisted. Raises ValueError with the reason."""
        with self._lock:
            limits = self.limits.with_value(name, value)
            key = name.strip().lower()
            with self.db.session() as s:
                overrides = repo.get_setting(s, "risk_overrides", {})
                overrides[key] = getattr(limits, key)
                repo.set_setting(s, "risk_overrides", overrides)
            self.emit(
                EventKind.RISK_CHANGED,
                f"Risk limit {key} set to {getattr(limits, key):g}{f' by {by}' if by else ''}.",
            )
            return limits

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
        event = Event(
            kind=kind, message=message, time=self.clock.now(), severity=severity, symbol=symbol, data=data
        )
        with self.db.session() as s:
            event = repo.add_event(s, event)
        level = {
            Severity.INFO: logging.INFO,
            Severity.WARNING: logging.WARNING,
            Severity.ERROR: logging.ERROR,
        }
        log.log(level[severity], "%s: %s", kind.value, message)
        self.notifier.publish(event)
        return event

    # ------------------------------------------------------------------ orders

    def on_signal(self, signal: Signal) -> OrderOutcome:
        """Turn a strategy's signal into an order, if risk allows and it was not placed before."""
        with self._lock:
            outcome = self._on_signal(signal)
            with self.db.session() as s:
                repo.add_signal(s, signal, f"{outcome.status}: {outcome.message}"[:500], self.clock.now())
            return outcome

    def _on_signal(self, signal: Signal) -> OrderOutcome:
        cid = signal.client_order_id
        duplicate = self._already_placed(cid)
        if duplicate:
            return duplicate
        if signal.side is Side.BUY:
            held = self._position(signal.symbol)
            if held is not None and held.qty > EPSILON:  # a level signal repeating: not a risk event
                return OrderOutcome(
                    "ignored", signal.symbol, f"already holding {signal.symbol} ({held.strategy})"
                )
            return self._enter(
                symbol=signal.symbol,
                price=signal.price,
                strategy=signal.strategy,
                cid=cid,
                reason=signal.reason or "signal",
                stop=signal.stop_loss,
                target=signal.take_profit,
            )
        position = self._position(signal.symbol)
        if position is None or position.qty <= EPSILON:
            return OrderOutcome("ignored", signal.symbol, f"no {signal.symbol} position to exit")
        if position.strategy != signal.strategy:
            return OrderOutcome(
                "ignored",
                signal.symbol,
                f"{signal.symbol} is held by {position.strategy}, not {signal.strategy}",
            )
        intent = OrderIntent(
            client_order_id=cid,
            symbol=signal.symbol,
            side=Side.SELL,
            qty=position.qty,
            strategy=signal.strategy,
            reason=signal.reason or "exit signal",
            exit_reason=ExitReason.SIGNAL,
        )
        return self._submit(intent)

    def place_manual(
        self, symbol: str, side: Side, qty: float | None, request_id: str, by: str = ""
    ) -> OrderOutcome:
        """A trader's /buy or /sell. ``qty=None`` on a sell means the whole position.

        ``request_id`` identifies the request (e.g. the chat message), so a replayed command maps
        to the same order id. Buys pass the same risk checks as strategy entries.
        """
        with self._lock:
            symbol = symbol.upper()
            cid = client_order_id("manual", symbol, request_id, side.value)
            duplicate = self._already_placed(cid)
            if duplicate:
                return duplicate
            if side is Side.BUY:
                if qty is None or not math.isfinite(qty) or qty <= 0:
                    return OrderOutcome("blocked", symbol, "quantity must be a positive number")
                price = self.broker.latest_price(symbol, self.clock.now())
                if price is None or not math.isfinite(price) or price <= 0:
                    return OrderOutcome("blocked", symbol, f"no current price for {symbol}")
                outcome = self._enter(
                    symbol=symbol,
                    price=price,
                    strategy="manual",
                    cid=cid,
                    reason=f"manual{f' by {by}' if by else ''}",
                    fixed_qty=qty,
                )
            else:
                position = self._position(symbol)
                if position is None:
                    return OrderOutcome("blocked", symbol, f"no {symbol} position to sell")
                amount = position.qty if qty is None else qty
                if not math.isfinite(amount) or amount <= 0 or amount > position.qty + EPSILON:
                    return OrderOutcome(
                        "blocked",
                        symbol,
                        f"can sell between 0 and {_fmt_qty(position.qty)} {symbol} (no short selling)",
                    )
                outcome = self._submit(
                    OrderIntent(
                        client_order_id=cid,
                        symbol=symbol,
                        side=Side.SELL,
                        qty=amount,
                        strategy=position.strategy,
                        reason=f"manual{f' by {by}' if by else ''}",
                        exit_reason=ExitReason.MANUAL,
                    )
                )
            self._sync_locked()
            return self._refresh(outcome)

    def flatten(self, request_id: str, by: str = "") -> list[OrderOutcome]:
        """Close every position at market. Not subject to pause (it only reduces risk)."""
        with self._lock:
            outcomes = []
            for position in self._positions():
                if position.qty <= EPSILON:
                    continue
                cid = client_order_id("flatten", position.symbol, request_id, "sell")
                duplicate = self._already_placed(cid)
                if duplicate:
                    outcomes.append(duplicate)
                    continue
                outcomes.append(
                    self._submit(
                        OrderIntent(
                            client_order_id=cid,
                            symbol=position.symbol,
                            side=Side.SELL,
                            qty=position.qty,
                            strategy=position.strategy,
                            reason=f"flatten{f' by {by}' if by else ''}",
                            exit_reason=ExitReason.FLATTEN,
                        )
                    )
                )
            self._sync_locked()
            return [self._refresh(o) for o in outcomes]

    def _refresh(self, outcome: OrderOutcome) -> OrderOutcome:
        """Re-read the order after a sync, so a reply can say "filled at ..."."""
        if outcome.order is None:
            return outcome
        order = self.order(outcome.order.client_order_id) or outcome.order
        if order.status is OrderStatus.FILLED and order.filled_avg_price:
            verb = "Bought" if order.side is Side.BUY else "Sold"
            message = f"{verb} {_fmt_qty(order.filled_qty)} {order.symbol} at {order.filled_avg_price:,.2f}"
            return replace(outcome, status="filled", order=order, message=message)
        return replace(outcome, order=order)

    def _already_placed(self, cid: str) -> OrderOutcome | None:
        existing = self.order(cid)
        if existing is None or existing.status is OrderStatus.SUBMIT_FAILED:
            return None
        return OrderOutcome(
            "duplicate", existing.symbol, f"already placed as {cid} ({existing.status.value})", existing
        )

    def _enter(
        self,
        *,
        symbol: str,
        price: float,
        strategy: str,
        cid: str,
        reason: str,
        stop: float | None = None,
        target: float | None = None,
        fixed_qty: float | None = None,
    ) -> OrderOutcome:
        now = self.clock.now()
        limits = self.limits
        default_stop, default_target = protective_levels(limits, price)
        stop = stop if stop is not None and 0 < stop < price else default_stop
        target = target if target is not None and target > price else default_target
        account = self.broker.account()
        state = self._portfolio_state(account.equity, account.cash, now)
        if fixed_qty is None:
            qty = position_size(
                limits, symbol=symbol, equity=account.equity, cash=account.cash, entry=price, stop=stop
            )
        else:
            qty = fixed_qty
        decision = check_entry(limits, state, symbol=symbol, qty=qty, entry=price, stop=stop)
        if decision.approved and not self.broker.is_tradable_now(symbol, now):
            decision = replace(decision, approved=False, reason=f"market for {symbol} is closed")
        if not decision.approved:
            self.emit(
                EventKind.RISK_BLOCKED,
                f"Entry {symbol} ({strategy}) blocked: {decision.reason}",
                severity=Severity.WARNING,
                symbol=symbol,
                client_order_id=cid,
                reason=decision.reason,
            )
            return OrderOutcome("blocked", symbol, decision.reason)
        intent = OrderIntent(
            client_order_id=cid,
            symbol=symbol,
            side=Side.BUY,
            qty=qty,
            order_type=OrderType.MARKET,
            stop_loss=stop,
            take_profit=target,
            strategy=strategy,
            reason=reason,
        )
        return self._submit(intent)

    def _submit(self, intent: OrderIntent) -> OrderOutcome:
        """Write-ahead, send, and on a transport failure ask the broker before believing it failed."""
        refusal = self._refusal("order")
        if refusal:
            log.warning("%s %s not sent: %s", intent.side.value, intent.symbol, refusal)
            return OrderOutcome("blocked", intent.symbol, refusal)
        now = self.clock.now()
        pending = Order(
            client_order_id=intent.client_order_id,
            symbol=intent.symbol,
            side=intent.side,
            qty=intent.qty,
            status=OrderStatus.PENDING_SUBMIT,
            order_type=intent.order_type,
            limit_price=intent.limit_price,
            stop_loss=intent.stop_loss,
            take_profit=intent.take_profit,
            strategy=intent.strategy,
            reason=intent.reason,
            exit_reason=intent.exit_reason,
            created_at=now,
        )
        with self.db.session() as s:
            repo.save_order(s, pending, now)
        try:
            placed = self.broker.submit(intent)
        except OrderRejected as exc:
            self._save(replace(pending, status=OrderStatus.REJECTED, error=str(exc)))
            self.emit(
                EventKind.ORDER_REJECTED,
                f"{intent.side.value.title()} {_fmt_qty(intent.qty)} {intent.symbol} rejected: {exc}",
                severity=Severity.WARNING,
                symbol=intent.symbol,
                client_order_id=intent.client_order_id,
            )
            return OrderOutcome("rejected", intent.symbol, str(exc), pending)
        except Exception as exc:  # transport failure: the order may exist at the broker
            placed = self._lookup_after_failure(intent.client_order_id)
            if placed is None:
                failed = replace(
                    pending, status=OrderStatus.SUBMIT_FAILED, error=f"{type(exc).__name__}: {exc}"
                )
                self._save(failed)
                self.emit(
                    EventKind.BROKER_ERROR,
                    f"{intent.side.value.title()} {intent.symbol} not placed: {exc}. "
                    "The broker has no such order; the next cycle may retry it.",
                    severity=Severity.ERROR,
                    symbol=intent.symbol,
                    client_order_id=intent.client_order_id,
                )
                return OrderOutcome("failed", intent.symbol, str(exc), failed)
        order = replace(
            pending,
            status=placed.status,
            broker_order_id=placed.broker_order_id,
            filled_qty=0.0,
            filled_avg_price=None,
        )
        self._save(order)
        side = "Buy" if intent.side is Side.BUY else "Sell"
        protection = ""
        if intent.stop_loss is not None:
            protection = f", stop {intent.stop_loss:,.2f}, target {intent.take_profit:,.2f}"
        self.emit(
            EventKind.ORDER_PLACED,
            f"{side} {_fmt_qty(intent.qty)} {intent.symbol} placed ({intent.strategy}: {intent.reason}{protection})",
            symbol=intent.symbol,
            client_order_id=intent.client_order_id,
            qty=intent.qty,
        )
        return OrderOutcome(
            "placed", intent.symbol, f"{side} {_fmt_qty(intent.qty)} {intent.symbol} placed", order
        )

    def _lookup_after_failure(self, cid: str) -> Order | None:
        try:
            return self.broker.get_order_by_client_id(cid)
        except Exception as exc:
            log.error("cannot look up order %s after a failed submit: %s", cid, exc)
            # Unknown state: keep it pending; reconciliation resolves it. Never assume "failed".
            raise BrokerError(f"order {cid} state unknown: {exc}", retriable=True) from exc

    def _save(self, order: Order) -> None:
        with self.db.session() as s:
            repo.save_order(s, order, self.clock.now())

    # ------------------------------------------------------------------ broker sync

    def sync(self) -> int:
        """Take fills and order updates from the broker; mark prices; snapshot equity. Returns fills applied."""
        with self._lock:
            return self._sync_locked()

    def _sync_locked(self) -> int:
        if self._refusal("books"):
            return 0  # the instance that holds the lease keeps the books
        now = self.clock.now()
        update = self.broker.sync(now)
        applied = 0
        for fill in update.fills:
            if self._apply_fill(fill, now):
                applied += 1
        if update.fills:
            self.broker.acknowledge([f.fill_id for f in update.fills])
        for order in update.orders:
            if order.status in (OrderStatus.CANCELED, OrderStatus.REJECTED, OrderStatus.EXPIRED):
                self._close_order(order)
        for problem in update.alerts:
            self.emit(EventKind.BROKER_ERROR, problem, severity=Severity.ERROR)
        self._mark_prices(now)
        self.snapshot_equity(force=applied > 0)
        return applied

    def _close_order(self, update: Order) -> None:
        current = self.order(update.client_order_id)
        if current is None or current.status is update.status:
            return
        self._save(replace(current, status=update.status, error=update.error or current.error))
        kind = EventKind.ORDER_REJECTED if update.status is OrderStatus.REJECTED else EventKind.ORDER_CANCELED
        self.emit(
            kind,
            f"Order {current.side.value} {current.symbol} {update.status.value}"
            f"{f': {update.error}' if update.error else ''}",
            symbol=current.symbol,
            severity=Severity.WARNING,
        )

    def _apply_fill(self, fill: Fill, now: datetime) -> bool:
        """Record one execution exactly once: order, position, trade, event."""
        with self.db.session() as s:
            if repo.has_fill(s, fill.fill_id):
                return False
            order = repo.get_order(s, fill.client_order_id)
            position = repo.get_position(s, fill.symbol)
            if order is None:  # a protective leg or an order placed outside the bot
                order = Order(
                    client_order_id=fill.client_order_id,
                    symbol=fill.symbol,
                    side=fill.side,
                    qty=fill.qty,
                    status=OrderStatus.NEW,
                    strategy=position.strategy if position else "external",
                    reason=fill.exit_reason.value if fill.exit_reason else "broker",
                    exit_reason=fill.exit_reason,
                    created_at=fill.time,
                )
            filled = order.filled_qty + fill.qty
            avg = ((order.filled_avg_price or 0.0) * order.filled_qty + fill.price * fill.qty) / filled
            status = OrderStatus.FILLED if filled + EPSILON >= order.qty else OrderStatus.PARTIALLY_FILLED
            repo.save_order(s, replace(order, filled_qty=filled, filled_avg_price=avg, status=status), now)
            repo.add_fill(s, fill)
            trade = self._update_position(s, fill, order, position)
        self._announce_fill(fill, order, trade)
        return True

    def _update_position(self, s: Any, fill: Fill, order: Order, position: Position | None) -> Trade | None:
        commission_so_far = repo.position_commission(s, fill.symbol)
        if fill.side is Side.BUY:
            if position is None:
                position = Position(
                    symbol=fill.symbol,
                    qty=0.0,
                    avg_price=0.0,
                    strategy=order.strategy,
                    opened_at=fill.time,
                    stop_loss=order.stop_loss,
                    take_profit=order.take_profit,
                )
            qty = position.qty + fill.qty
            avg = (position.avg_price * position.qty + fill.price * fill.qty) / qty
            repo.save_position(
                s,
                replace(
                    position,
                    qty=qty,
                    avg_price=avg,
                    market_price=fill.price,
                    stop_loss=order.stop_loss or position.stop_loss,
                    take_profit=order.take_profit or position.take_profit,
                ),
                commission_so_far + fill.commission,
            )
            return None
        if position is None:
            log.warning("sell fill %s for %s with no position on record", fill.fill_id, fill.symbol)
            return None
        closed_qty = min(fill.qty, position.qty)
        share = closed_qty / position.qty if position.qty > 0 else 1.0
        entry_commission = commission_so_far * share
        pnl = (fill.price - position.avg_price) * closed_qty - entry_commission - fill.commission
        reason = fill.exit_reason or order.exit_reason or ExitReason.SIGNAL
        trade = Trade(
            symbol=fill.symbol,
            strategy=position.strategy,
            qty=closed_qty,
            entry_time=position.opened_at or fill.time,
            entry_price=position.avg_price,
            exit_time=fill.time,
            exit_price=fill.price,
            pnl=pnl,
            exit_reason=reason.value,
            commission=entry_commission + fill.commission,
        )
        repo.add_trade(s, trade)
        remaining = position.qty - closed_qty
        if remaining <= EPSILON:
            repo.delete_position(s, fill.symbol)
        else:
            repo.save_position(s, replace(position, qty=remaining), commission_so_far - entry_commission)
        return trade

    def _announce_fill(self, fill: Fill, order: Order, trade: Trade | None) -> None:
        verb = "Bought" if fill.side is Side.BUY else "Sold"
        text = f"{verb} {_fmt_qty(fill.qty)} {fill.symbol} at {fill.price:,.2f}"
        if trade is not None:
            text += f": P&L {trade.pnl:+,.2f} ({trade.exit_reason})"
        kind = EventKind.ORDER_FILLED
        if fill.exit_reason is ExitReason.STOP_LOSS:
            kind, text = EventKind.STOP_HIT, f"Stop-loss hit: {text}"
        elif fill.exit_reason is ExitReason.TAKE_PROFIT:
            kind, text = EventKind.TARGET_HIT, f"Take-profit hit: {text}"
        self.emit(
            kind,
            text,
            symbol=fill.symbol,
            client_order_id=fill.client_order_id,
            price=fill.price,
            qty=fill.qty,
            pnl=trade.pnl if trade else None,
            strategy=order.strategy,
        )

    def _mark_prices(self, now: datetime) -> None:
        positions = self._positions()
        if not positions:
            return
        prices = {p.symbol: self.broker.latest_price(p.symbol, now) for p in positions}
        with self.db.session() as s:
            for symbol, price in prices.items():
                if price is not None and math.isfinite(price):
                    repo.mark_price(s, symbol, price)

    def snapshot_equity(self, force: bool = False) -> None:
        now = self.clock.now()
        if not force and self._last_snapshot is not None and now - self._last_snapshot < SNAPSHOT_EVERY:
            return
        account = self.broker.account()
        with self.db.session() as s:
            repo.add_equity_snapshot(s, now, account.equity, account.cash)
        self._last_snapshot = now

    # ------------------------------------------------------------------ reconciliation

    def reconcile(self) -> list[str]:
        """Bring the database in line with the broker (the truth) and alert on every difference."""
        with self._lock:
            refusal = self._refusal("books")
            if refusal:
                log.info("reconciliation skipped: %s", refusal)
                return []
            self._sync_locked()
            diffs: list[str] = []
            now = self.clock.now()
            broker_positions = {p.symbol: p for p in self.broker.positions()}
            with self.db.session() as s:
                ours = {p.symbol: p for p in repo.list_positions(s)}
                for symbol in sorted(set(broker_positions) | set(ours)):
                    theirs, mine = broker_positions.get(symbol), ours.get(symbol)
                    if theirs is not None and mine is None:
                        repo.save_position(
                            s, replace(theirs, strategy="external", opened_at=theirs.opened_at or now)
                        )
                        diffs.append(
                            f"adopted {symbol}: {_fmt_qty(theirs.qty)} at {theirs.avg_price:,.2f} "
                            "appeared at the broker (placed outside the bot?)"
                        )
                    elif theirs is None and mine is not None:
                        repo.delete_position(s, symbol)
                        diffs.append(
                            f"removed {symbol}: {_fmt_qty(mine.qty)} on record but not at the broker "
                            "(closed outside the bot?)"
                        )
                    elif theirs is not None and mine is not None and abs(theirs.qty - mine.qty) > EPSILON:
                        repo.save_position(s, replace(mine, qty=theirs.qty, avg_price=theirs.avg_price))
                        diffs.append(
                            f"corrected {symbol}: {_fmt_qty(mine.qty)} on record, "
                            f"{_fmt_qty(theirs.qty)} at the broker"
                        )
                open_orders = repo.list_orders(s, open_only=True, limit=500)
                protected = [
                    p for p in repo.list_positions(s) if p.stop_loss is not None or p.take_profit is not None
                ]
            for order in open_orders:
                diffs.extend(self._reconcile_order(order))
            diffs.extend(self.broker.ensure_protection(protected))
            for diff in diffs:
                self.emit(EventKind.RECONCILE_DIFF, f"Reconciliation: {diff}", severity=Severity.WARNING)
            return diffs

    def _reconcile_order(self, order: Order) -> list[str]:
        try:
            at_broker = self.broker.get_order_by_client_id(order.client_order_id)
        except Exception as exc:
            return [f"cannot check order {order.client_order_id}: {exc}"]
        if at_broker is None:
            if order.status is OrderStatus.PENDING_SUBMIT:
                self._save(replace(order, status=OrderStatus.SUBMIT_FAILED, error="never reached the broker"))
                return [
                    f"order {order.side.value} {order.symbol} ({order.client_order_id}) never reached the broker"
                ]
            self._save(replace(order, status=OrderStatus.CANCELED, error="unknown at the broker"))
            return [f"order {order.client_order_id} is unknown at the broker: marked canceled"]
        if at_broker.status is not order.status and at_broker.status is not OrderStatus.FILLED:
            self._save(replace(order, status=at_broker.status, broker_order_id=at_broker.broker_order_id))
            if order.status is OrderStatus.PENDING_SUBMIT:
                return [
                    f"order {order.side.value} {order.symbol} ({order.client_order_id}) was placed before a restart"
                ]
        return []

    # ------------------------------------------------------------------ engine bookkeeping

    def record_tick(self, report: TickReport) -> None:
        self._last_tick = report
        with self.db.session() as s:
            repo.set_setting(s, "last_tick", report.finished.isoformat())

    def open_positions(self) -> list[Position]:
        return self._positions()

    # ------------------------------------------------------------------ views

    def status(self) -> StatusView:
        account = self.broker.account()
        now = self.clock.now()
        with self.db.session() as s:
            positions = repo.list_positions(s)
            open_orders = repo.list_orders(s, open_only=True)
            last_tick_text = repo.get_setting(s, "last_tick")
        paused = self.paused
        state = "paused" if paused else "active"
        if not paused and self._daily_loss_pct(account.equity, now) >= self.limits.daily_loss_limit_pct:
            state = "halted (daily loss limit)"
        return StatusView(
            mode=self.broker.mode,
            broker=self.broker.name,
            paused=paused,
            trading_state=state,
            equity=account.equity,
            cash=account.cash,
            positions=len(positions),
            open_orders=len(open_orders),
            last_tick=datetime.fromisoformat(last_tick_text) if last_tick_text else None,
            data_problems=dict(self._last_tick.data_problems) if self._last_tick else {},
            symbols=self.symbols,
            strategies=self.strategies,
            timeframe=self.timeframe,
            now=now,
            clock_speed=float(getattr(self.clock, "speed", 1.0)),
            instance=self.gate.describe() if self.gate is not None else "",
        )

    def positions(self) -> list[Position]:
        return self._positions()

    def orders(self, open_only: bool = True, limit: int = 20) -> list[Order]:
        with self.db.session() as s:
            return repo.list_orders(s, open_only=open_only, limit=limit)

    def order(self, client_order_id: str) -> Order | None:
        with self.db.session() as s:
            return repo.get_order(s, client_order_id)

    def trades(self, limit: int = 10) -> list[Trade]:
        with self.db.session() as s:
            return repo.list_trades(s, limit=limit)

    def equity_curve(self) -> list[tuple[datetime, float]]:
        with self.db.session() as s:
            return repo.equity_curve(s)

    def recent_events(self, limit: int = 20) -> list[Event]:
        with self.db.session() as s:
            return repo.recent_events(s, limit)

    def pnl(self) -> PnlReport:
        now = self.clock.now()
        account = self.broker.account()
        day_start = _day_start(now)
        with self.db.session() as s:
            trades = repo.list_trades(s)
            curve = repo.equity_curve(s)
            positions = repo.list_positions(s)
        start_equity = self._day_start_equity(now)
        equities = [e for _, e in curve] + [account.equity]
        pnls = [t.pnl for t in trades]
        per_strategy = []
        for name in sorted({t.strategy for t in trades}):
            own = [t.pnl for t in trades if t.strategy == name]
            per_strategy.append(StrategyPnl(name, len(own), sum(own), metrics.win_rate(own)))
        first = curve[0][1] if curve else None
        return PnlReport(
            today_pnl=account.equity - start_equity if start_equity is not None else 0.0,
            today_realized=sum(t.pnl for t in trades if t.exit_time >= day_start),
            total_realized=sum(pnls),
            unrealized=sum(p.unrealized_pnl for p in positions),
            equity=account.equity,
            starting_equity=first,
            return_pct=(account.equity / first - 1) * 100 if first else 0.0,
            sharpe=metrics.sharpe(equities, _periods_per_year(curve)),
            max_drawdown_pct=metrics.max_drawdown_pct(equities),
            win_rate=metrics.win_rate(pnls),
            trades=len(trades),
            per_strategy=tuple(per_strategy),
        )

    def risk_view(self) -> RiskView:
        account = self.broker.account()
        positions = self._positions()
        limits = self.limits
        risk = sum(p.risk_to_stop for p in positions)
        return RiskView(
            limits=limits.as_dict(),
            defaults=self.default_limits.as_dict(),
            bounds=dict(BOUNDS),
            paused=self.paused,
            day_loss_pct=self._daily_loss_pct(account.equity, self.clock.now()),
            portfolio_risk_pct=risk / account.equity * 100 if account.equity > 0 else 0.0,
            open_trades=len(positions),
        )

    # ------------------------------------------------------------------ helpers

    def _refusal(self, action: str) -> str | None:
        return None if self.gate is None else self.gate.refusal(action)

    def _positions(self) -> list[Position]:
        with self.db.session() as s:
            return repo.list_positions(s)

    def _position(self, symbol: str) -> Position | None:
        with self.db.session() as s:
            return repo.get_position(s, symbol)

    def _portfolio_state(self, equity: float, cash: float, now: datetime) -> PortfolioState:
        with self.db.session() as s:
            positions = tuple(repo.list_positions(s))
            working = {o.symbol for o in repo.list_orders(s, open_only=True, limit=500) if o.side is Side.BUY}
        return PortfolioState(
            equity=equity,
            cash=cash,
            positions=positions,
            day_start_equity=self._day_start_equity(now),
            paused=self.paused,
            open_entry_symbols=frozenset(working - {p.symbol for p in positions}),
        )

    def _day_start_equity(self, now: datetime) -> float | None:
        start = _day_start(now)
        with self.db.session() as s:
            before = repo.last_equity_before(s, start)
            return before if before is not None else repo.first_equity_since(s, start)

    def _daily_loss_pct(self, equity: float, now: datetime) -> float:
        start = self._day_start_equity(now)
        if not start:
            return 0.0
        return (start - equity) / start * 100


class Gate(Protocol):
    """Whether this process may trade (``bot.lease.Lease`` is the one in use)."""

    def refusal(self, action: str) -> str | None:
        """Why ``action`` ("order": send an order; "books": sync or reconcile) may not run now, or None."""
        ...

    def describe(self) -> str:
        """One line for /status."""
        ...


def _day_start(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _periods_per_year(curve: list[tuple[datetime, float]]) -> float:
    """Annualisation from the snapshots' median spacing (they are not evenly spaced)."""
    if len(curve) < 3:
        return 252.0
    gaps = sorted((b[0] - a[0]).total_seconds() for a, b in itertools.pairwise(curve))
    median = gaps[len(gaps) // 2]
    return 365 * 86400 / median if median > 0 else 252.0
