"""Checks on bars before a strategy sees them, with problems a human can act on.

``validate_bars`` never repairs anything: it lists what is wrong, each message naming the
first offending bar, and the engine decides (skip the symbol, raise a data alert). An empty
list means the bars are fit to trade on.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from bot.bars import COLUMNS, NS, Bars, Timeframe

__all__ = ["drop_incomplete", "validate_bars"]

_PRICES = ("open", "high", "low", "close")


def _at(bars: Bars, index: int) -> str:
    return _when(int(bars.time[index]))


def _when(ns: int) -> str:
    return datetime.fromtimestamp(ns / NS, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _first(mask: np.ndarray) -> int | None:
    hits = np.flatnonzero(mask)
    return int(hits[0]) if len(hits) else None


def _ago(seconds: float) -> str:
    minutes = seconds / 60
    if minutes < 120:
        return f"{minutes:.0f} minutes ago"
    if minutes < 48 * 60:
        return f"{minutes / 60:.1f} hours ago"
    return f"{minutes / 1440:.1f} days ago"


def _ns(when: datetime) -> int:
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    delta = when - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * NS + delta.microseconds * 1_000


def validate_bars(bars: Bars, timeframe: Timeframe, now: datetime, max_age_bars: float = 3) -> list[str]:
    """Every problem with ``bars`` as one readable line each; an empty list means OK.

    Checked: there are bars at all; no NaN or infinite value; prices above zero; volume not
    negative; high >= low, high >= max(open, close) and low <= min(open, close); bar times
    strictly increasing (no duplicates, none out of order); no bar starting after ``now``; and
    the last bar fresh enough: it closed (start + timeframe) no earlier than
    ``now - max_age_bars x timeframe``. Naive datetimes are read as UTC.
    """
    n = len(bars.time)
    if n == 0:
        return ["no bars at all"]
    lengths = {name: len(getattr(bars, name)) for name in COLUMNS}
    if any(length != n for length in lengths.values()):
        shown = ", ".join(f"{name}={length}" for name, length in lengths.items())
        return [f"columns have different lengths: time={n}, {shown}"]

    problems: list[str] = []
    finite = {}
    for name in COLUMNS:
        values = np.asarray(getattr(bars, name), dtype=np.float64)
        ok = np.isfinite(values)
        finite[name] = ok
        bad = _first(~ok)
        if bad is not None:
            kind = "NaN" if np.isnan(values[bad]) else "infinite"
            count = int(n - ok.sum())
            problems.append(f"{name} is {kind} at {_at(bars, bad)} ({count} bad value(s) in {name})")

    def check(mask: np.ndarray, message: str) -> None:
        bad = _first(mask)
        if bad is not None:
            problems.append(f"{message} at {_at(bars, bad)} ({int(mask.sum())} bar(s))")

    # Comparisons with NaN are False, so the value checks below only see finite numbers.
    for name in _PRICES:
        values = getattr(bars, name)
        check(finite[name] & (values <= 0), f"{name} is not positive ({_value(values, values <= 0)})")
    volume = bars.volume
    check(volume < 0, f"volume is negative ({_value(volume, volume < 0)})")
    check(bars.high < bars.low, "high is below low")
    check(bars.high < np.maximum(bars.open, bars.close), "high is below max(open, close)")
    check(bars.low > np.minimum(bars.open, bars.close), "low is above min(open, close)")

    times = np.asarray(bars.time, dtype=np.int64)
    steps = np.diff(times)
    dup = _first(steps == 0)
    if dup is not None:
        problems.append(f"duplicate bar time {_at(bars, dup + 1)} ({int((steps == 0).sum())} duplicate(s))")
    back = _first(steps < 0)
    if back is not None:
        problems.append(
            f"bar times out of order: {_at(bars, back + 1)} comes after {_at(bars, back)}"
            f" ({int((steps < 0).sum())} step(s) back)"
        )

    now_ns = _ns(now)
    tf_ns = timeframe.seconds * NS
    future = _first(times > now_ns)
    if future is not None:
        problems.append(f"bar starts in the future at {_at(bars, future)} (now is {_when(now_ns)})")
    last_close = int(times.max()) + tf_ns
    if last_close < now_ns - max_age_bars * tf_ns:
        problems.append(f"stale: last bar closed at {_when(last_close)} ({_ago((now_ns - last_close) / NS)})")
    return problems


def _value(values: np.ndarray, mask: np.ndarray) -> str:
    bad = _first(mask)
    return f"{float(values[bad]):g}" if bad is not None else ""


def drop_incomplete(bars: Bars, timeframe: Timeframe, now: datetime) -> Bars:
    """``bars`` without any bar that has not closed by ``now`` (start + timeframe > now)."""
    keep = np.asarray(bars.time, dtype=np.int64) + timeframe.seconds * NS <= _ns(now)
    if keep.all():
        return bars
    return Bars(*(np.asarray(getattr(bars, name))[keep] for name in ("time", *COLUMNS)))
