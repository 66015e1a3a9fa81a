"""Fetch what the local store lacks, and only that.

``fill`` is the one path from a bar source into the store: ``tradebot data download``,
``data update`` and every backtest with ``--symbol``/``--symbols`` call it. It asks the source
for the spans the store has not covered yet, in chunks of ``CHUNK_BARS`` bars (a progress bar
counts them, and each chunk is written as it arrives, so an interrupted download keeps what it
had), and reads the answer back from the store.

Stock bars adjusted for splits change backwards when a split happens. Before adding to a stored
stock history that is adjusted, ``fill`` asks for the newest stored bar again; if the source now
prices it differently, the whole stored history is fetched again and replaced, and the report
says so. Raw bars and crypto never change backwards.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from bot.bars import NS, Bars, Timeframe
from bot.data.base import BarSource
from bot.data.store import SETTLE, BarStore, Span, from_ns, to_ns

log = logging.getLogger(__name__)

CHUNK_BARS = 10_000  # bars per request window: bounded answers, and a progress bar that moves
_SAME = 1e-9  # relative difference under which two prices of one bar are the same price


@dataclass(slots=True)
class FillReport:
    """What one ``fill`` did."""

    symbol: str
    fetched_bars: int = 0
    requests: int = 0
    readjusted: bool = False
    sources: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)


def is_crypto(symbol: str) -> bool:
    return "/" in symbol


def kind_of(source: BarSource, symbol: str) -> tuple[str, str]:
    """(adjustment, feed) of the bars ``source`` serves for ``symbol``: what a stored file records,
    so bars of different kinds are never mixed in one file."""
    if is_crypto(symbol):
        return "raw", ""
    inner = getattr(source, "primary", source)  # a fallback pair is described by its primary
    adjustment = str(getattr(inner, "adjustment", "raw"))
    feed = getattr(inner, "feed", "")
    return adjustment, str(getattr(feed, "value", feed) or "")


def settled_until(timeframe: Timeframe, now: datetime) -> int:
    """Bars starting before this time (ns) had closed ``SETTLE`` before ``now``: the store covers
    no later. Bars are closed once their start plus the timeframe has passed."""
    return to_ns(now - SETTLE) - timeframe.seconds * NS


def fill(
    store: BarStore,
    source: BarSource,
    symbol: str,
    timeframe: Timeframe,
    start: datetime,
    end: datetime,
    *,
    now: datetime | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[Bars, FillReport]:
    """Closed bars of ``symbol`` with ``start <= time < end``: the stored ones, plus what the
    source is asked for the spans not stored yet (written to the store as it arrives)."""
    now = now or datetime.now(UTC)
    report = FillReport(symbol)
    adjustment, feed = kind_of(source, symbol)
    lo, hi = to_ns(start), to_ns(end)
    closed = to_ns(now) - timeframe.seconds * NS  # a bar starting at or after this has not closed
    settled = settled_until(timeframe, now)
    dataset = store.dataset(symbol, timeframe)
    if dataset is not None and (dataset.adjustment, dataset.feed) != (adjustment, feed):
        report.notes.append(
            f"{symbol} {timeframe.label}: stored bars are {dataset.adjustment}/{dataset.feed or '-'}, "
            f"the source serves {adjustment}/{feed or '-'}: the file now holds the source's bars"
        )
        dataset = None
        replace = True
    else:
        replace = False
    wanted_end = min(hi, settled)
    holes = dataset.missing(lo, wanted_end) if dataset is not None else [(lo, wanted_end)]
    holes = [(a, b) for a, b in holes if a < b]
    last = dataset.last if dataset is not None else None
    stored_spans = dataset.covered() if dataset is not None else []
    if (
        last is not None
        and holes
        and adjustment != "raw"
        and _readjusted(store, source, symbol, timeframe, last, report)
    ):
        report.readjusted = True
        report.notes.append(
            f"{symbol} {timeframe.label}: the source prices stored bars differently now "
            "(a split or other adjustment): the stored history was fetched again"
        )
        holes = stored_spans + holes
        replace = True
    for a, b in _chunks(holes, timeframe):
        bars = _fetch(source, symbol, timeframe, a, b, report)
        spans = [Span(a, b, _served_by(source, symbol))]
        store.write(symbol, timeframe, bars, spans, adjustment=adjustment, feed=feed, replace=replace)
        replace = False
        if progress is not None:
            progress(1)
    stored = (
        store.read(symbol, timeframe, lo, min(hi, settled))
        if store.path(symbol, timeframe).is_file()
        else Bars.empty()
    )
    if hi > settled:  # the newest bars are fetched every time, never stored: they may still change
        tail_from = max(lo, settled)
        recent = _fetch(source, symbol, timeframe, tail_from, min(hi, max(closed, tail_from)), report)
        stored = Bars.concat([stored, recent])
    return stored, report


def chunk_count(
    store: BarStore, symbol: str, timeframe: Timeframe, start: datetime, end: datetime, now: datetime
) -> int:
    """How many requests ``fill`` will make for the part that gets stored (for a progress bar)."""
    lo, hi = to_ns(start), min(to_ns(end), settled_until(timeframe, now))
    dataset = store.dataset(symbol, timeframe)
    holes = dataset.missing(lo, hi) if dataset else ([(lo, hi)] if lo < hi else [])
    return len(list(_chunks(holes, timeframe)))


def _chunks(holes: Iterable[tuple[int, int]], timeframe: Timeframe) -> Iterable[tuple[int, int]]:
    size = timeframe.seconds * NS * CHUNK_BARS
    for a, b in holes:
        at = a
        while at < b:
            yield at, min(at + size, b)
            at += size


def _fetch(source: BarSource, symbol: str, timeframe: Timeframe, a: int, b: int, report: FillReport) -> Bars:
    if a >= b:
        return Bars.empty()
    report.requests += 1
    bars = source.fetch([symbol], timeframe, from_ns(a), from_ns(b)).get(symbol, Bars.empty())
    keep = (bars.time >= a) & (bars.time < b)
    bars = bars[keep] if len(bars) and not keep.all() else bars
    report.fetched_bars += len(bars)
    report.sources.add(_served_by(source, symbol))
    return bars


def _served_by(source: BarSource, symbol: str) -> str:
    served = getattr(source, "served", None)  # a FallbackSource says who answered last
    if isinstance(served, dict) and symbol in served:
        return str(served[symbol])
    return source.name


def _readjusted(
    store: BarStore, source: BarSource, symbol: str, timeframe: Timeframe, last: int, report: FillReport
) -> bool:
    """Whether the source now prices the newest stored bar differently than the store does."""
    stored = store.read(symbol, timeframe, last, last + 1)
    fresh = _fetch(source, symbol, timeframe, last, last + timeframe.seconds * NS, report)
    if not len(stored) or not len(fresh) or fresh.time[0] != stored.time[0]:
        return False
    a = np.array([stored.open[0], stored.high[0], stored.low[0], stored.close[0]])
    b = np.array([fresh.open[0], fresh.high[0], fresh.low[0], fresh.close[0]])
    return bool(np.any(np.abs(a - b) > _SAME * np.abs(a)))


@contextmanager
def progress_bar(total: int, label: str, enabled: bool | None) -> Iterator[Callable[[int], None] | None]:
    """A tqdm bar on standard error counting ``total`` chunks, when it is a terminal (or
    ``enabled``) and there is more than one chunk; otherwise None."""
    if enabled is False or total < 2 or (enabled is None and not sys.stderr.isatty()):
        yield None
        return
    from tqdm import tqdm

    with tqdm(total=total, desc=label, unit="chunk", file=sys.stderr) as bar:
        yield bar.update
