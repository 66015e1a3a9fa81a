"""The backtest simulation: one strategy's signals over one symbol's bars, in trades and equity.

The rules are ``bot.backtest.FILL_MODEL`` (shown by ``tradebot backtest --help`` and in the
README); ``_simulate_py`` below is their reference implementation, ``simulate`` in
``bot/_speedups.c`` its C twin.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from bot import kernels
from bot.bars import Bars
from bot.domain import ExitReason
from bot.risk import RiskLimits, position_size

# Columns of the trades table the kernels fill, one row per round trip.
ENTRY_BAR, EXIT_BAR, ENTRY_PRICE, EXIT_PRICE, QTY, PNL, COMMISSION, REASON = range(8)
TRADE_FIELDS = 8
REASONS = (ExitReason.SIGNAL, ExitReason.STOP_LOSS, ExitReason.TAKE_PROFIT, ExitReason.END_OF_DATA)
_SIGNAL, _STOP, _TARGET, _END = (float(code) for code in range(4))


@dataclass(frozen=True, slots=True)
class FillSettings:
    """How orders fill and are sized. Fractions are plain fractions: 0.001 is 0.1 %.

    ``cash``: starting cash, in the quote currency (10000).
    ``commission``: fraction of each fill's notional charged as commission (0.0005 = 5 bp).
    ``slippage``: fraction of price by which each market fill is worse than the bar's price.
    ``fixed_qty``: units bought per entry; ``None`` sizes with ``risk`` as the live bot does.
    ``stop_loss_pct`` / ``take_profit_pct``: percent from the entry fill; 0 disables one.
    ``fractional``: size in steps of 0.000001 (crypto) instead of whole shares.
    """

    cash: float = 10_000.0
    commission: float = 0.0
    slippage: float = 0.0
    fixed_qty: float | None = None
    stop_loss_pct: float = 2.0
    take_profit_pct: float = 4.0
    risk: RiskLimits = field(default_factory=RiskLimits)
    fractional: bool = False

    def __post_init__(self) -> None:
        checks = {
            "cash": self.cash > 0,
            "commission": 0 <= self.commission < 1,
            "slippage": 0 <= self.slippage < 1,
            "fixed_qty": self.fixed_qty is None or self.fixed_qty > 0,
            "stop_loss_pct": 0 <= self.stop_loss_pct < 100,
            "take_profit_pct": self.take_profit_pct >= 0,
        }
        for name, ok in checks.items():
            value = getattr(self, name)
            if not ok or (value is not None and not math.isfinite(value)):
                raise ValueError(f"{name.replace('_', '-')}={value} is out of range")


@dataclass(frozen=True, slots=True)
class Simulation:
    """What the loop produced: the equity at each bar's close and the trades table."""

    equity: np.ndarray
    trades: np.ndarray  # shape (n_trades, TRADE_FIELDS), columns ENTRY_BAR ... REASON

    @property
    def n_trades(self) -> int:
        return len(self.trades)

    def column(self, index: int) -> np.ndarray:
        return self.trades[:, index]


def simulate(
    bars: Bars,
    signal: np.ndarray,
    settings: FillSettings,
    stop_hint: np.ndarray | None = None,
    impl: str | None = None,
) -> Simulation:
    """Run the fill model over ``bars`` for ``signal`` (int8, +1 buy, -1 sell, 0 nothing)."""
    n = len(bars)
    signal = np.ascontiguousarray(signal, dtype=np.int8)
    if len(signal) != n:
        raise ValueError(f"signal has {len(signal)} values for {n} bars")
    hint = np.empty(0) if stop_hint is None else kernels.f64(stop_hint)
    equity = np.empty(n)
    capacity = int(np.count_nonzero(signal == 1))  # every trade starts with its own buy signal
    trades = np.empty(max(capacity, 1) * TRADE_FIELDS)
    args = (
        kernels.f64(bars.open),
        kernels.f64(bars.high),
        kernels.f64(bars.low),
        kernels.f64(bars.close),
        signal,
        hint,
        float(settings.cash),
        float(settings.commission),
        float(settings.slippage),
        float(settings.fixed_qty or 0.0),
        settings.stop_loss_pct / 100,
        settings.take_profit_pct / 100,
        float(settings.risk.risk_per_trade_pct),
        float(settings.risk.max_position_pct),
        bool(settings.fractional),
        equity,
        trades,
    )
    backend = kernels.C if impl == "c" else kernels.default_backend() if impl is None else None
    if impl == "c" and backend is None:
        raise RuntimeError("bot._speedups is not built: reinstall with a C compiler (pip install -e .)")
    count = backend.simulate(*args) if backend is not None else _simulate_py(*args)
    return Simulation(equity, trades[: count * TRADE_FIELDS].reshape(count, TRADE_FIELDS))


def _simulate_py(
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    signal: np.ndarray,
    stop_hint: np.ndarray,
    cash: float,
    commission: float,
    slippage: float,
    fixed_qty: float,
    stop_frac: float,
    target_frac: float,
    risk_pct: float,
    max_position_pct: float,
    crypto: bool,
    equity_out: np.ndarray,
    trades_out: np.ndarray,
) -> int:
    """The reference loop: the fill model above, bar by bar. ``simulate`` in bot/_speedups.c
    is its C twin and must stay bit-identical (tests/test_backtest.py checks)."""
    o, h, lo, c, sig = open_.tolist(), high.tolist(), low.tolist(), close.tolist(), signal.tolist()
    hint = stop_hint.tolist() if len(stop_hint) else None
    limits = RiskLimits(risk_per_trade_pct=risk_pct, max_position_pct=max_position_pct)
    symbol = "X/USD" if crypto else "X"  # position_size rounds crypto (a slash) to 1e-6 units
    n = len(c)
    equity = [0.0] * n
    trades: list[float] = []
    qty = entry_px = entry_comm = stop = 0.0
    target = math.inf
    entry_bar = -1
    want_entry = want_exit = False

    def close_trade(i: int, px: float, reason: float) -> None:
        nonlocal cash, qty
        value = qty * px
        comm = value * commission
        cash = cash + (value - comm)
        pnl = (px - entry_px) * qty - entry_comm - comm
        trades.extend((float(entry_bar), float(i), entry_px, px, qty, pnl, entry_comm + comm, reason))
        qty = 0.0

    for i in range(n):
        if want_exit:  # a sell signal on the previous close fills at this open
            want_exit = False
            close_trade(i, o[i] * (1.0 - slippage), _SIGNAL)
        if want_entry:  # a buy signal on the previous close fills at this open
            want_entry = False
            px = o[i] * (1.0 + slippage)
            suggested = hint[i - 1] if hint is not None else math.nan
            if suggested > 0 and suggested < px:
                stop = suggested
            elif stop_frac > 0:
                stop = px * (1.0 - stop_frac)
            else:
                stop = 0.0
            target = px * (1.0 + target_frac) if target_frac > 0 else math.inf
            if fixed_qty > 0:
                size = fixed_qty
            else:
                size = position_size(
                    limits, symbol=symbol, equity=cash, cash=cash / (1.0 + commission), entry=px, stop=stop
                )
            if size > 0:
                value = size * px
                comm = value * commission
                cash = cash - (value + comm)
                qty, entry_bar, entry_px, entry_comm = size, i, px, comm
        if qty > 0:  # protective orders: a gap through a level fills at the open; stop before target
            if i > entry_bar and o[i] <= stop:
                close_trade(i, o[i] * (1.0 - slippage), _STOP)
            elif i > entry_bar and o[i] >= target:
                close_trade(i, o[i], _TARGET)
            elif lo[i] <= stop:
                close_trade(i, stop * (1.0 - slippage), _STOP)
            elif h[i] >= target:
                close_trade(i, target, _TARGET)
        if i < n - 1:
            if sig[i] == 1 and qty == 0:
                want_entry = True
            elif sig[i] == -1 and qty > 0:
                want_exit = True
        elif qty > 0:
            close_trade(i, c[i] * (1.0 - slippage), _END)
        equity[i] = cash + qty * c[i]
    equity_out[:] = equity
    if len(trades) > len(trades_out):
        raise ValueError("simulate: trades buffer too small")
    trades_out[: len(trades)] = trades
    return len(trades) // TRADE_FIELDS
