"""What to order: a strategy's signal, a trader's /buy or /sell, or /flatten, turned into a
checked and sized ``OrderIntent`` for the order path (``bot/service/orders.py``).

Entries are sized by ``risk.position_size`` (or take the trader's quantity), get a stop-loss and a
take-profit, and pass ``risk.check_entry`` and the broker's market hours; a blocked entry is
recorded as a ``RISK_BLOCKED`` event with the reason. Exits sell what is held, never more (no
short selling). Every request maps to a deterministic ``client_order_id``, and one that is on
record already is reported as a duplicate instead of being sent again.
"""

from __future__ import annotations

import math
from dataclasses import replace

from bot.brokers.base import Broker
from bot.clock import Clock
from bot.domain import (
    EventKind,
    ExitReason,
    OrderIntent,
    OrderStatus,
    OrderType,
    Severity,
    Side,
    Signal,
    client_order_id,
)
from bot.formatting import qty as fmt_qty
from bot.risk import check_entry, position_size, protective_levels
from bot.service.events import EventLog
from bot.service.orders import OrderRouter
from bot.service.reports import Reports
from bot.service.store import SettingsStore
from bot.views import OrderOutcome

EPSILON = 1e-9


class Trader:
    def __init__(
        self,
        broker: Broker,
        clock: Clock,
        store: SettingsStore,
        events: EventLog,
        orders: OrderRouter,
        reports: Reports,
    ) -> None:
        self.broker = broker
        self.clock = clock
        self.store = store
        self.events = events
        self.orders = orders
        self.reports = reports

    def on_signal(self, signal: Signal) -> OrderOutcome:
        """Enter on a buy signal, exit the strategy's own position on a sell signal."""
        cid = signal.client_order_id
        duplicate = self.orders.already_placed(cid)
        if duplicate:
            return duplicate
        position = self.reports.position(signal.symbol)
        if signal.side is Side.BUY:
            if position is not None and position.qty > EPSILON:  # a level signal repeating: not a risk event
                return OrderOutcome(
                    "ignored", signal.symbol, f"already holding {signal.symbol} ({position.strategy})"
                )
            return self.enter(
                symbol=signal.symbol,
                price=signal.price,
                strategy=signal.strategy,
                cid=cid,
                reason=signal.reason or "signal",
                stop=signal.stop_loss,
                target=signal.take_profit,
            )
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
        return self.orders.submit(intent)

    def manual(self, symbol: str, side: Side, qty: float | None, request_id: str, by: str) -> OrderOutcome:
        """A trader's market order; ``qty=None`` on a sell means the whole position."""
        cid = client_order_id("manual", symbol, request_id, side.value)
        duplicate = self.orders.already_placed(cid)
        if duplicate:
            return duplicate
        who = f"manual{f' by {by}' if by else ''}"
        if side is Side.BUY:
            if qty is None or not math.isfinite(qty) or qty <= 0:
                return OrderOutcome("blocked", symbol, "quantity must be a positive number")
            price = self.broker.latest_price(symbol, self.clock.now())
            if price is None or not math.isfinite(price) or price <= 0:
                return OrderOutcome("blocked", symbol, f"no current price for {symbol}")
            return self.enter(
                symbol=symbol, price=price, strategy="manual", cid=cid, reason=who, fixed_qty=qty
            )
        position = self.reports.position(symbol)
        if position is None:
            return OrderOutcome("blocked", symbol, f"no {symbol} position to sell")
        amount = position.qty if qty is None else qty
        if not math.isfinite(amount) or amount <= 0 or amount > position.qty + EPSILON:
            return OrderOutcome(
                "blocked",
                symbol,
                f"can sell between 0 and {fmt_qty(position.qty)} {symbol} (no short selling)",
            )
        return self.orders.submit(
            OrderIntent(
                client_order_id=cid,
                symbol=symbol,
                side=Side.SELL,
                qty=amount,
                strategy=position.strategy,
                reason=who,
                exit_reason=ExitReason.MANUAL,
            )
        )

    def flatten(self, request_id: str, by: str) -> list[OrderOutcome]:
        """A market sell of every position."""
        outcomes = []
        for position in self.reports.positions():
            if position.qty <= EPSILON:
                continue
            cid = client_order_id("flatten", position.symbol, request_id, "sell")
            duplicate = self.orders.already_placed(cid)
            if duplicate:
                outcomes.append(duplicate)
                continue
            intent = OrderIntent(
                client_order_id=cid,
                symbol=position.symbol,
                side=Side.SELL,
                qty=position.qty,
                strategy=position.strategy,
                reason=f"flatten{f' by {by}' if by else ''}",
                exit_reason=ExitReason.FLATTEN,
            )
            outcomes.append(self.orders.submit(intent))
        return outcomes

    def enter(
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
        """Size (unless ``fixed_qty``), protect and risk-check one entry, then send it."""
        now = self.clock.now()
        limits = self.store.limits()
        default_stop, default_target = protective_levels(limits, price)
        stop = stop if stop is not None and 0 < stop < price else default_stop
        target = target if target is not None and target > price else default_target
        account = self.broker.account()
        state = self.reports.portfolio_state(account.equity, account.cash, now)
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
            self.events.record(
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
        return self.orders.submit(intent)

    def refresh(self, outcome: OrderOutcome) -> OrderOutcome:
        """Re-read the order after a sync, so a reply can say "filled at ..."."""
        if outcome.order is None:
            return outcome
        order = self.orders.get(outcome.order.client_order_id) or outcome.order
        if order.status is OrderStatus.FILLED and order.filled_avg_price:
            verb = "Bought" if order.side is Side.BUY else "Sold"
            message = f"{verb} {fmt_qty(order.filled_qty)} {order.symbol} at {order.filled_avg_price:,.2f}"
            return replace(outcome, status="filled", order=order, message=message)
        return replace(outcome, order=order)
