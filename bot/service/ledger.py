"""The fill ledger: what the broker reports back, applied to our books exactly once.

``sync`` takes the broker's fills and order updates since the last call. Each fill is recorded
under its broker fill id, so one reported twice (a crash before the acknowledgement, the
stream and the poll both delivering it) changes nothing the second time. A buy fill opens or
adds to the position (net of a fee the broker kept in the coins, ``Fill.fee_qty``); a sell fill
closes (part of) it and records the round trip as a trade, with the entry's commission shared out
and the exit's own added, so a round trip's P&L is what the cash did. Positions are then marked to the latest prices and
equity is snapshotted every ``SNAPSHOT_EVERY`` (and after every fill).
"""

from __future__ import annotations

import logging
import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sqlmodel import Session

from bot.brokers.base import Broker
from bot.clock import Clock
from bot.domain import (
    EventKind,
    ExitReason,
    Fill,
    Order,
    OrderStatus,
    Position,
    Severity,
    Side,
    Trade,
    is_crypto,
)
from bot.formatting import qty as fmt_qty
from bot.service.events import EventLog
from bot.service.orders import OrderRouter
from storage import repository as repo
from storage.db import Database

log = logging.getLogger(__name__)

EPSILON = 1e-9
SNAPSHOT_EVERY = timedelta(minutes=5)
_CLOSED = (OrderStatus.CANCELED, OrderStatus.REJECTED, OrderStatus.EXPIRED)


class FillLedger:
    def __init__(
        self, db: Database, broker: Broker, clock: Clock, events: EventLog, orders: OrderRouter
    ) -> None:
        self.db = db
        self.broker = broker
        self.clock = clock
        self.events = events
        self.orders = orders
        self._last_snapshot: datetime | None = None
        self._resumed = False

    def sync(self) -> int:
        """Apply the broker's fills and order updates; mark prices; snapshot equity. Returns fills applied.

        The first sync tells the broker where the books stop (``report_fills_since``), so fills
        from a restart after a long outage are recorded, not only adopted by reconciliation."""
        now = self.clock.now()
        if not self._resumed:
            with self.db.session() as s:
                since = repo.fills_resume_point(s)
            self.broker.report_fills_since(since)
            self._resumed = True
        update = self.broker.sync(now)
        applied = sum(1 for fill in update.fills if self.apply(fill, now))
        if update.fills:
            self.broker.acknowledge([f.fill_id for f in update.fills])
        for order in update.orders:
            if order.status in _CLOSED:
                self._close_order(order)
        for problem in update.alerts:
            self.events.record(EventKind.BROKER_ERROR, problem, severity=Severity.ERROR)
        self.mark_prices(now)
        self.snapshot_equity(force=applied > 0)
        return applied

    def apply(self, fill: Fill, now: datetime) -> bool:
        """Record one execution exactly once: order, position, trade, event. False: seen before."""
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
            short_before = position is not None and position.qty < -EPSILON
            if fill.side is Side.BUY and short_before:
                trade = self._cover_short(s, fill, order, position)  # type: ignore[arg-type]
            elif fill.side is Side.BUY:
                trade = None
                self._add_to_position(s, fill, order, position)
            else:
                trade = self._reduce_position(s, fill, order, position)
            after = repo.get_position(s, fill.symbol)
        self._announce(fill, order, trade)
        if after is not None and after.qty < -EPSILON and not short_before:
            self.events.record(
                EventKind.PROTECTION,
                f"{fill.symbol} is SHORT {fmt_qty(-after.qty)} at the broker: a sell went beyond the position. "
                f"tradebot never sells short; close it with /flatten or /buy {fill.symbol} {fmt_qty(-after.qty)}",
                severity=Severity.ERROR,
                symbol=fill.symbol,
            )
        return True

    def _add_to_position(self, s: Session, fill: Fill, order: Order, position: Position | None) -> None:
        commission_so_far = repo.position_commission(s, fill.symbol)
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
        received = fill.qty - fill.fee_qty  # a crypto buy's fee comes out of the coins
        qty = position.qty + received
        avg = (position.avg_price * position.qty + fill.price * received) / qty
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

    def _reduce_position(
        self, s: Session, fill: Fill, order: Order, position: Position | None
    ) -> Trade | None:
        """A sell closes (part of) a long; what a stock sell sold beyond the long is a short, as at
        the broker (crypto cannot be sold short: a crypto excess is the books' fee estimate being a
        hair off what the broker kept, and reconciliation settles it)."""
        short_possible = not is_crypto(fill.symbol)
        if position is None or position.qty <= 0:
            log.error("sell fill %s for %s beyond the position on record", fill.fill_id, fill.symbol)
            if short_possible:
                self._open_short(s, fill, order, position, fill.qty)
            return None
        if fill.qty > position.qty + EPSILON and short_possible:
            trade = self._reduce_position(s, replace(fill, qty=position.qty), order, position)
            self._open_short(s, fill, order, None, fill.qty - position.qty)
            return trade
        return self._close(s, fill, order, position, ExitReason.SIGNAL)

    def _close(self, s: Session, fill: Fill, order: Order, position: Position, default: ExitReason) -> Trade:
        """Close what ``fill`` can of ``position`` (a long by a sell, a short by a buy): a round trip,
        the entry's commission shared out."""
        size, sign = abs(position.qty), (1.0 if position.qty > 0 else -1.0)
        commission_so_far = repo.position_commission(s, fill.symbol)
        closed_qty = min(fill.qty, size)
        share = closed_qty / size if size > 0 else 1.0
        entry_commission = commission_so_far * share
        pnl = sign * (fill.price - position.avg_price) * closed_qty - entry_commission - fill.commission
        reason = fill.exit_reason or order.exit_reason or default
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
        remaining = size - closed_qty
        if remaining <= EPSILON:
            repo.delete_position(s, fill.symbol)
        else:
            repo.save_position(
                s, replace(position, qty=sign * remaining), commission_so_far - entry_commission
            )
        return trade

    def _open_short(
        self, s: Session, fill: Fill, order: Order, position: Position | None, qty: float
    ) -> None:
        """A short at the broker (never meant: tradebot never sells short), kept in the books as it
        is there so that /flatten and /buy can close it."""
        if position is None:
            position = Position(
                symbol=fill.symbol,
                qty=0.0,
                avg_price=fill.price,
                strategy=order.strategy,
                opened_at=fill.time,
            )
        total = position.qty - qty
        avg = (position.avg_price * -position.qty + fill.price * qty) / -total
        repo.save_position(
            s,
            replace(
                position, qty=total, avg_price=avg, market_price=fill.price, stop_loss=None, take_profit=None
            ),
            repo.position_commission(s, fill.symbol) + fill.commission,
        )

    def _cover_short(self, s: Session, fill: Fill, order: Order, position: Position) -> Trade:
        """A buy closes (part of) a short: a round trip whose P&L is what it was sold at less what
        it was bought back at; what it bought beyond the short is a long."""
        trade = self._close(s, fill, order, position, ExitReason.MANUAL)
        if fill.qty > trade.qty + EPSILON:
            self._add_to_position(s, replace(fill, qty=fill.qty - trade.qty), order, None)
        return trade

    def _announce(self, fill: Fill, order: Order, trade: Trade | None) -> None:
        verb = "Bought" if fill.side is Side.BUY else "Sold"
        text = f"{verb} {fmt_qty(fill.qty)} {fill.symbol} at {fill.price:,.2f}"
        if trade is not None:
            text += f": P&L {trade.pnl:+,.2f} ({trade.exit_reason})"
        kind = EventKind.ORDER_FILLED
        if fill.exit_reason is ExitReason.STOP_LOSS:
            kind, text = EventKind.STOP_HIT, f"Stop-loss hit: {text}"
        elif fill.exit_reason is ExitReason.TAKE_PROFIT:
            kind, text = EventKind.TARGET_HIT, f"Take-profit hit: {text}"
        self.events.record(
            kind,
            text,
            symbol=fill.symbol,
            client_order_id=fill.client_order_id,
            price=fill.price,
            qty=fill.qty,
            pnl=trade.pnl if trade else None,
            strategy=order.strategy,
        )

    def _close_order(self, update: Order) -> None:
        """A canceled, rejected or expired order reported by the broker."""
        current = self.orders.get(update.client_order_id)
        if current is None or current.status is update.status:
            return
        self.orders.save(replace(current, status=update.status, error=update.error or current.error))
        kind = EventKind.ORDER_REJECTED if update.status is OrderStatus.REJECTED else EventKind.ORDER_CANCELED
        self.events.record(
            kind,
            f"Order {current.side.value} {current.symbol} {update.status.value}"
            f"{f': {update.error}' if update.error else ''}",
            symbol=current.symbol,
            severity=Severity.WARNING,
        )

    def mark_prices(self, now: datetime) -> None:
        with self.db.session() as s:
            positions = repo.list_positions(s)
        if not positions:
            return
        prices = {p.symbol: self.broker.latest_price(p.symbol, now) for p in positions}
        with self.db.session() as s:
            repo.mark_prices(s, {k: v for k, v in prices.items() if v is not None and math.isfinite(v)})

    def snapshot_equity(self, force: bool = False) -> None:
        """Every ``SNAPSHOT_EVERY``, after fills (``force``), and at the first call of each UTC day:
        that one is the day's opening equity the daily loss limit counts from."""
        now = self.clock.now()
        last = self._last_snapshot
        if not force and last is not None and now - last < SNAPSHOT_EVERY and _same_day(now, last):
            return
        account = self.broker.account()
        with self.db.session() as s:
            repo.add_equity_snapshot(s, now, account.equity, account.cash)
        self._last_snapshot = now


def _same_day(a: datetime, b: datetime) -> bool:
    """Whether ``a`` and ``b`` fall on the same UTC day."""
    return a.astimezone(UTC).date() == b.astimezone(UTC).date()
