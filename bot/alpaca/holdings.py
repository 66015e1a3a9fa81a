"""What protects each position at Alpaca, read from Alpaca's own orders: the invariant, no I/O.

**The invariant**: every open position has a working stop for its whole quantity at Alpaca.
``Holding`` sorts one symbol's live orders (open, or ``held``) as Alpaca has them:

- **stops**: stop sells, a bracket's or OCO's stop leg waiting in ``held`` included (after the
  entry fills, the stop leg stays held until it triggers: alpaca-py#198, alpaca-trade-api-js#80);
- **targets**: take-profit sells (a bracket or OCO limit leg, a tradebot ``-tp``);
- **exits**: other working sells (a market exit queued for the open, a replacement executing);
- **entries**: working buys with legs: a bracket entry partly filled protects what it filled
  itself once it completes, so that part is covered, not protected a second time.

An order being canceled (``pending_cancel``) protects nothing: it is on its way out.

``cover`` turns one position row into a ``StopCover``: protected when stops, the entries' stop
legs and working exits cover every share that can carry a stop; dust when nothing can (a crypto
remainder below the pair's smallest order, a fraction of a share: Alpaca takes no fractional
stop); short (tradebot never sells short: nothing protects a short, it is to be closed); excess
when stops exceed what is held (a fall would sell into a short); unprotected otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from alpaca.trading.enums import OrderSide as AlpacaSide

from bot.alpaca import rules
from bot.alpaca.convert import STOP_TYPES, as_float, exit_reason_of, is_open, qty_key, symbol_of
from bot.domain import CoverState, ExitReason, Position, StopCover

EPSILON = 1e-9


def remaining(order: Any) -> float:
    return max(0.0, (as_float(order.qty) or 0.0) - (as_float(order.filled_qty) or 0.0))


def is_held(order: Any) -> bool:
    return str(getattr(order.status, "value", order.status)) == "held"


def is_canceling(order: Any) -> bool:
    """``pending_cancel``: it still holds the shares, but it is on its way out; it protects nothing."""
    return str(getattr(order.status, "value", order.status)) == "pending_cancel"


@dataclass
class Holding:
    """One symbol's live orders at Alpaca, sorted by what they do for the position."""

    symbol: str
    stops: list[Any] = field(default_factory=list)
    targets: list[Any] = field(default_factory=list)
    exits: list[Any] = field(default_factory=list)
    entries: list[Any] = field(default_factory=list)
    buys: list[Any] = field(default_factory=list)  # working buys without legs (a crypto entry)
    canceling: list[Any] = field(
        default_factory=list
    )  # sells pending_cancel: holding shares, protecting none
    latest: str = ""  # the id of the newest order on the symbol, whatever its state: a key per attempt

    @property
    def protective(self) -> list[Any]:
        """The orders an exit must cancel first: they hold the shares."""
        return [*self.stops, *self.targets]

    def stop_qty(self) -> float:
        return sum(remaining(o) for o in self.stops)

    def pending(self) -> float:
        """What working bracket entries' stop legs will protect: what those entries filled."""
        total = 0.0
        for entry in self.entries:
            if any(leg.type in STOP_TYPES for leg in entry.legs or []):
                total += as_float(entry.filled_qty) or 0.0
        return total

    def exiting(self) -> float:
        return sum(remaining(o) for o in self.exits)

    def stop_price(self) -> float | None:
        for order in self.stops:
            return as_float(order.stop_price)
        for entry in self.entries:
            for leg in entry.legs or []:
                if leg.type in STOP_TYPES:
                    return as_float(leg.stop_price)
        return None

    def target_price(self) -> float | None:
        for order in self.targets:
            return as_float(order.limit_price)
        for entry in self.entries:
            for leg in entry.legs or []:
                if exit_reason_of(leg) is ExitReason.TAKE_PROFIT:
                    return as_float(leg.limit_price)
        return None


def sort_orders(orders: list[Any]) -> dict[str, Holding]:
    """``orders`` (``status=all&nested=true``, flattened: parents before their legs) by symbol."""
    holdings: dict[str, Holding] = {}
    entry_legs: set[str] = set()
    newest: dict[str, Any] = {}
    for order in orders:
        symbol = symbol_of(order)
        holding = holdings.setdefault(symbol, Holding(symbol))
        created = order.created_at
        if symbol not in newest or (created is not None and created > newest[symbol].created_at):
            newest[symbol] = order
        if str(order.id) in entry_legs or not is_open(order):
            continue
        if is_canceling(order):
            if order.side == AlpacaSide.SELL:
                holding.canceling.append(order)
            continue
        if order.side == AlpacaSide.BUY:
            if order.legs:
                holding.entries.append(order)
                entry_legs.update(str(leg.id) for leg in order.legs)
            else:
                holding.buys.append(order)
            continue
        if order.type in STOP_TYPES:
            holding.stops.append(order)
        elif exit_reason_of(order) is ExitReason.TAKE_PROFIT:
            holding.targets.append(order)
        else:
            holding.exits.append(order)
    for symbol, order in newest.items():
        holdings[symbol].latest = str(order.id)
    return holdings


def protectable(qty: float, *, crypto: bool, step: float = 1.0, minimum: float = 1.0) -> float:
    """The part of ``qty`` a stop can carry: whole shares; a crypto quantity on the pair's
    increment and at least its smallest order (else nothing: dust)."""
    if qty <= EPSILON:
        return 0.0
    if not crypto:
        return float(int(qty + EPSILON))
    floored = rules.floor_qty(qty, step)
    return floored if floored + 1e-12 >= minimum else 0.0


def cover(
    symbol: str,
    held: float,
    holding: Holding,
    books: Position | None,
    *,
    need: float,
    guard_target: float | None = None,
    guard_pending: float = 0.0,
) -> StopCover:
    """The invariant for one position (``need``: what of ``held`` can carry a stop)."""
    stop = holding.stop_price() or (books.stop_loss if books else None)
    target = holding.target_price() or guard_target or (books.take_profit if books else None)

    def state(kind: CoverState, covered: float, note: str) -> StopCover:
        return StopCover(symbol, held, covered, stop, target, kind, note)

    if held < -EPSILON:
        short = qty_key(-held)
        return state(
            CoverState.SHORT,
            0.0,
            f"SHORT {short} at Alpaca: tradebot never sells short and no stop protects a short; "
            f"close it (/flatten, or /buy {symbol} {short})",
        )
    stops, pending, exiting = holding.stop_qty(), holding.pending() + guard_pending, holding.exiting()
    covered = stops + pending + exiting
    if stops + pending > held + EPSILON:
        excess = (
            f"stops for {qty_key(stops + pending)} on {qty_key(held)} held: a fall would sell into a short"
        )
        return state(CoverState.EXCESS, covered, excess)
    if need <= EPSILON:
        return state(CoverState.DUST, covered, "too small for any stop Alpaca takes (dust)")
    if covered + EPSILON < need:
        return state(
            CoverState.UNPROTECTED,
            covered,
            f"NO stop for {qty_key(need - covered)} of {qty_key(held)} at Alpaca",
        )
    how = []
    if stops > EPSILON:
        how.append("held stop leg" if any(is_held(o) for o in holding.stops) else "working stop")
    if pending > EPSILON:
        how.append("the working entry's stop leg")
    if exiting > EPSILON:
        how.append("an exit working")
    if need < held - EPSILON:
        how.append(f"{qty_key(held - need)} too small for a stop")
    return state(CoverState.PROTECTED, covered, ", ".join(how))
