"""Risk limits, position sizing and entry checks: pure functions, no I/O.

The service calls these for every order, manual or automatic, so nothing can bypass them.
A denial always carries a sentence a trader can read.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from bot.domain import Position, is_crypto

CRYPTO_QTY_STEP = 1e-6  # Alpaca accepts crypto quantities to 9 decimals; 6 keeps orders readable


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """All in percent of equity unless said otherwise. Defaults match ``.env.example``."""

    risk_per_trade_pct: float = 2.0
    max_position_pct: float = 20.0
    stop_loss_pct: float = 2.0
    take_profit_pct: float = 4.0
    max_portfolio_risk_pct: float = 6.0
    max_open_trades: int = 5
    daily_loss_limit_pct: float = 5.0

    @classmethod
    def from_settings(cls, settings: Any) -> RiskLimits:
        return cls(**{f.name: getattr(settings, f.name) for f in fields(cls)})

    def with_value(self, name: str, value: float) -> RiskLimits:
        """A copy with one limit changed, checked against ``BOUNDS``."""
        key = name.strip().lower()
        if key not in BOUNDS:
            raise ValueError(f"unknown limit {name!r}: one of {', '.join(BOUNDS)}")
        low, high = BOUNDS[key]
        if not math.isfinite(value) or not low <= value <= high:
            raise ValueError(f"{key} must be between {low:g} and {high:g}")
        if key == "max_open_trades":
            if value != int(value):
                raise ValueError("max_open_trades must be a whole number")
            value = int(value)
        changes: dict[str, Any] = {key: value}
        return replace(self, **changes)

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


# What `/risk set` may change, and within which bounds: wide enough to be useful,
# narrow enough that a typo cannot bet the account.
BOUNDS: dict[str, tuple[float, float]] = {
    "risk_per_trade_pct": (0.1, 5.0),
    "max_position_pct": (1.0, 50.0),
    "stop_loss_pct": (0.2, 20.0),
    "take_profit_pct": (0.2, 50.0),
    "max_portfolio_risk_pct": (0.5, 20.0),
    "max_open_trades": (1, 50),
    "daily_loss_limit_pct": (0.5, 20.0),
}


@dataclass(frozen=True, slots=True)
class Decision:
    approved: bool
    reason: str = ""

    @classmethod
    def deny(cls, reason: str) -> Decision:
        return cls(False, reason)


APPROVED = Decision(True)


def protective_levels(limits: RiskLimits, entry: float) -> tuple[float, float]:
    """Stop-loss and take-profit for a long entry at ``entry``, rounded to the cent at $1 and above."""
    stop = entry * (1 - limits.stop_loss_pct / 100)
    target = entry * (1 + limits.take_profit_pct / 100)
    return round_price(stop), round_price(target)


def round_price(price: float) -> float:
    """Alpaca rejects sub-penny prices at $1 and above; below $1 it takes 4 decimals."""
    return round(price, 2) if price >= 1 else round(price, 4)


def round_qty(symbol: str, qty: float) -> float:
    """Round down to what the venue accepts: whole shares for stocks (brackets need them)."""
    if qty <= 0 or not math.isfinite(qty):
        return 0.0
    if is_crypto(symbol):
        return math.floor(qty / CRYPTO_QTY_STEP) * CRYPTO_QTY_STEP
    return float(math.floor(qty + 1e-9))


MAX_ORDER_QTY = 1e9  # no order needs a billion shares or coins: a larger number is a typo or an attack


def qty_step(symbol: str) -> float:
    """The smallest order and the quantity increment: whole shares for stocks (entries carry a
    stop-loss/take-profit bracket, which Alpaca takes in whole shares only), 0.000001 for crypto."""
    return CRYPTO_QTY_STEP if is_crypto(symbol) else 1.0


@dataclass(frozen=True, slots=True)
class QtyRules:
    """The quantities a broker takes for one symbol (``Broker.qty_rules``).

    ``min_qty``: the smallest order; ``step``: an order's quantity is a whole number of these;
    ``sells_any_remainder``: whether it takes a sell of a whole position that is below
    ``min_qty`` or off the step (the simulator does; Alpaca does not for crypto below the pair's
    ``min_order_size``). A position it will not take a sell of is dust that cannot be sold."""

    min_qty: float
    step: float
    sells_any_remainder: bool = True

    @classmethod
    def default(cls, symbol: str) -> QtyRules:
        """The simulator's rules, and the portfolio backtest's: ``qty_step`` for both."""
        step = qty_step(symbol)
        return cls(step, step, True)


def is_dust(symbol: str, qty: float, rules: QtyRules | None = None) -> bool:
    """A position too small to place an order for: it blocks nothing, and /flatten sweeps it up
    where the broker takes it (``rules.sells_any_remainder``); elsewhere it is reported as dust."""
    rules = rules or QtyRules.default(symbol)
    return qty < rules.min_qty * (1 - 1e-9)


def _units(qty: float) -> str:
    return f"{qty:,.9f}".rstrip("0").rstrip(".") if qty >= 1e-9 else f"{qty:g}"


def _unit(symbol: str, qty: float) -> str:
    return (
        ("one share" if qty == 1 else f"{_units(qty)} shares")
        if not is_crypto(symbol)
        else (f"{_units(qty)} {symbol.split('/')[0]}")
    )


def order_qty_problem(
    symbol: str, qty: float, *, held: float | None = None, rules: QtyRules | None = None
) -> str | None:
    """Why ``qty`` is not a real quantity for an order of ``symbol`` (None when it is), by the
    broker's ``rules`` (the simulator's by default).

    ``held``: the position a sell comes out of. Selling all of it is allowed, dust included,
    where the broker takes any remainder; a part must be a whole number of steps, at least the
    smallest order, and must not leave dust behind.
    """
    rules = rules or QtyRules.default(symbol)
    if not math.isfinite(qty) or qty <= 0:
        return "the quantity must be a positive number"
    if qty > MAX_ORDER_QTY:
        return f"{qty:,.0f} is not a plausible quantity (at most {MAX_ORDER_QTY:,.0f} per order)"
    if held is not None and abs(qty - held) <= 1e-9 * max(held, 1e-300):
        if rules.sells_any_remainder or not is_dust(symbol, held, rules):
            return None
        return (
            f"{_units(held)} {symbol} is dust: below the broker's smallest order ({_unit(symbol, rules.min_qty)}), "
            "so it cannot be sold"
        )
    if qty < rules.min_qty * (1 - 1e-9):
        return f"{_units(qty)} {symbol} is below the smallest order ({_unit(symbol, rules.min_qty)})"
    steps = qty / rules.step
    if abs(steps - round(steps)) > 1e-6 + steps * 1e-12:  # beyond float noise
        return f"{_units(qty)} {symbol} is not a multiple of {_unit(symbol, rules.step)}"
    if held is not None:
        if qty > held * (1 + 1e-9):
            return f"only {_units(held)} {symbol} held: can sell up to that (no short selling)"
        if is_dust(symbol, held - qty, rules):
            return (
                f"selling {_units(qty)} would leave {_units(held - qty)} {symbol}, below the smallest order: "
                f"sell all instead"
            )
    return None


def on_grid(symbol: str, qty: float, rules: QtyRules | None = None) -> float:
    """A quantity ``order_qty_problem`` accepted, with the float noise taken out."""
    step = (rules or QtyRules.default(symbol)).step
    return round(round(qty / step) * step, 9)


def position_size(
    limits: RiskLimits, *, symbol: str, equity: float, cash: float, entry: float, stop: float
) -> float:
    """Units to buy: equity x risk_per_trade / |entry - stop|, capped by max_position_pct of equity
    and by the cash available, then rounded down to what the venue accepts."""
    if equity <= 0 or entry <= 0 or not math.isfinite(entry):
        return 0.0
    per_unit_risk = abs(entry - stop)
    by_risk = equity * limits.risk_per_trade_pct / 100 / per_unit_risk if per_unit_risk > 0 else math.inf
    by_size = equity * limits.max_position_pct / 100 / entry
    by_cash = max(cash, 0.0) / entry
    return round_qty(symbol, min(by_risk, by_size, by_cash))


@dataclass(frozen=True, slots=True)
class WorkingEntry:
    """What is left of an entry order the broker is still working on (accepted while the market
    was closed, a limit not reached, the rest of a partial fill): it may fill at any moment, so it
    counts toward the limits as if it had. ``price``: what it may fill at (its limit, else the
    latest price; NaN when neither is known)."""

    symbol: str
    qty: float  # not filled yet
    price: float
    stop: float | None

    @property
    def value(self) -> float:
        return self.qty * self.price

    @property
    def risk_to_stop(self) -> float:
        """What it loses if it fills and its stop is hit (all of it without a stop)."""
        if self.stop is not None and self.stop > 0:
            return max(0.0, (self.price - self.stop) * self.qty)
        return self.value


@dataclass(frozen=True, slots=True)
class PortfolioState:
    """What the entry check needs to know about the account at this moment."""

    equity: float
    cash: float
    positions: tuple[Position, ...]
    day_start_equity: float | None
    paused: bool = False
    working: tuple[WorkingEntry, ...] = ()  # entry orders not (fully) filled yet

    @property
    def open_entry_symbols(self) -> frozenset[str]:
        """Symbols with an entry working and no position yet (a partial fill has one already)."""
        return frozenset(w.symbol for w in self.working) - {p.symbol for p in self.positions}

    @property
    def committed_cash(self) -> float:
        """The cash the working entries take when they fill."""
        return sum(w.value for w in self.working)

    @property
    def available_cash(self) -> float:
        """Cash not spoken for by a working entry: what one more entry may spend."""
        return self.cash - self.committed_cash


def daily_loss_denial(
    limits: RiskLimits, *, equity: float, day_start_equity: float | None
) -> Decision | None:
    """``check_entry``'s daily loss rule alone: the denial when equity is down the limit or more
    since the day's opening equity, else None."""
    if day_start_equity and day_start_equity > 0:
        loss_pct = (day_start_equity - equity) / day_start_equity * 100
        if loss_pct >= limits.daily_loss_limit_pct:
            return Decision.deny(
                f"daily loss limit reached: equity is down {loss_pct:.2f}% today "
                f"(limit {limits.daily_loss_limit_pct:g}%); entries resume tomorrow (UTC)"
            )
    return None


def max_open_trades_denial(limits: RiskLimits) -> Decision:
    return Decision.deny(f"max open trades reached ({limits.max_open_trades})")


def check_entry(
    limits: RiskLimits, state: PortfolioState, *, symbol: str, qty: float, entry: float, stop: float
) -> Decision:
    """May a new long position of ``qty`` at ``entry`` with ``stop`` be opened now?

    Working entry orders count as if filled: their value against the cash, their risk to the
    stop against ``max_portfolio_risk_pct``, each as an open trade."""
    if state.paused:
        return Decision.deny("trading is paused: no new entries (exits still run)")
    if not math.isfinite(entry) or entry <= 0:
        return Decision.deny(f"no valid price for {symbol}")
    loss = daily_loss_denial(limits, equity=state.equity, day_start_equity=state.day_start_equity)
    if loss is not None:
        return loss
    if any(p.symbol == symbol for p in state.positions) or symbol in state.open_entry_symbols:
        return Decision.deny(f"already holding or buying {symbol}")
    if len(state.positions) + len(state.open_entry_symbols) >= limits.max_open_trades:
        return max_open_trades_denial(limits)
    unpriced = sorted({w.symbol for w in state.working if not math.isfinite(w.price) or w.price <= 0})
    if unpriced:
        return Decision.deny(
            f"no price for the working entry order of {', '.join(unpriced)}: "
            "cannot tell what it commits, so no new entry until it fills or is canceled"
        )
    if qty <= 0:
        return Decision.deny(
            f"position size for {symbol} rounds to zero (equity {state.equity:,.2f}, cash {state.cash:,.2f})"
        )
    value = qty * entry
    if value > state.equity * limits.max_position_pct / 100 * 1.0001:
        return Decision.deny(
            f"position value {value:,.2f} exceeds {limits.max_position_pct:g}% of equity "
            f"({state.equity * limits.max_position_pct / 100:,.2f})"
        )
    committed = state.committed_cash
    if value > state.available_cash * 1.0001:
        held_back = f" ({committed:,.2f} of the cash is held for working entry orders)" if committed else ""
        return Decision.deny(
            f"not enough cash: {value:,.2f} needed, {state.available_cash:,.2f} available{held_back}"
        )
    open_risk = sum(p.risk_to_stop for p in state.positions) + sum(w.risk_to_stop for w in state.working)
    new_risk = max(0.0, (entry - stop) * qty) if stop > 0 else value
    total_pct = (open_risk + new_risk) / state.equity * 100 if state.equity > 0 else math.inf
    if total_pct > limits.max_portfolio_risk_pct + 1e-9:
        working = " (working entry orders included)" if state.working else ""
        return Decision.deny(
            f"portfolio risk would be {total_pct:.2f}% of equity if every stop were hit{working} "
            f"(limit {limits.max_portfolio_risk_pct:g}%)"
        )
    return APPROVED
