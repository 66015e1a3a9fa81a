"""Sequential kernels: the loops numpy cannot vectorise.

Each kernel is written here in plain Python, which is its definition, and again in C in
``bot/_speedups.c``, built by ``pip install`` when a compiler is present. Calls go to the C
version when it imports and to the Python one otherwise; both give identical results
(``tests/test_supertrend.py`` checks). ``TRADEBOT_PURE_PYTHON=true`` (environment or ``.env``)
forces Python: the command line calls ``use_pure_python`` once the settings are read.

Every kernel writes into output arrays the caller allocates; the public wrappers below
allocate them and take an optional ``impl`` ("c" or "python") for tests and benchmarks.
"""

from __future__ import annotations

import logging
import math
from types import ModuleType, SimpleNamespace

import numpy as np

log = logging.getLogger(__name__)

NAN = math.nan


def _supertrend_py(
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    period: int,
    multiplier: float,
    line: np.ndarray,
    direction: np.ndarray,
) -> None:
    """Supertrend as TradingView computes it, into ``line`` and ``direction`` (+1 up, -1 down).

    true range  tr = h - l on bar 0, else the largest of h - l, |h - c[i-1]|, |l - c[i-1]|
    ATR (RMA)   undefined before bar period-1; there the mean of the first ``period`` true
                ranges (summed left to right); then atr += (tr - atr) / period
    bands       up/dn = (h + l) / 2 +/- multiplier * atr; final bands D and U carry over from
                the previous bar (0 before the first) unless the new band is tighter or the
                previous close crossed the previous band
    direction   -1 on bar period-1; then, after a bar that showed the upper band, +1 if the
                close is above U; after one that showed the lower band, -1 if it is below D
    line        D when the direction is +1, else U; line and direction are NaN before period-1

    A comparison with an undefined value (no previous close on bar 0) is false, as Pine's na.
    """
    h, lo, c = high.tolist(), low.tolist(), close.tolist()
    start = period - 1
    lines, dirs = [], []
    total = atr = prev_u = prev_d = 0.0
    prev_line = c_prev = NAN
    for i in range(len(c)):
        tr = h[i] - lo[i]
        if i > 0:
            x, y = abs(h[i] - c_prev), abs(lo[i] - c_prev)
            if x > tr:
                tr = x
            if y > tr:
                tr = y
        if i < start:
            total += tr
            lines.append(NAN)
            dirs.append(NAN)
            c_prev = c[i]
            continue
        if i == start:
            total += tr
            atr = total / period
        else:
            atr = atr + (tr - atr) / period
        hl2, offset = (h[i] + lo[i]) / 2.0, multiplier * atr
        up, dn = hl2 + offset, hl2 - offset
        d = dn if (dn > prev_d or c_prev < prev_d) else prev_d
        u = up if (up < prev_u or c_prev > prev_u) else prev_u
        if i == start:
            trend = -1.0  # the first bar with an ATR is a downtrend
        elif prev_line == prev_u:  # the last bar showed the upper band: up on a close above it
            trend = 1.0 if c[i] > u else -1.0
        else:  # it showed the lower band: down on a close below it
            trend = -1.0 if c[i] < d else 1.0
        prev_line = d if trend == 1.0 else u
        lines.append(prev_line)
        dirs.append(trend)
        prev_u, prev_d, c_prev = u, d, c[i]
    line[:] = lines
    direction[:] = dirs


PYTHON = SimpleNamespace(supertrend=_supertrend_py)


def _load_c() -> ModuleType | None:
    try:
        from bot import _speedups  # type: ignore[attr-defined]  # the C extension: no stub
    except ImportError:
        return None
    return _speedups


C = _load_c()  # the compiled kernels, None when they are not built
_pure_python = False
_announced = False


def use_pure_python(flag: bool = True) -> None:
    """Use the Python kernels even where the C ones are built (``TRADEBOT_PURE_PYTHON``)."""
    global _pure_python
    _pure_python = flag


def default_backend() -> ModuleType | None:
    """The compiled kernels when they are built and not switched off, else None (Python)."""
    return None if _pure_python else C


def implementation() -> str:
    """``"c"`` when the compiled kernels are in use, else ``"python"``."""
    return "c" if default_backend() is not None else "python"


def _backend(impl: str | None) -> SimpleNamespace | ModuleType:
    global _announced
    if impl is None:
        if not _announced:
            _announced = True
            log.debug("kernels: using the %s implementation", implementation())
        backend = default_backend()
        return backend if backend is not None else PYTHON
    if impl == "python":
        return PYTHON
    if impl == "c":
        if C is None:
            raise RuntimeError("bot._speedups is not built: reinstall with a C compiler (pip install -e .)")
        return C
    raise ValueError(f"unknown kernel implementation {impl!r}")


def f64(values: object) -> np.ndarray:
    """``values`` as a contiguous float64 array (no copy when it already is one)."""
    return np.ascontiguousarray(values, dtype=np.float64)


def supertrend(
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    period: int,
    multiplier: float,
    impl: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(line, direction)`` as float64 arrays, NaN on bars ``0 .. period-2``."""
    high, low, close = f64(high), f64(low), f64(close)
    if not len(high) == len(low) == len(close):
        raise ValueError("high, low and close must have the same length")
    line, direction = np.empty(len(close)), np.empty(len(close))
    _backend(impl).supertrend(high, low, close, int(period), float(multiplier), line, direction)
    return line, direction
