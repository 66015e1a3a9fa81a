"""Technical indicators as TA-Lib defines them, on numpy arrays, for the built-in strategies.

Each function returns float64 arrays as long as its input, NaN on the warm-up bars exactly where
TA-Lib's output has none, and matches TA-Lib (the C library, through its Python package) to
1e-9 on real data, warm-up bars included (``tests/test_indicators.py``). The rules, in TA-Lib's
words where they are its own:

``sma(x, n)``       the mean of the last ``n`` values; first on bar n-1.
``ema(x, n)``       k = 2 / (n + 1), seeded with the SMA of the first ``n`` values on bar n-1,
                    then ema += (x - ema) * k.
``rsi(x, n)``       Wilder's RSI: the mean gain and mean loss of the first ``n`` changes seed it
                    on bar n, then each is smoothed as (prev * (n - 1) + new) / n; RSI = 100 x
                    gain / (gain + loss), and 0 when nothing changed (gain + loss = 0).
``bbands(x, n, k)`` middle = SMA; upper and lower = middle +/- k x the population standard
                    deviation of the last ``n`` values; first on bar n-1.
``rolling_max`` / ``rolling_min(x, n)``  TA-Lib's MAX and MIN: over the last ``n`` values,
                    this bar included; first on bar n-1. Donchian channels are these.
``macd(x, fast, slow, signal)``  TA-Lib's MACD: both EMAs start on bar slow-1, the fast one
                    seeded with the SMA of the ``fast`` values ending there (not the first
                    ``fast`` values); line = fast - slow; signal = EMA of the line seeded with
                    the SMA of its first ``signal`` values; line, signal and histogram are all
                    NaN before bar slow + signal - 2. A fast period above the slow one is
                    swapped, as TA-Lib does.

``crossed_above`` / ``crossed_below`` turn two series into the bars where one crosses the other;
values within one part in 10^12 count as equal, so rounding in a flat market is no cross.

Windowed values (SMA, bands, MAX, MIN) are computed from each window alone, so the same bars
give bit-identical values whatever came before them: the live engine's window and the
backtest's full history agree exactly. The recursive ones (EMA, RSI, MACD) depend on where the
series starts, by a weight that decays as (1 - k)^bars: under 1e-9 after 300 bars for periods
up to about 28.
"""

from __future__ import annotations

import math

import numpy as np

_CHUNK = 1 << 16  # windows handled at a time: memory stays a few MB whatever the length


def _floats(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float64)


def _windows(x: np.ndarray, n: int, reduce) -> np.ndarray:
    """``reduce`` (taking a (rows, n) view, returning one value per row) over every window of
    ``n`` values, in chunks; NaN on the first n-1 bars."""
    x = _floats(x)
    out = np.full(len(x), np.nan)
    if n < 1 or len(x) < n:
        return out
    view = np.lib.stride_tricks.sliding_window_view(x, n)
    for start in range(0, len(view), _CHUNK):
        out[n - 1 + start : n - 1 + start + _CHUNK] = reduce(view[start : start + _CHUNK])
    return out


def sma(x: np.ndarray, n: int) -> np.ndarray:
    return _windows(x, n, lambda w: w.sum(axis=1) / n)


def rolling_max(x: np.ndarray, n: int) -> np.ndarray:
    return _windows(x, n, lambda w: w.max(axis=1))


def rolling_min(x: np.ndarray, n: int) -> np.ndarray:
    return _windows(x, n, lambda w: w.min(axis=1))


def stddev(x: np.ndarray, n: int) -> np.ndarray:
    """Population standard deviation of each window (two passes: the mean, then the squared
    deviations from it, which keeps the digits TA-Lib's sum-of-squares formula loses)."""

    def reduce(w: np.ndarray) -> np.ndarray:
        mean = w.sum(axis=1) / n
        return np.sqrt(((w - mean[:, None]) ** 2).sum(axis=1) / n)

    return _windows(x, n, reduce)


def bbands(x: np.ndarray, n: int = 20, k: float = 2.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(upper, middle, lower)``."""
    middle = sma(x, n)
    width = k * stddev(x, n)
    return middle + width, middle, middle - width


def _ema_from(values: list[float], start: int, n: int, seed_from: int, out: list[float]) -> None:
    """EMA of ``values`` into ``out`` from index ``start`` on, seeded on ``start`` with the mean
    of values[seed_from : start + 1]."""
    k = 2.0 / (n + 1)
    total = 0.0
    for v in values[seed_from : start + 1]:
        total += v
    prev = total / (start + 1 - seed_from)
    out[start] = prev
    for i in range(start + 1, len(values)):
        prev = (values[i] - prev) * k + prev
        out[i] = prev


def ema(x: np.ndarray, n: int) -> np.ndarray:
    values = _floats(x).tolist()
    out = [math.nan] * len(values)
    if 1 <= n <= len(values):
        _ema_from(values, n - 1, n, 0, out)
    return np.array(out)


def rsi(x: np.ndarray, n: int = 14) -> np.ndarray:
    values = _floats(x).tolist()
    out = [math.nan] * len(values)
    if n < 1 or len(values) <= n:
        return np.array(out)
    gain = loss = 0.0
    for i in range(1, n + 1):
        change = values[i] - values[i - 1]
        if change < 0:
            loss -= change
        else:
            gain += change
    gain /= n
    loss /= n
    total = gain + loss
    out[n] = 100.0 * (gain / total) if total != 0 else 0.0
    for i in range(n + 1, len(values)):
        change = values[i] - values[i - 1]
        gain *= n - 1
        loss *= n - 1
        if change < 0:
            loss -= change
        else:
            gain += change
        gain /= n
        loss /= n
        total = gain + loss
        out[i] = 100.0 * (gain / total) if total != 0 else 0.0
    return np.array(out)


def macd(
    x: np.ndarray, fast: int = 12, slow: int = 26, signal: int = 9
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(line, signal, histogram)``."""
    if slow < fast:
        fast, slow = slow, fast
    values = _floats(x).tolist()
    size = len(values)
    nan = np.full(size, np.nan)
    first = slow + signal - 2  # the first bar TA-Lib outputs
    if fast < 1 or signal < 1 or size <= first:
        return nan, nan.copy(), nan.copy()
    fast_ema = [math.nan] * size
    slow_ema = [math.nan] * size
    _ema_from(values, slow - 1, fast, slow - fast, fast_ema)
    _ema_from(values, slow - 1, slow, 0, slow_ema)
    line = [f - s for f, s in zip(fast_ema, slow_ema, strict=True)]
    sig = [math.nan] * size
    _ema_from(line, first, signal, slow - 1, sig)
    line_out = np.array(line)
    line_out[:first] = np.nan
    sig_out = np.array(sig)
    return line_out, sig_out, line_out - sig_out


TIE = 1e-12  # relative: values closer than this are equal (rounding, not a market move)


def crossed_above(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """True on the bars where ``a`` closes above ``b`` after being at or below it the bar before.
    "Above" means by more than one part in 10^12 of ``b``: two averages of a flat market differ
    only by rounding, and that is no cross. False wherever a value is undefined (NaN)."""
    margin = TIE * np.abs(b)
    out = np.zeros(len(a), dtype=bool)
    out[1:] = (a[1:] > b[1:] + margin[1:]) & (a[:-1] <= b[:-1] + margin[:-1])
    return out


def crossed_below(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """True on the bars where ``a`` closes below ``b`` (by more than one part in 10^12) after
    being at or above it the bar before."""
    margin = TIE * np.abs(b)
    out = np.zeros(len(a), dtype=bool)
    out[1:] = (a[1:] < b[1:] - margin[1:]) & (a[:-1] >= b[:-1] - margin[:-1])
    return out


def signals(buy: np.ndarray, sell: np.ndarray) -> np.ndarray:
    """int8 per bar: +1 where ``buy``, -1 where ``sell`` (never both), else 0."""
    out = np.zeros(len(buy), dtype=np.int8)
    out[buy] = 1
    out[sell & ~buy] = -1
    return out
