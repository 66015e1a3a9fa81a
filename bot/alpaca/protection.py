"""Protection at Alpaca: every share held has a working stop, checked against what Alpaca has.

The invariant (``bot.alpaca.holdings``): every open position has a working stop for its whole
quantity at Alpaca, a ``held`` stop leg included. It is read from Alpaca each time
(``status=all&nested=true`` from a week before the books' oldest open position opened, or 90 days
back: a GTC order lives 90 days), never from memory, and checked after every action that touches a stop and
on every cycle (``ensure``). Stop and target levels come from Alpaca's orders, or from the books
when Alpaca shows none.

What touches protection, and how each keeps the invariant:

- **An exit** (``exit``): the account's flags first (a blocked or suspended account refuses the
  exit in one line and leaves the stop and target alone); then ``release`` cancels every order
  holding the shares (the held stop leg too) and waits until Alpaca says each is final, following
  a replaced order to its replacement and waiting out a ``pending_replace``; then what is held is
  read again and the sell is capped to it: a stop that fired while its cancel was in flight has
  sold those shares already, and selling them again would open a short (a paper account has
  shorting enabled). Nothing left: the exit is not sent and says why.
- **A refused or failed exit** puts the stop and the target back (``restore``) for what is held,
  and says exactly what came back; a release that fails half-way (a 429, a cancel that does not
  complete in time, a ``pending_replace`` that does not end) restores what it canceled.
- **A partial sell** protects what was held before it less what it sold (``protect_remainder``),
  never what a position read after the sell says (a market order fills inside the POST).
- **Every cycle** (``ensure``): a position short of stops gets them (an OCO for the part not
  covered, or, when what is there holds the shares, one OCO for all of it); a part a working
  bracket entry will protect itself is left to it. A stop that cannot be placed after the retries
  is followed by a market exit when ``emergency_exit`` is on (``EMERGENCY_EXIT``), and an alert
  either way. A short (tradebot never sells short) and stops beyond what is held are alerted.
- **Crypto** (no brackets at Alpaca): the guards (``bot.alpaca.guards``) keep a stop-limit at
  Alpaca for what is held and watch the target on every sync.

Problems that persist (a short, a position with no stop level known) are alerted once, then again
only when they change.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from alpaca.trading.enums import OrderStatus as AlpacaStatus

from bot.alpaca import rules
from bot.alpaca.convert import as_float, is_open, qty_key, symbol_of
from bot.alpaca.guards import CryptoGuards
from bot.alpaca.holdings import EPSILON, Holding, cover, protectable, sort_orders
from bot.alpaca.protect import (
    CryptoGuard,
    market_sell,
    place_protective,
    protect_stock,
)
from bot.alpaca.venue import AlpacaVenue, signed_qty
from bot.brokers.base import BrokerError, OrderRejected
from bot.domain import (
    CoverState,
    OrderIntent,
    Position,
    StopCover,
    client_order_id,
)
from bot.domain import is_crypto as crypto_symbol

log = logging.getLogger(__name__)

HORIZON = timedelta(days=90)  # a GTC order expires after 90 days: no older order can protect anything


@dataclass
class Released:
    """What ``release`` canceled before an exit, to put back if the exit fails."""

    symbol: str
    stop: float | None
    target: float | None
    held_before: float
    held_after: float = 0.0
    canceled: list[str] = field(default_factory=list)  # Alpaca ids of the orders canceled
    guards: list[CryptoGuard] = field(default_factory=list)

    @property
    def key(self) -> str:
        """A key of this attempt for the ids of what replaces them: the orders it canceled."""
        return ",".join(sorted(self.canceled)) or f"{self.symbol}:{self.held_before}"

    @property
    def fired(self) -> float:
        """What the protection sold while it was being canceled."""
        return max(0.0, self.held_before - self.held_after)


class Protection:
    def __init__(
        self,
        venue: AlpacaVenue,
        *,
        cancel_wait: float = 5.0,
        emergency_exit: bool = True,
        sleep: Callable[[float], None] = time.sleep,
        horizon: timedelta = HORIZON,
    ) -> None:
        self.venue = venue
        self.cancel_wait = cancel_wait
        self.emergency_exit = emergency_exit
        self.sleep = sleep
        self.horizon = horizon
        self.guards = CryptoGuards(venue, self)
        self.alerts: list[str] = []  # for the next sync
        self._said: dict[str, str] = {}  # symbol -> the standing problem last alerted
        self._since: datetime | None = None  # the books' oldest open position

    # ------------------------------------------------------------------ the truth
    def holdings(self, symbols: list[str] | None = None) -> dict[str, Holding]:
        now = self.venue.now()
        after = now - self.horizon
        if self._since is not None:
            after = max(after, self._since)
        return sort_orders(self.venue.orders_since(after, symbols))

    def holding(self, symbol: str) -> Holding:
        return self.holdings([symbol]).get(symbol) or Holding(symbol)

    def need(self, symbol: str, held: float) -> float:
        """What of ``held`` a stop can carry at Alpaca."""
        if not crypto_symbol(symbol):
            return protectable(held, crypto=False)
        step, minimum = self.venue.step(symbol)
        return protectable(held, crypto=True, step=step, minimum=minimum)

    def covers(self, books: list[Position]) -> list[StopCover]:
        """The invariant for every position Alpaca holds (``books``: the levels on record)."""
        self._note_books(books)
        rows = self.venue.position_rows()
        if not rows:
            return []
        holdings = self.holdings()
        on_record = {p.symbol: p for p in books}
        return [self._cover(row, holdings, on_record) for row in rows]

    def _cover(self, row: Any, holdings: dict[str, Holding], books: dict[str, Position]) -> StopCover:
        symbol, held = symbol_of(row), signed_qty(row)
        holding = holdings.get(symbol) or Holding(symbol)
        guard = self.guards.of(symbol)
        pending = 0.0
        if guard is not None and guard.entry_order_id:
            entry = next((o for o in holding.buys if str(o.id) == guard.entry_order_id), None)
            pending = (as_float(entry.filled_qty) or 0.0) if entry is not None else 0.0
        return cover(
            symbol,
            held,
            holding,
            books.get(symbol),
            need=self.need(symbol, held) if held > 0 else 0.0,
            guard_target=guard.target if guard else None,
            guard_pending=pending,
        )

    def _note_books(self, books: list[Position]) -> None:
        """Where to start reading orders: a week before the oldest position on record opened (its
        entry may have waited for the open over a long weekend); the whole 90 days when one was
        adopted (its stops may be older than the adoption) or none is on record."""
        opened = [p.opened_at for p in books]
        if not books or any(p.strategy == "external" for p in books) or None in opened:
            self._since = None
        else:
            self._since = min(o for o in opened if o is not None) - timedelta(days=7)

    # ------------------------------------------------------------------ an exit
    def exit(self, intent: OrderIntent, request: Any, send: Callable[[Any], Any]) -> tuple[Any, str]:
        """Sell ``request`` (prepared from ``intent``) without ever leaving a share naked or selling
        twice: release, re-read, cap, send; put back on failure; protect what remains. Returns
        the order and a note ("" or what was done about the remainder)."""
        symbol = intent.symbol
        released = self.release(symbol, what=f"sell {symbol}: exit not sent")
        try:
            qty = self.exit_qty(symbol, float(request.qty), released)
        except OrderRejected as exc:
            note = self.restore(released) if released.held_after > EPSILON else ""
            raise OrderRejected(f"{exc}{f'. {note}' if note else ''}") from None
        if qty != float(request.qty):
            log.warning(
                "%s: selling %s, not %s: %s is what Alpaca holds after its protection was released",
                symbol,
                qty_key(qty),
                qty_key(float(request.qty)),
                qty_key(released.held_after),
            )
            request = request.model_copy(update={"qty": qty})
        try:
            raw = send(request)
        except BrokerError as exc:
            note = self.restore(released)
            raise type(exc)(f"{exc}. {note}", retriable=exc.retriable) from None
        note = self.protect_remainder(released, qty, intent.client_order_id)
        return raw, note

    def exit_qty(self, symbol: str, asked: float, released: Released) -> float:
        """What the exit may sell: never more than Alpaca holds now, never into a short."""
        held = released.held_after
        if held <= EPSILON:
            if released.fired > EPSILON:
                raise OrderRejected(
                    f"sell {symbol}: its stop-loss sold {qty_key(released.fired)} first, while the exit "
                    "was canceling it; nothing is left to sell"
                )
            if held < -EPSILON:
                raise OrderRejected(f"sell {symbol}: Alpaca holds {symbol} SHORT; a sell would add to it")
            raise OrderRejected(f"sell {symbol}: no {symbol} position at Alpaca to sell")
        qty = min(asked, held)
        if crypto_symbol(symbol):
            step, minimum = self.venue.step(symbol)
            qty = rules.floor_qty(qty, step)
            if qty + 1e-12 < minimum:
                raise OrderRejected(
                    f"sell {symbol}: {qty_key(held)} held is below Alpaca's smallest order of "
                    f"{qty_key(minimum)} (dust): it cannot be sold"
                )
        return qty

    def release(self, symbol: str, *, what: str) -> Released:
        """Cancel every order holding ``symbol``'s shares (a held stop leg included) and wait until
        Alpaca says each is final. Account flags first: a blocked account refuses here, untouched.
        Raises ``BrokerError`` after putting back what it canceled when it cannot finish."""
        refusal = self.venue.flags().refusal
        if refusal:
            raise OrderRejected(f"{what}: {refusal}; its stop and target stay at Alpaca")
        held_before = self.venue.held(symbol)
        holding = self.holding(symbol)
        orders = holding.protective
        guards = self.guards.take(symbol)
        released = Released(
            symbol,
            holding.stop_price()
            if holding.stop_price() is not None
            else next((g.stop for g in guards), None),
            holding.target_price()
            if holding.target_price() is not None
            else next((g.target for g in guards), None),
            held_before,
            held_before,
        )
        released.guards = guards
        if not orders and not holding.canceling:
            released.held_after = self.venue.held(symbol)  # a stop may have fired since the first read
            return released
        try:
            self._await_replace(symbol, orders)
        except BrokerError as exc:
            for guard in guards:  # nothing was canceled: the guards keep watching
                self.guards.put(guard)
            raise BrokerError(f"{what}: {exc}", retriable=exc.retriable) from None
        try:
            for order in orders:
                log.info(
                    "canceling protective %s order %s on %s", order.type.value, order.client_order_id, symbol
                )
                if self.venue.cancel_raw(order, f"{symbol}'s protective order {order.client_order_id}") == "":
                    released.canceled.append(str(order.id))
            self._await_final(symbol, [*orders, *holding.canceling], released)
        except BrokerError as exc:
            note = self.restore(released)
            raise BrokerError(f"{what}: {exc}. {note}", retriable=exc.retriable) from None
        released.held_after = self.venue.held(symbol)
        return released

    def _await_replace(self, symbol: str, orders: list[Any]) -> None:
        """An order being replaced refuses a cancel (orders.md, ``pending_replace``): wait for it
        before canceling anything, so a group is never half canceled."""
        deadline = time.monotonic() + self.cancel_wait
        waiting = [o for o in orders if o.status == AlpacaStatus.PENDING_REPLACE]
        while waiting:
            if time.monotonic() > deadline:
                raise BrokerError(
                    f"{symbol}'s protective order {waiting[0].client_order_id} is being replaced at Alpaca "
                    f"(pending_replace) after {self.cancel_wait:g} s; nothing was canceled",
                    retriable=True,
                )
            self.sleep(0.2)
            waiting = [
                current
                for current in (self.venue.order(str(o.id)) for o in waiting)
                if current.status == AlpacaStatus.PENDING_REPLACE
            ]

    def _await_final(self, symbol: str, orders: list[Any], released: Released) -> None:
        """Until every order is final: a replaced one is followed to its replacement (canceled too if
        it works), one that refused the cancel is asked again once it can be."""
        deadline = time.monotonic() + self.cancel_wait
        pending = {str(o.id): o for o in orders}
        while pending:
            for order_id in list(pending):
                current = self.venue.order(order_id)
                if current.status == AlpacaStatus.REPLACED and current.replaced_by:
                    del pending[order_id]
                    new = self.venue.order(str(current.replaced_by))
                    if is_open(new) and new.side == current.side:
                        self.venue.cancel_raw(new, f"{symbol}'s replacement order {new.client_order_id}")
                        released.canceled.append(str(new.id))
                        pending[str(new.id)] = new
                    continue
                if not is_open(current):
                    del pending[order_id]
                elif current.status not in (AlpacaStatus.PENDING_CANCEL, AlpacaStatus.PENDING_REPLACE) and (
                    self.venue.cancel_raw(current, f"{symbol}'s protective order {current.client_order_id}")
                    == ""
                ):
                    released.canceled.append(order_id)
            if pending and time.monotonic() > deadline:
                states = ", ".join(
                    sorted({str(getattr(o.status, "value", o.status)) for o in pending.values()})
                )
                raise BrokerError(
                    f"{symbol}'s protective orders are still being canceled at Alpaca ({states}) after "
                    f"{self.cancel_wait:g} s",
                    retriable=True,
                )
            if pending:
                self.sleep(0.2)

    def await_final(self, order: Any) -> Any:
        """``order`` read again until it is no longer open, for ``cancel_wait`` seconds at most."""
        deadline = time.monotonic() + self.cancel_wait
        current = self.venue.order(str(order.id))
        while is_open(current) and time.monotonic() <= deadline:
            self.sleep(0.2)
            current = self.venue.order(str(order.id))
        return current

    def restore(self, released: Released) -> str:
        """Put back the protection ``release`` canceled, for what is held now; say exactly what
        came back (for the trader and the alert)."""
        symbol = released.symbol
        try:
            held = self.venue.held(symbol)
            if held <= EPSILON:
                return f"nothing of {symbol} is held at Alpaca now: no stop to put back"
            if crypto_symbol(symbol):
                return self.guards.restore(released, held)
            if not released.canceled:
                if released.stop is None and released.target is None:
                    return f"{symbol} had no stop or target at Alpaca to put back"
                return f"{symbol}'s stop and target were left in place at Alpaca"
            holding = self.holding(symbol)
            need = self.need(symbol, held)
            covered = holding.stop_qty() + holding.pending() + holding.exiting()
            if covered + EPSILON >= need:
                return f"{symbol}'s stop is in place at Alpaca"
            if released.stop is None and released.target is None:
                return f"{symbol} had no stop or target at Alpaca to put back: it has NO stop"
            qty = need - covered
            protect_stock(self.venue, symbol, qty, released.stop, released.target, f"restore:{released.key}")
        except BrokerError as exc:
            return (
                f"{symbol} has NO stop at Alpaca: putting it back failed too ({exc}); "
                "the next cycle tries again: protect it by hand or close it"
            )
        levels = f"stop {released.stop} and target {released.target}"
        if released.stop is None:
            return f"{symbol}'s target {released.target} was put back for {qty_key(qty)} shares; it has NO stop at Alpaca"
        return f"{symbol}'s {levels} were put back at Alpaca for {qty_key(qty)} shares"

    def protect_remainder(self, released: Released, sold: float, key: str) -> str:
        """After a partial sell: what was held before it, less what it sold, gets the stop and target back."""
        symbol = released.symbol
        remainder = released.held_after - sold
        if remainder <= EPSILON:
            return ""
        if released.stop is None and released.target is None:
            return ""
        try:
            if crypto_symbol(symbol):
                guard = CryptoGuard(key, "", symbol, released.stop, released.target)
                self.guards.put(guard)
                keep, note = self.guards.place_stop(guard, remainder)
                if not keep:
                    self.guards.drop(key)
                    return note
                return f"the {qty_key(guard.qty)} {symbol} left keep a stop at {guard.stop}{note}"
            whole = self.need(symbol, remainder)
            if whole <= EPSILON:
                return f"the {qty_key(remainder)} {symbol} left is less than a share: no stop can carry it"
            protect_stock(self.venue, symbol, whole, released.stop, released.target, key)
        except BrokerError as exc:
            problem = f"{symbol}: the {qty_key(remainder)} left after the sell are unprotected: {exc}"
            self.alerts.append(problem)
            return problem
        log.info("re-protected the %s %s left after a partial sell", qty_key(whole), symbol)
        return (
            f"the {qty_key(whole)} {symbol} left keep their stop {released.stop} and target {released.target}"
        )

    # ------------------------------------------------------------------ every cycle
    def ensure(self, books: list[Position]) -> list[str]:
        """Check the invariant at Alpaca and repair what breaks it; what was done or is wrong, in words."""
        self._note_books(books)
        notes: list[str] = []
        rows = self.venue.position_rows()
        held = {symbol_of(r): r for r in rows}
        for guard in self.guards.all():  # a guard whose coins are gone has nothing to guard
            if guard.symbol not in held and not guard.entry_order_id:
                self.guards.drop(guard.key)
        for symbol in list(self._said):
            if symbol not in held:
                del self._said[symbol]
        if not rows:
            return notes
        on_record = {p.symbol: p for p in books}
        self.guards.rearm(rows, on_record)
        holdings = self.holdings()
        repaired: list[str] = []
        for row in rows:
            symbol = symbol_of(row)
            state = self._cover(row, holdings, on_record)
            if state.ok:
                self._said.pop(symbol, None)
                continue
            if (
                state.state is CoverState.UNPROTECTED
                and state.stop is not None
                and not self.venue.flags().refusal
            ):
                note = self._reprotect(row, holdings.get(symbol) or Holding(symbol), state)
                if "NO stop" not in note:
                    repaired.append(symbol)
                    self._said.pop(symbol, None)
                    notes.append(note)
                elif self._said.get(symbol) != note:  # the same failure, cycle after cycle: said once
                    self._said[symbol] = note
                    notes.append(note)
                continue
            problem = state.note
            if state.state is CoverState.UNPROTECTED:
                refusal = self.venue.flags().refusal
                problem += (
                    f", and it cannot be put back: {refusal}"
                    if refusal
                    else f": no stop level at Alpaca or on record: place a stop at Alpaca or close it (/sell {symbol} all)"
                )
            if self._said.get(symbol) != problem:
                self._said[symbol] = problem
                notes.append(f"{symbol}: {problem}")
        return notes + self._recheck(repaired, on_record)

    def _recheck(self, symbols: list[str], books: dict[str, Position]) -> list[str]:
        """After a repair, the invariant read again at Alpaca: what is still wrong, in words."""
        if not symbols:
            return []
        rows = [r for r in self.venue.position_rows() if symbol_of(r) in symbols]
        holdings = self.holdings(symbols)
        still = [self._cover(row, holdings, books) for row in rows]
        return [f"{c.symbol} after the repair: {c.note}" for c in still if not c.ok]

    def _reprotect(self, row: Any, holding: Holding, state: StopCover) -> str:
        symbol, held = symbol_of(row), signed_qty(row)
        need = self.need(symbol, held)
        missing = need - state.covered
        if crypto_symbol(symbol):
            return self._reprotect_crypto(symbol, held, holding, state)
        try:
            available = as_float(getattr(row, "qty_available", None))
            available = held if available is None else available
            key = holding.latest or symbol
            qty = float(int(missing + EPSILON))
            if available + EPSILON < qty or qty <= 0 or holding.canceling:
                # What is there holds the shares (or is still being canceled): one OCO for all.
                released = self.release(symbol, what=f"re-protecting {symbol}")
                qty = self.need(symbol, released.held_after)
                key = released.key
                if qty <= EPSILON:
                    return f"{symbol}: nothing left to protect at Alpaca"
        except BrokerError as exc:  # the orders there could not be cleared: the next cycle tries again
            return f"{symbol} has NO stop for {qty_key(missing)} of {qty_key(held)} at Alpaca: {exc}"
        try:
            _, note = protect_stock(self.venue, symbol, qty, state.stop, state.target, f"reprotect:{key}")
        except BrokerError as exc:
            return self._emergency(symbol, f"putting its stop back failed: {exc}")
        return (
            f"{symbol} had no stop for {qty_key(missing)} of {qty_key(held)} at Alpaca: put back "
            f"(stop {state.stop}, target {state.target}) for {qty_key(qty)} shares{f'; {note}' if note else ''}"
        )

    def _reprotect_crypto(self, symbol: str, held: float, holding: Holding, state: StopCover) -> str:
        try:
            if holding.protective or holding.canceling:  # a stop for part of it holds the coins
                held = self.release(symbol, what=f"re-protecting {symbol}").held_after
        except BrokerError as exc:
            return f"{symbol} has NO stop for all of it at Alpaca: {exc}"
        guard = self.guards.of(symbol)
        if guard is None:
            guard = CryptoGuard(f"reprotect:{holding.latest or symbol}", "", symbol, state.stop, state.target)
            self.guards.put(guard)
        guard.stop, guard.stop_client_order_id, guard.entry_order_id = state.stop, None, ""
        try:
            keep, note = self.guards.place_stop(guard, held)
        except BrokerError as exc:
            guard.stop_client_order_id = None
            return self._emergency(symbol, f"putting its stop back failed: {exc}")
        if not keep:
            self.guards.drop(guard.key)
            return f"{symbol}: {note}"
        return f"{symbol} had no stop at Alpaca: put back at {guard.stop} for {qty_key(guard.qty)}{note}"

    def _emergency(self, symbol: str, why: str) -> str:
        """No stop could be placed: sell at market when ``emergency_exit`` is on; say so either way."""
        if not self.emergency_exit:
            return (
                f"{symbol} has NO stop at Alpaca ({why}); EMERGENCY_EXIT is off: "
                f"protect it by hand or close it (/sell {symbol} all)"
            )
        try:
            released = self.release(symbol, what=f"emergency exit of {symbol}")
            held = released.held_after
            crypto = crypto_symbol(symbol)
            qty = self.exit_qty(symbol, held, released) if crypto else held
            if qty <= EPSILON:
                return f"{symbol} has NO stop at Alpaca ({why}) and nothing is left to sell"
            key = released.key
            raw, _ = place_protective(
                self.venue,
                lambda coid: market_sell(symbol, qty, coid, crypto=crypto),
                lambda n: client_order_id("emergency", symbol, key, n) + "-sl-mkt",
            )
        except BrokerError as exc:
            return (
                f"{symbol} has NO stop at Alpaca ({why}) and the emergency exit failed too ({exc}): act now"
            )
        log.error("emergency exit of %s: %s sold at market (%s)", symbol, qty_key(qty), why)
        return (
            f"{symbol} had NO stop at Alpaca and none could be placed ({why}): EMERGENCY_EXIT sold "
            f"{qty_key(qty)} at market ({raw.client_order_id})"
        )
