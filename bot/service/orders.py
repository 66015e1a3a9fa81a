"""The order path: record pending, send, and settle what the broker said (or did not say).

Every order is written to the database as ``pending_submit`` before the broker is called
(write-ahead), under a deterministic ``client_order_id``. Then:

- the broker accepts it: the order takes the broker's status and id (``ORDER_PLACED``);
- the broker refuses it (``OrderRejected``): ``rejected``, with the broker's reason;
- the transport fails (timeout, dropped connection, 5xx): the order may exist at the broker,
  so it is looked up by its client id before anything is believed. Found: it was placed. Not
  found: ``submit_failed``, and the same signal may send it again. The lookup fails too: the
  order stays ``pending_submit`` (``OrderStateUnknown`` is raised) and reconciliation settles it.

An order id that is already on record (in any state but ``submit_failed``) is never sent again.

When the broker accepted an order and the books then fail to record it or its fill (a database
error), the order is not "failed": it exists. ``fell_behind`` says so (``books_behind``, one
alert in those words), and until a reconciliation brings the books in line with the broker no
entry is approved: the risk checks would count positions the books miss.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from bot.brokers.base import Broker, BrokerError, OrderRejected
from bot.clock import Clock
from bot.domain import EventKind, Order, OrderIntent, OrderStatus, OutcomeStatus, Severity, Side
from bot.formatting import qty as fmt_qty
from bot.lease import TradingLease
from bot.service.events import EventLog
from bot.views import OrderOutcome
from storage import repository as repo
from storage.db import Database

log = logging.getLogger(__name__)


class OrderRouter:
    def __init__(
        self, db: Database, broker: Broker, clock: Clock, events: EventLog, lease: TradingLease
    ) -> None:
        self.db = db
        self.broker = broker
        self.clock = clock
        self.events = events
        self.lease = lease
        self.books_behind: str | None = None  # why the books miss what the broker has; None: in line

    # ------------------------------------------------------------------ the records

    def get(self, client_order_id: str) -> Order | None:
        with self.db.session() as s:
            return repo.get_order(s, client_order_id)

    def list(self, open_only: bool = True, limit: int = 20) -> list[Order]:
        with self.db.session() as s:
            return repo.list_orders(s, open_only=open_only, limit=limit)

    def save(self, order: Order) -> None:
        with self.db.session() as s:
            repo.save_order(s, order, self.clock.now())

    def already_placed(self, client_order_id: str) -> OrderOutcome | None:
        """The outcome to report when this id was placed before (None: it may be sent)."""
        existing = self.get(client_order_id)
        if existing is None or existing.status is OrderStatus.SUBMIT_FAILED:
            return None
        return OrderOutcome(
            OutcomeStatus.DUPLICATE,
            existing.symbol,
            f"already placed as {client_order_id} ({existing.status.value})",
            existing,
        )

    # ------------------------------------------------------------------ sending

    def submit(self, intent: OrderIntent) -> OrderOutcome:
        """Write-ahead, send, and on a transport failure ask the broker before believing it failed."""
        refusal = self.lease.refusal("order")
        if refusal:
            log.warning("%s %s not sent: %s", intent.side.value, intent.symbol, refusal)
            return OrderOutcome(OutcomeStatus.BLOCKED, intent.symbol, refusal)
        pending = self._record_pending(intent)
        try:
            placed = self.broker.submit(intent)
        except OrderRejected as exc:
            return self._on_rejected(intent, pending, exc)
        except Exception as exc:  # transport failure: the order may exist at the broker
            found = self._lookup_after_failure(intent.client_order_id)
            if found is None:
                return self._on_not_placed(intent, pending, exc)
            placed = found
        try:
            return self._on_placed(intent, pending, placed)
        except Exception as exc:  # the broker has the order: the books are what failed
            order = replace(pending, status=placed.status, broker_order_id=placed.broker_order_id)
            side = "Buy" if intent.side is Side.BUY else "Sell"
            placed_outcome = OrderOutcome(
                OutcomeStatus.PLACED,
                intent.symbol,
                f"{side} {fmt_qty(intent.qty)} {intent.symbol} placed",
                order,
            )
            return self.fell_behind(placed_outcome, exc)

    # ------------------------------------------------------------------ canceling

    def cancel_refusal(self, client_order_id: str) -> str | None:
        """Why ``/cancel`` of this order would be refused now (None: it may be canceled).

        Only the bot's own working orders are canceled. A protective stop or target of an open
        position is refused: it would leave the position unprotected; selling the position takes
        its legs with it."""
        order = self.get(client_order_id)
        if order is not None:
            if order.status is OrderStatus.PENDING_SUBMIT:
                return (
                    f"order {client_order_id} may or may not have reached the broker (pending_submit): "
                    "reconciliation settles it first"
                )
            if not order.status.is_open:
                return f"order {client_order_id} is {order.status.value} already: nothing left to cancel"
            return None
        try:
            theirs = self.broker.get_order_by_client_id(client_order_id)
        except Exception as exc:
            return f"cannot look up order {client_order_id} at the broker: {exc}"
        if theirs is None:
            return f"no order {client_order_id} on record or at the broker (/orders lists the open ones)"
        with self.db.session() as s:
            position = repo.get_position(s, theirs.symbol)
        if theirs.side is Side.SELL and position is not None and theirs.status.is_open:
            return (
                f"{client_order_id} protects the open {theirs.symbol} position (its stop-loss or "
                f"take-profit): canceling it would leave the position unprotected. /sell {theirs.symbol} all "
                "or /flatten closes the position and its protection with it"
            )
        return f"order {client_order_id} was not placed by the bot: cancel it at the broker"

    def cancel(self, client_order_id: str, by: str) -> OrderOutcome:
        """Cancel what is left of one of the bot's working orders (``cancel_refusal`` first)."""
        refusal = self.lease.refusal("order") or self.cancel_refusal(client_order_id)
        order = self.get(client_order_id)
        if refusal or order is None:
            symbol = order.symbol if order else ""
            return OrderOutcome(
                OutcomeStatus.BLOCKED, symbol, refusal or f"no order {client_order_id}", order
            )
        try:
            at_broker = self.broker.cancel(client_order_id)
        except OrderRejected as exc:
            return OrderOutcome(OutcomeStatus.REJECTED, order.symbol, str(exc), order)
        except Exception as exc:  # transport: the cancel may or may not have arrived
            return OrderOutcome(
                OutcomeStatus.FAILED,
                order.symbol,
                f"could not cancel {client_order_id} ({type(exc).__name__}: {exc}); "
                "it may still be working: see /orders",
                order,
            )
        filled = at_broker.filled_qty
        what = f"{order.side.value} {fmt_qty(order.qty)} {order.symbol}"
        log.info("cancel of %s (%s) asked by %s: broker says %s", client_order_id, what, by, at_broker.status)
        if at_broker.status is OrderStatus.FILLED:
            return OrderOutcome(
                OutcomeStatus.IGNORED, order.symbol, f"{what} filled before the cancel arrived", order
            )
        kept = ""
        if filled > 0:
            kept = f"; {fmt_qty(filled)} filled before and stay" + (
                " held" if order.side is Side.BUY else " sold"
            )
        return OrderOutcome(
            OutcomeStatus.CANCELED, order.symbol, f"{what} canceled{f' by {by}' if by else ''}{kept}", order
        )

    # ------------------------------------------------------------------ the books behind the broker

    def fell_behind(self, outcome: OrderOutcome, exc: Exception) -> OrderOutcome:
        """``outcome``'s order was placed at the broker, and recording it (or its fill) failed with
        ``exc``: stop approving entries until a reconciliation succeeds, say so, and return the
        truthful outcome (``books_behind``)."""
        problem = f"{type(exc).__name__}: {exc}"
        self.books_behind = problem
        order = outcome.order
        cid = order.client_order_id if order else ""
        what = (
            outcome.message.removesuffix(" placed") if outcome.message.endswith(" placed") else outcome.symbol
        )
        text = (
            f"{what} was placed at the broker ({cid}), but the books could not record it: {problem}. "
            "No new entries until a reconciliation brings the books in line (at the next sync)."
        )
        log.error("books behind the broker: %s", text)
        try:
            self.events.record(
                EventKind.BOOKS_BEHIND,
                text,
                severity=Severity.ERROR,
                symbol=outcome.symbol,
                client_order_id=cid,
            )
        except Exception:  # the database may refuse the alert too: the log line above has it
            log.exception("could not record the books-behind alert")
        return replace(
            outcome,
            status=OutcomeStatus.BOOKS_BEHIND,
            message=f"{outcome.message} at the broker; the books are behind ({problem}), will reconcile",
        )

    def caught_up(self) -> None:
        """A reconciliation brought the books in line with the broker: entries are allowed again."""
        if self.books_behind is None:
            return
        self.events.record(
            EventKind.BOOKS_CAUGHT_UP, "Books reconciled with the broker: new entries are allowed again."
        )
        self.books_behind = None

    def _record_pending(self, intent: OrderIntent) -> Order:
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
        return pending

    def _on_rejected(self, intent: OrderIntent, pending: Order, exc: OrderRejected) -> OrderOutcome:
        self.save(replace(pending, status=OrderStatus.REJECTED, error=str(exc)))
        self.events.record(
            EventKind.ORDER_REJECTED,
            f"{intent.side.value.title()} {fmt_qty(intent.qty)} {intent.symbol} rejected: {exc}",
            severity=Severity.WARNING,
            symbol=intent.symbol,
            client_order_id=intent.client_order_id,
        )
        return OrderOutcome(OutcomeStatus.REJECTED, intent.symbol, str(exc), pending)

    def _lookup_after_failure(self, client_order_id: str) -> Order | None:
        try:
            return self.broker.get_order_by_client_id(client_order_id)
        except Exception as exc:
            log.error("cannot look up order %s after a failed submit: %s", client_order_id, exc)
            # Unknown state: keep it pending; reconciliation resolves it. Never assume "failed".
            raise BrokerError(f"order {client_order_id} state unknown: {exc}", retriable=True) from exc

    def _on_not_placed(self, intent: OrderIntent, pending: Order, exc: Exception) -> OrderOutcome:
        failed = replace(pending, status=OrderStatus.SUBMIT_FAILED, error=f"{type(exc).__name__}: {exc}")
        self.save(failed)
        self.events.record(
            EventKind.ORDER_FAILED,
            f"{intent.side.value.title()} {intent.symbol} not placed: {exc}. "
            "The broker has no such order; the next cycle may retry it.",
            severity=Severity.ERROR,
            symbol=intent.symbol,
            client_order_id=intent.client_order_id,
        )
        return OrderOutcome(OutcomeStatus.FAILED, intent.symbol, str(exc), failed)

    def _on_placed(self, intent: OrderIntent, pending: Order, placed: Order) -> OrderOutcome:
        # The broker may place less than asked: an exit capped to what it holds (its stop sold the
        # rest first), a quantity floored to its increment. The books follow the broker's order.
        qty = placed.qty if 0 < placed.qty < intent.qty - 1e-9 else intent.qty
        order = replace(
            pending,
            qty=qty,
            status=placed.status,
            broker_order_id=placed.broker_order_id,
            filled_qty=0.0,
            filled_avg_price=None,
        )
        self.save(order)
        side = "Buy" if intent.side is Side.BUY else "Sell"
        less = f" (of {fmt_qty(intent.qty)} asked)" if qty < intent.qty else ""
        protection = ""
        if intent.stop_loss is not None:
            protection = f", stop {intent.stop_loss:,.2f}, target {intent.take_profit:,.2f}"
        self.events.record(
            EventKind.ORDER_PLACED,
            f"{side} {fmt_qty(qty)} {intent.symbol} placed{less} "
            f"({intent.strategy}: {intent.reason}{protection})",
            symbol=intent.symbol,
            client_order_id=intent.client_order_id,
            qty=qty,
        )
        return OrderOutcome(
            OutcomeStatus.PLACED, intent.symbol, f"{side} {fmt_qty(qty)} {intent.symbol} placed{less}", order
        )
