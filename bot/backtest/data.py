"""History for backtests: a CSV file, or bars from a ``BarSource`` cached on disk.

CSV files are streamed with pyarrow's multi-threaded reader (``bot.backtest.csvread``: about
0.15 s per million rows, in bounded memory; pandas is not imported). Columns are matched in any
letter case: a time column named ``timestamp``, ``date``, ``datetime`` or ``time``, then
``open``, ``high``, ``low``, ``close`` and optionally ``volume``; others are ignored. Times may be ISO 8601 (``2024-01-31``, ``2024-01-31 09:30:00``,
``2024-01-31T09:30:00Z``, with or without an offset; without one they are taken as UTC),
US style ``01/31/2024 09:30``, or epoch seconds, milliseconds, microseconds or nanoseconds.

Every problem is a ``DataInputError`` whose message is one line naming the file, the line
and the column. Refused before any work: input that is not CSV text (NUL bytes, no header line
in the first 64 KiB, not UTF-8), missing or empty values, prices that cannot be (zero or
negative, high below low, open or close outside the bar's range, negative volume: the same
rules the live engine applies to its bars), times that are not finite or lie outside the
years 1678 to 2261, and times out of order or repeated.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from bot.bars import NS, Bars, Timeframe


class DataInputError(ValueError):
    """The history cannot be used; the message is one line for the user."""


def read_csv(path: str | Path) -> Bars:
    """Bars from a CSV file, checked: all values present, prices possible, times parsed, sorted
    and unique (``bot.backtest.csvread`` does the reading)."""
    from bot.backtest.csvread import read_columns

    path = Path(path)
    times, values = read_columns(path)
    bars = Bars(times, *values)
    check_prices(bars, str(path))
    check_order(bars, str(path))
    return bars


def check_prices(bars: Bars, where: str, lines: bool = True) -> None:
    """Prices a market cannot print, refused with the first offending row and how many there are.

    The same rules as the live engine's ``validate_bars``: every price above zero, high not
    below low, open and close within [low, high], volume not negative. ``lines``: name CSV
    lines (the header is line 1); otherwise name the bar's time.
    """
    o, h, lo, c, v = bars.open, bars.high, bars.low, bars.close, bars.volume
    # One pass for the usual case (every row fine); NaN fails it too and gets the rules below.
    good = lo > 0
    for other in (h >= lo, o >= lo, o <= h, c >= lo, c <= h, v >= 0):
        good &= other
    if good.all():
        return
    rules = (
        (o <= 0, "open is {o:g}; prices must be above zero"),
        (h <= 0, "high is {h:g}; prices must be above zero"),
        (lo <= 0, "low is {lo:g}; prices must be above zero"),
        (c <= 0, "close is {c:g}; prices must be above zero"),
        (h < lo, "high {h:g} is below low {lo:g}"),
        (o > h, "open {o:g} is above high {h:g}"),
        (o < lo, "open {o:g} is below low {lo:g}"),
        (c > h, "close {c:g} is above high {h:g}"),
        (c < lo, "close {c:g} is below low {lo:g}"),
        (v < 0, "volume is {v:g}; it cannot be negative"),
    )
    for mask, message in rules:
        if mask.any():
            i = int(mask.argmax())
            count = int(np.count_nonzero(mask))
            rows = f" ({count:,} of {len(mask):,} rows)" if count > 1 else ""
            place = f"{where} line {i + 2}" if lines else f"{where} bar at {_iso(bars.time[i])}"
            text = message.format(o=o[i], h=h[i], lo=lo[i], c=c[i], v=v[i])
            raise DataInputError(f"{place}: {text}{rows}")


def check_order(bars: Bars, where: str) -> None:
    """Times must increase strictly: no row out of order, no duplicate."""
    if len(bars) == 0:
        raise DataInputError(f"{where}: no rows of data")
    step = np.diff(bars.time)
    if (step <= 0).any():
        i = int((step <= 0).argmax()) + 1
        when, before = _iso(bars.time[i]), _iso(bars.time[i - 1])
        if step[i - 1] == 0:
            raise DataInputError(f"{where} line {i + 2}: duplicate timestamp {when}")
        raise DataInputError(
            f"{where} line {i + 2}: timestamp {when} is earlier than the line before ({before}); "
            "rows must be sorted oldest first"
        )


def infer_timeframe(bars: Bars) -> Timeframe | None:
    """The most common spacing between bars, if it is a whole number of minutes."""
    if len(bars) < 2:
        return None
    steps, counts = np.unique(np.diff(bars.time[:100_001]), return_counts=True)
    seconds = int(steps[counts.argmax()] // NS)
    return Timeframe(seconds) if seconds > 0 and seconds % 60 == 0 else None


def resample(bars: Bars, timeframe: Timeframe) -> Bars:
    """Aggregate bars into ``timeframe`` buckets aligned to the epoch (first open, max high, ...)."""
    bucket = bars.time // (timeframe.seconds * NS)
    starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
    ends = np.r_[starts[1:], len(bars)] - 1
    return Bars(
        bucket[starts] * timeframe.seconds * NS,
        bars.open[starts],
        np.maximum.reduceat(bars.high, starts),
        np.minimum.reduceat(bars.low, starts),
        bars.close[ends],
        np.add.reduceat(bars.volume, starts),
    )


def _iso(ns: int) -> str:
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(ns) // 1000)).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
