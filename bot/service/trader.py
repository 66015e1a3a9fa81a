"""What to order: a strategy's signal, a trader's /buy or /sell, or /flatten, turned into a
checked and sized ``OrderIntent`` for the order path (``bot/service/orders.py``).

Entries are sized by ``risk.position_size`` (or take the trader's quantity), get a stop-loss and a
take-profit, and pass ``risk.check_entry`` and the broker's market hours; a blocked entry is
recorded as a ``RISK_BLOCKED`` event with the reason. A trader's /buy and /sell are checked
before the confirmation question (``manual_refusal``: the symbol, a real quantity, a position to
sell, the risk checks) and again when confirmed. Quantities follow the broker's rules
(``Broker.qty_rules``: its smallest order and increment). A position too small to order (dust)
blocks no entry; /flatten sells it where the broker takes such a sell, and reports it as dust
where it does not (Alpaca crypto below the pair's ``min_order_size``), rather than sending an
order that is refused on every /flatten. Exits sell what is held, never more (no
short selling); a short found at the broker (a mistake: tradebot never sells short) is closed by
/flatten or by a /buy of at most its size, which passes no entry risk check (it reduces exposure). Every request maps to a deterministic ``client_order_id``, and one that is on
record already is reported as a duplicate instead of being sent again.
"""

from __future__ import annotations

import logging
import math
from dataclasses import replace

from bot.brokers.base import Broker, OrderRejected
from bot.clock import Clock
from bot.domain import (
    EventKind,
    ExitReason,
    OrderIntent,
    OrderStatus,
    OrderType,
    OutcomeStatus,
    Position,
    Severity,
    Side,
    Signal,
    client_order_id,
)
from bot.formatting import qty as fmt_qty
from bot.risk import (
    Decision,
    QtyRules,
    check_entry,
    is_dust,
    on_grid,
    order_qty_problem,
    position_size,
    protective_levels,
)
from bot.service.events import EventLog
from bot.service.orders import OrderRouter
from bot.service.reports import Reports
from bot.service.store import SettingsStore
from bot.views import OrderOutcome

log = logging.getLogger(__name__)

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
            dust = position is not None and is_dust(signal.symbol, position.qty, self.rules(signal.symbol))
            if position is not None and not dust:  # a level signal repeating
                return OrderOutcome(
                    OutcomeStatus.IGNORED,
                    signal.symbol,
                    f"already holding {signal.symbol} ({position.strategy})",
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
            return OrderOutcome(OutcomeStatus.IGNORED, signal.symbol, f"no {signal.symbol} position to exit")
        if position.strategy != signal.strategy:
            return OrderOutcome(
                OutcomeStatus.IGNORED,
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

    def manual_refusal(self, symbol: str, side: Side, qty: float | None) -> str | None:
        """Why a trader's /buy or /sell would be refused now; None when it would be sent.

        Asked before the confirmation question, so a typo, a missing position or an entry the
        risk checks would block is answered at once; ``manual`` asks again when confirmed.
        """
        position = self.reports.position(symbol)
        if position is not None and position.qty < -EPSILON:
            return self._short_problem(symbol, side, qty, position.qty)
        if side is Side.BUY:
            problem = self._buy_problem(symbol, qty)
            if problem:
                return problem
            price = self._price(symbol)
            if price is None:
                return f"no current price for {symbol}"
            grid = on_grid(symbol, qty or 0.0, self.rules(symbol))
            decision, _planned = self._entry_decision(symbol, price, grid)
            return None if decision.approved else decision.reason
        if position is None or position.qty <= 0:
            return f"no {symbol} position to sell"
        try:
            rules = self.rules(symbol)
        except OrderRejected as exc:
            return str(exc)
        return order_qty_problem(symbol, position.qty if qty is None else qty, held=position.qty, rules=rules)

    def _short_problem(self, symbol: str, side: Side, qty: float | None, held: float) -> str | None:
        """A short (tradebot never sells short: a mistake to close): a buy of at most the short
        covers it, with no entry risk check (it reduces exposure); anything else is refused."""
        short = fmt_qty(-held)
        if side is Side.SELL:
            return (
                f"{symbol} is held SHORT ({short}): a sell would add to it; /buy {symbol} {short} covers it"
            )
        if qty is None or qty > -held + EPSILON:
            return (
                f"{symbol} is held SHORT ({short}): /buy {symbol} {short} covers it; a buy beyond that would "
                "open a position without a stop"
            )
        try:
            return order_qty_problem(symbol, qty, held=-held, rules=self.rules(symbol))
        except OrderRejected as exc:
            return str(exc)

    def preview(self, symbol: str, side: Side, qty: float | None, request_id: str) -> OrderOutcome | None:
        """``manual``'s answer when it would send nothing (a duplicate, a refusal); else None."""
        duplicate = self.orders.already_placed(client_order_id("manual", symbol, request_id, side.value))
        if duplicate:
            return duplicate
        refusal = self.manual_refusal(symbol, side, qty)
        return OrderOutcome(OutcomeStatus.BLOCKED, symbol, refusal) if refusal else None

    def manual(self, symbol: str, side: Side, qty: float | None, request_id: str, by: str) -> OrderOutcome:
        """A trader's market order; ``qty=None`` on a sell means the whole position."""
        cid = client_order_id("manual", symbol, request_id, side.value)
        duplicate = self.orders.already_placed(cid)
        if duplicate:
            return duplicate
        who = f"manual{f' by {by}' if by else ''}"
        held = self.reports.position(symbol)
        if held is not None and held.qty < -EPSILON:
            return self._cover(symbol, side, qty, cid, who, held)
        if side is Side.BUY:
            problem = self._buy_problem(symbol, qty)
            price = self._price(symbol)
            if problem or price is None or qty is None:
                return OrderOutcome(
                    OutcomeStatus.BLOCKED, symbol, problem or f"no current price for {symbol}"
                )
            fixed = on_grid(symbol, qty, self.rules(symbol))
            return self.enter(
                symbol=symbol, price=price, strategy="manual", cid=cid, reason=who, fixed_qty=fixed
            )
        problem = self.manual_refusal(symbol, side, qty)
        position = self.reports.position(symbol)
        if problem or position is None:
            return OrderOutcome(OutcomeStatus.BLOCKED, symbol, problem or f"no {symbol} position to sell")
        whole = qty is None or abs(qty - position.qty) <= 1e-9 * position.qty
        return self.orders.submit(
            OrderIntent(
                client_order_id=cid,
                symbol=symbol,
                side=Side.SELL,
                qty=position.qty if whole else on_grid(symbol, qty or 0.0, self.rules(symbol)),
                strategy=position.strategy,
                reason=who,
                exit_reason=ExitReason.MANUAL,
            )
        )

    def _cover(
        self, symbol: str, side: Side, qty: float | None, cid: str, who: str, position: Position
    ) -> OrderOutcome:
        """A trader's buy that closes (part of) a short: no bracket, no entry risk check."""
        problem = self._short_problem(symbol, side, qty, position.qty)
        if problem or qty is None:
            return OrderOutcome(
                OutcomeStatus.BLOCKED, symbol, problem or f"/buy {symbol} QTY covers the short"
            )
        return self.orders.submit(
            OrderIntent(
                client_order_id=cid,
                symbol=symbol,
                side=Side.BUY,
                qty=qty,
                strategy=position.strategy,
                reason=f"{who} (cover the short)",
                exit_reason=ExitReason.MANUAL,
            )
        )

    def _buy_problem(self, symbol: str, qty: float | None) -> str | None:
        if symbol not in self.reports.symbols:
            traded = ", ".join(self.reports.symbols) or "none"
            return f"{symbol} is not a traded symbol (TRADEBOT_SYMBOLS: {traded})"
        try:
            rules = self.rules(symbol)
        except OrderRejected as exc:
            return str(exc)
        return order_qty_problem(symbol, math.nan if qty is None else qty, rules=rules)

    def rules(self, symbol: str) -> QtyRules:
        """The broker's quantity rules for ``symbol`` (``Broker.qty_rules``)."""
        return self.broker.qty_rules(symbol)

    def _price(self, symbol: str) -> float | None:
        price = self.broker.latest_price(symbol, self.clock.now())
        return price if price is not None and math.isfinite(price) and price > 0 else None

    def flatten(self, request_id: str, by: str) -> list[OrderOutcome]:
        """A market order closing every position: a sell of each long, a buy of each short (tradebot
        never sells short; a short there is a mistake to close). One position failing never stops
        the others: each outcome says what was and was not done, and a failure is alerted."""
        outcomes = []
        for position in self.reports.positions():
            if position.qty == 0:  # a remainder however small is swept up (dust included)
                continue
            try:
                outcome = self._close(position, request_id, by)
            except Exception as exc:  # the broker's state is unknown: say so, go on with the next
                log.exception("flatten of %s failed", position.symbol)
                outcome = OrderOutcome(
                    OutcomeStatus.FAILED, position.symbol, f"{position.symbol} not closed: {exc}"
                )
                self.events.record(
                    EventKind.ORDER_FAILED,
                    f"/flatten: {position.symbol} not closed: {exc}",
                    severity=Severity.ERROR,
                    symbol=position.symbol,
                )
            outcomes.append(outcome)
        return outcomes

    def _close(self, position: Position, request_id: str, by: str) -> OrderOutcome:
        short = position.qty < -EPSILON
        if not short:
            try:
                rules: QtyRules | None = self.rules(position.symbol)
            except Exception as exc:  # the order itself will hear the broker's answer
                log.warning(
                    "quantity rules for %s unavailable: %s; flattening it anyway", position.symbol, exc
                )
                rules = None
            if rules and is_dust(position.symbol, position.qty, rules) and not rules.sells_any_remainder:
                # Below the broker's smallest order, and it takes no smaller sell: an order would
                # only be refused, on every /flatten. Said as what it is instead.
                return OrderOutcome(
                    OutcomeStatus.IGNORED,
                    position.symbol,
                    f"{fmt_qty(position.qty)} {position.symbol} is dust, below the broker's smallest "
                    f"order ({fmt_qty(rules.min_qty)}): it cannot be sold and is left as it is",
                )
        side = Side.BUY if short else Side.SELL
        cid = client_order_id("flatten", position.symbol, request_id, side.value)
        duplicate = self.orders.already_placed(cid)
        if duplicate:
            return duplicate
        intent = OrderIntent(
            client_order_id=cid,
            symbol=position.symbol,
            side=side,
            qty=abs(position.qty),
            strategy=position.strategy,
            reason=f"flatten{' (cover the short)' if short else ''}{f' by {by}' if by else ''}",
            exit_reason=ExitReason.FLATTEN,
        )
        return self.orders.submit(intent)

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
        levels = (stop, target)
        decision, (qty, stop, target) = self._entry_decision(symbol, price, fixed_qty, levels)
        if not decision.approved and self.store.paused():
            # Paused on purpose: each blocked entry is counted (in /status, and in the resume
            # alert), not alerted one by one; the signal is recorded with its outcome as ever.
            self.store.count_blocked_while_paused()
            return OrderOutcome(OutcomeStatus.BLOCKED, symbol, decision.reason)
        if not decision.approved:
            self.events.record(
                EventKind.RISK_BLOCKED,
                f"Entry {symbol} ({strategy}) blocked: {decision.reason}",
                severity=Severity.WARNING,
                symbol=symbol,
                client_order_id=cid,
                reason=decision.reason,
            )
            return OrderOutcome(OutcomeStatus.BLOCKED, symbol, decision.reason)
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

    def _entry_decision(
        self,
        symbol: str,
        price: float,
        fixed_qty: float | None,
        levels: tuple[float | None, float | None] = (None, None),
    ) -> tuple[Decision, tuple[float, float, float]]:
        """The risk decision on one entry, and its (quantity, stop, target). No side effects."""
        now = self.clock.now()
        limits = self.store.limits()
        default_stop, default_target = protective_levels(limits, price)
        stop, target = levels
        stop = stop if stop is not None and 0 < stop < price else default_stop
        target = target if target is not None and target > price else default_target
        account = self.broker.account()
        state = self.reports.portfolio_state(account.equity, account.cash, now)
        if fixed_qty is None:
            qty = position_size(
                limits,
                symbol=symbol,
                equity=account.equity,
                cash=state.available_cash,
                entry=price,
                stop=stop,
            )
        else:
            qty = fixed_qty
        decision = check_entry(limits, state, symbol=symbol, qty=qty, entry=price, stop=stop)
        if decision.approved and self.orders.books_behind:
            decision = Decision.deny(
                f"the books are behind the broker ({self.orders.books_behind}): "
                "no new entries until a reconciliation succeeds"
            )
        if decision.approved and not self.broker.is_tradable_now(symbol, now):
            decision = replace(decision, approved=False, reason=f"market for {symbol} is closed")
        return decision, (qty, stop, target)

    def refresh(self, outcome: OrderOutcome) -> OrderOutcome:
        """Re-read the order after a sync, so a reply can say "filled at ..."."""
        if outcome.order is None:
            return outcome
        order = self.orders.get(outcome.order.client_order_id) or outcome.order
        if order.status is OrderStatus.FILLED and order.filled_avg_price:
            verb = "Bought" if order.side is Side.BUY else "Sold"
            message = f"{verb} {fmt_qty(order.filled_qty)} {order.symbol} at {order.filled_avg_price:,.2f}"
            return replace(outcome, status=OutcomeStatus.FILLED, order=order, message=message)
        return replace(outcome, order=order)
