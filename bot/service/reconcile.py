"""Reconciliation: bring our books in line with the broker (the truth) and say what differed.

Run at start and every 15 minutes, after a sync. Positions: one that appeared at the broker is
adopted (strategy ``external``), one that vanished there is removed, a different quantity is
corrected. Open orders: each is looked up by its client id; a ``pending_submit`` order the
broker never saw becomes ``submit_failed``, one it has takes the broker's status. Finally the
broker re-arms protection (stops and targets) where it can. Every difference is returned as a
sentence; the service records each one as an event.
"""

from __future__ import annotations

from dataclasses import replace

from bot.brokers.base import Broker
from bot.clock import Clock
from bot.domain import Order, OrderStatus
from bot.formatting import qty as fmt_qty
from bot.service.orders import OrderRouter
from storage import repository as repo
from storage.db import Database

EPSILON = 1e-9


class Reconciler:
    def __init__(self, db: Database, broker: Broker, clock: Clock, orders: OrderRouter) -> None:
        self.db = db
        self.broker = broker
        self.clock = clock
        self.orders = orders

    def differences(self) -> list[str]:
        """Correct every difference with the broker; one sentence per difference."""
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
                        f"adopted {symbol}: {fmt_qty(theirs.qty)} at {theirs.avg_price:,.2f} "
                        "appeared at the broker (placed outside the bot?)" + _short(symbol, theirs.qty)
                    )
                elif theirs is None and mine is not None:
                    repo.delete_position(s, symbol)
                    diffs.append(
                        f"removed {symbol}: {fmt_qty(mine.qty)} on record but not at the broker "
                        "(closed outside the bot?)"
                    )
                elif theirs is not None and mine is not None and abs(theirs.qty - mine.qty) > EPSILON:
                    repo.save_position(s, replace(mine, qty=theirs.qty, avg_price=theirs.avg_price))
                    diffs.append(
                        f"corrected {symbol}: {fmt_qty(mine.qty)} on record, {fmt_qty(theirs.qty)} at the broker"
                        + _short(symbol, theirs.qty)
                    )
            open_orders = repo.list_orders(s, open_only=True, limit=500)
            protected = [
                p for p in repo.list_positions(s) if p.stop_loss is not None or p.take_profit is not None
            ]
        for order in open_orders:
            diffs.extend(self._order(order))
        diffs.extend(self.broker.ensure_protection(protected))
        return diffs

    def _order(self, order: Order) -> list[str]:
        try:
            at_broker = self.broker.get_order_by_client_id(order.client_order_id)
        except Exception as exc:
            return [f"cannot check order {order.client_order_id}: {exc}"]
        if at_broker is None:
            if order.status is OrderStatus.PENDING_SUBMIT:
                self.orders.save(
                    replace(order, status=OrderStatus.SUBMIT_FAILED, error="never reached the broker")
                )
                return [
                    f"order {order.side.value} {order.symbol} ({order.client_order_id}) never reached the broker"
                ]
            self.orders.save(replace(order, status=OrderStatus.CANCELED, error="unknown at the broker"))
            return [f"order {order.client_order_id} is unknown at the broker: marked canceled"]
        if at_broker.status is not order.status and at_broker.status is not OrderStatus.FILLED:
            self.orders.save(
                replace(order, status=at_broker.status, broker_order_id=at_broker.broker_order_id)
            )
            if order.status is OrderStatus.PENDING_SUBMIT:
                return [
                    f"order {order.side.value} {order.symbol} ({order.client_order_id}) was placed before a restart"
                ]
        return []


def _short(symbol: str, qty: float) -> str:
    """What to do about a short: tradebot never sells short, so it is a mistake to close."""
    if qty >= -EPSILON:
        return ""
    return (
        f". It is SHORT: tradebot never sells short and no stop protects it; close it with /flatten "
        f"or /buy {symbol} {fmt_qty(-qty)}"
    )
