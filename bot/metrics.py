"""Performance statistics as pure functions of an equity curve and trade P&Ls.

Used by the backtester and by /pnl alike, so a number means the same thing in both.
Conventions: returns are simple per-period returns of the equity curve; Sharpe and Sortino
are annualised with ``periods_per_year`` and a risk-free rate of 0; drawdowns are reported
as positive percentages (a fall from 100 to 80 is a 20.0 % drawdown).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def returns(equity: Sequence[float] | np.ndarray) -> np.ndarray:
    values = np.asarray(equity, dtype=np.float64)
    if len(values) < 2:
        return np.empty(0)
    prev = values[:-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.subtract(values[1:], prev)  # np.diff, then divided in place: one array, not three
        np.divide(out, prev, out=out)
    finite = np.isfinite(out)
    return out if finite.all() else out[finite]


def sharpe(equity: Sequence[float] | np.ndarray, periods_per_year: float) -> float:
    """Annualised Sharpe ratio: mean / standard deviation (ddof=1) of returns x sqrt(periods)."""
    return sharpe_of_returns(returns(equity), periods_per_year)


def sharpe_of_returns(r: np.ndarray, periods_per_year: float) -> float:
    """``sharpe`` from already computed ``returns(equity)`` (the backtester computes them once)."""
    if len(r) < 2:
        return 0.0
    sd = float(np.std(r, ddof=1))
    if sd == 0.0 or not math.isfinite(sd):
        return 0.0
    return float(np.mean(r)) / sd * math.sqrt(periods_per_year)


def sortino(equity: Sequence[float] | np.ndarray, periods_per_year: float) -> float:
    """Annualised Sortino ratio: mean return / downside deviation x sqrt(periods).

    Downside deviation is sqrt(mean(min(r, 0)^2)) over all periods (target 0).
    """
    return sortino_of_returns(returns(equity), periods_per_year)


def sortino_of_returns(r: np.ndarray, periods_per_year: float) -> float:
    """``sortino`` from already computed ``returns(equity)``."""
    if len(r) < 2:
        return 0.0
    below = np.minimum(r, 0.0)
    np.multiply(below, below, out=below)  # ** 2, in place
    downside = math.sqrt(float(np.mean(below)))
    if downside == 0.0:
        return 0.0
    return float(np.mean(r)) / downside * math.sqrt(periods_per_year)


def drawdown_pct(equity: Sequence[float] | np.ndarray) -> np.ndarray:
    """Per-point drawdown from the running peak, in percent (0 at a new high)."""
    values = np.asarray(equity, dtype=np.float64)
    if len(values) == 0:
        return values
    peak = np.maximum.accumulate(values)
    with np.errstate(divide="ignore", invalid="ignore"):
        dd = np.where(peak > 0, (peak - values) / peak * 100.0, 0.0)
    return dd


def max_drawdown_pct(equity: Sequence[float] | np.ndarray) -> float:
    """The largest of ``drawdown_pct``. A curve without NaN that starts above zero (every
    backtest's) has a peak above zero everywhere: each point's drawdown is then computed in
    place, the same arithmetic in the same order without ``np.where``'s copies."""
    values = np.asarray(equity, dtype=np.float64)
    if len(values) == 0:
        return 0.0
    peak = np.maximum.accumulate(values)
    if not (peak[0] > 0 and peak[-1] == peak[-1]):  # NaN carries through the running maximum
        return float(drawdown_pct(values).max())
    with np.errstate(invalid="ignore"):  # inf - inf, as drawdown_pct meets it
        dd = np.subtract(peak, values)
        np.divide(dd, peak, out=dd)
        np.multiply(dd, 100.0, out=dd)
    return float(dd.max())


def win_rate(pnls: Sequence[float] | np.ndarray) -> float:
    """Share of closed trades with a positive P&L, in percent (0 with no trades)."""
    if not len(pnls):
        return 0.0
    return 100.0 * int(np.count_nonzero(np.asarray(pnls, dtype=np.float64) > 0)) / len(pnls)


def profit_factor(pnls: Sequence[float] | np.ndarray) -> float:
    """Gross profit / gross loss. ``inf`` when there are profits and no losses, 0 with neither.

    Each side is Python's ``sum`` over the trades in their order (numpy picks them out; its
    own pairwise sum would round differently)."""
    values = np.asarray(pnls, dtype=np.float64)
    gains = sum(values[values > 0].tolist())
    losses = -sum(values[values < 0].tolist())
    if losses == 0:
        return math.inf if gains > 0 else 0.0
    return gains / losses
