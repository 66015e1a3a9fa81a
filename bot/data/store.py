"""History kept locally: one Parquet file of bars per symbol and timeframe.

Layout, under ``TRADEBOT_DATA_DIR`` (``tradebot-data`` by default)::

    <dir>/<SYMBOL>/<timeframe>.parquet        AAPL/1m.parquet, BTC-USD/1d.parquet

Each file holds the columns ``time`` (bar start, UTC, nanoseconds), ``open``, ``high``, ``low``,
``close`` and ``volume``, oldest first, and in its schema metadata what the bars are: the
symbol, the timeframe, the adjustment and feed they were asked for, and **coverage**: the spans
of time already asked of a source, each with the source that answered. Coverage, not the bars,
decides what is missing: a weekend asked for and answered with no bars is covered, so it is
never asked again; a span never asked for is a gap, whatever bars lie around it.

Only settled history is covered: a span ends at least ``SETTLE`` before the time it was fetched
(Alpaca lists a just-closed bar in REST some seconds late), and bars that had not closed are
never stored. Writes go to a temporary file renamed over the old one, under a lock file, so a
second process reading or writing the same file sees the old bars or the new, never half.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from bot.bars import COLUMNS, NS, Bars, Timeframe

DEFAULT_DIR = "tradebot-data"
SETTLE = timedelta(minutes=10)  # a bar this recent may still be missing from Alpaca's REST answer
_META_KEY = b"tradebot"
_FORMAT = 1


class StoreError(Exception):
    """The store cannot be read or written; the message is one line for the user."""


@dataclass(frozen=True, slots=True)
class Span:
    """``[start, end)`` in nanoseconds since the epoch, asked of ``source``."""

    start: int
    end: int
    source: str

    def as_json(self) -> list:
        return [self.start, self.end, self.source]


@dataclass(slots=True)
class Dataset:
    """What one file says about itself (its bars are read separately)."""

    symbol: str
    timeframe: Timeframe
    adjustment: str = "raw"
    feed: str = ""
    coverage: list[Span] = field(default_factory=list)
    bars: int = 0
    first: int | None = None
    last: int | None = None

    def missing(self, start: int, end: int) -> list[tuple[int, int]]:
        """The parts of ``[start, end)`` no source was asked for yet, in order."""
        holes, at = [], start
        for span in sorted(self.coverage, key=lambda s: s.start):
            if span.end <= at:
                continue
            if span.start >= end:
                break
            if span.start > at:
                holes.append((at, min(span.start, end)))
            at = max(at, span.end)
            if at >= end:
                break
        if at < end:
            holes.append((at, end))
        return holes

    def covered(self) -> list[tuple[int, int]]:
        """Coverage merged into disjoint spans, whatever the sources."""
        merged: list[list[int]] = []
        for span in sorted(self.coverage, key=lambda s: s.start):
            if merged and span.start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], span.end)
            else:
                merged.append([span.start, span.end])
        return [(a, b) for a, b in merged]

    def sources(self) -> list[str]:
        return sorted({span.source for span in self.coverage})


def safe_name(symbol: str) -> str:
    """A folder name for a symbol: ``BTC/USD`` -> ``BTC-USD`` (no stock ticker has a dash)."""
    name = symbol.strip().upper().replace("/", "-")
    if not re.fullmatch(r"[A-Z0-9.\-]{1,32}", name):
        raise StoreError(f"{symbol!r} is not a symbol the store can keep (letters, digits, '.', '/')")
    return name


class BarStore:
    """The Parquet files under one directory."""

    def __init__(self, root: str | Path = DEFAULT_DIR) -> None:
        self.root = Path(root)

    def path(self, symbol: str, timeframe: Timeframe) -> Path:
        return self.root / safe_name(symbol) / f"{timeframe.label}.parquet"

    # ---------------------------------------------------------------------------------- reading

    def dataset(self, symbol: str, timeframe: Timeframe) -> Dataset | None:
        """What the file for ``symbol`` and ``timeframe`` holds, or None when there is none."""
        path = self.path(symbol, timeframe)
        if not path.is_file():
            return None
        import pyarrow.parquet as pq

        try:
            meta = pq.read_metadata(path)
        except (OSError, ValueError) as exc:  # ArrowInvalid is a ValueError
            raise StoreError(
                f"{path}: not a readable Parquet file ({exc}); delete it to download again"
            ) from None
        return _dataset(path, meta.schema.to_arrow_schema().metadata or {}, meta.num_rows)

    def read(
        self, symbol: str, timeframe: Timeframe, start: int | None = None, end: int | None = None
    ) -> Bars:
        """Stored bars with ``start <= time < end`` (nanoseconds; None: unbounded)."""
        path = self.path(symbol, timeframe)
        if not path.is_file():
            return Bars.empty()
        return _window(_read_bars(path), start, end)

    def datasets(self) -> Iterator[tuple[Path, Dataset]]:
        """Every file in the store, by symbol then timeframe."""
        if not self.root.is_dir():
            return
        for path in sorted(self.root.glob("*/*.parquet")):
            import pyarrow.parquet as pq

            try:
                meta = pq.read_metadata(path)
            except (OSError, ValueError) as exc:
                raise StoreError(f"{path}: not a readable Parquet file ({exc})") from None
            yield path, _dataset(path, meta.schema.to_arrow_schema().metadata or {}, meta.num_rows)

    # ---------------------------------------------------------------------------------- writing

    def write(
        self,
        symbol: str,
        timeframe: Timeframe,
        bars: Bars,
        spans: list[Span],
        *,
        adjustment: str = "raw",
        feed: str = "",
        replace: bool = False,
    ) -> Dataset:
        """Merge ``bars`` (fetched over ``spans``) into the file; a fetched bar replaces a stored one
        at the same time. ``replace``: drop what was stored first (the history was re-adjusted)."""
        path = self.path(symbol, timeframe)
        path.parent.mkdir(parents=True, exist_ok=True)
        with _locked(path):
            current = None if replace else self.dataset(symbol, timeframe)
            if current is not None and (current.adjustment, current.feed) != (adjustment, feed):
                raise StoreError(
                    f"{path} holds {_kind(current.adjustment, current.feed)}; these are "
                    f"{_kind(adjustment, feed)}: refusing to mix them (delete the file, or use another "
                    "TRADEBOT_DATA_DIR)"
                )
            old = _read_bars(path) if current is not None else Bars.empty()
            merged = _merge(old, bars, spans)
            dataset = Dataset(
                symbol,
                timeframe,
                adjustment,
                feed,
                _merge_spans((current.coverage if current else []) + spans),
                len(merged),
                int(merged.time[0]) if len(merged) else None,
                int(merged.time[-1]) if len(merged) else None,
            )
            _write(path, merged, dataset)
        return dataset


def _kind(adjustment: str, feed: str) -> str:
    adjusted = "unadjusted" if adjustment == "raw" else f"{adjustment}-adjusted"
    return f"{adjusted}{f' {feed}' if feed else ''} bars"


def _merge(old: Bars, new: Bars, spans: list[Span]) -> Bars:
    """Stored bars outside the fetched spans, plus the fetched bars; sorted, one per time."""
    if len(old) and spans:
        keep = np.ones(len(old), dtype=bool)
        for span in spans:
            keep &= (old.time < span.start) | (old.time >= span.end)
        old = old[keep] if not keep.all() else old
    both = Bars.concat([old, new])
    if not len(both):
        return both
    order = np.argsort(both.time, kind="stable")
    both = both[order]
    # keep the last of equal times: the fetched bar, which came after the stored ones
    last = np.r_[both.time[1:] != both.time[:-1], True]
    return both[last] if not last.all() else both


def _merge_spans(spans: list[Span]) -> list[Span]:
    """Adjacent or overlapping spans of one source joined; different sources kept apart."""
    out: list[Span] = []
    for span in sorted(spans, key=lambda s: (s.start, s.end)):
        if span.end <= span.start:
            continue
        if out and out[-1].source == span.source and span.start <= out[-1].end:
            out[-1] = Span(out[-1].start, max(out[-1].end, span.end), span.source)
        else:
            out.append(span)
    return out


def _window(bars: Bars, start: int | None, end: int | None) -> Bars:
    if not len(bars) or (start is None and end is None):
        return bars
    lo = 0 if start is None else int(np.searchsorted(bars.time, start, "left"))
    hi = len(bars) if end is None else int(np.searchsorted(bars.time, end, "left"))
    return bars[lo:hi]


def _dataset(path: Path, metadata: dict, rows: int) -> Dataset:
    try:
        info = json.loads(metadata[_META_KEY])
        dataset = Dataset(
            info["symbol"],
            Timeframe(int(info["timeframe_seconds"])),
            info.get("adjustment", "raw"),
            info.get("feed", ""),
            [Span(int(a), int(b), str(s)) for a, b, s in info["coverage"]],
            rows,
            info.get("first"),
            info.get("last"),
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise StoreError(f"{path}: not a tradebot bar file ({exc}); delete it to download again") from None
    return dataset


def _read_bars(path: Path) -> Bars:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path, columns=["time", *COLUMNS])
    except (OSError, ValueError, KeyError) as exc:
        raise StoreError(f"{path}: cannot read its bars ({exc}); delete it to download again") from None
    time = table.column("time").to_numpy().astype("datetime64[ns]").view(np.int64)
    return Bars(
        np.ascontiguousarray(time, dtype=np.int64),
        *(np.ascontiguousarray(table.column(name).to_numpy(), dtype=np.float64) for name in COLUMNS),
    )


def _write(path: Path, bars: Bars, dataset: Dataset) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    info = {
        "format": _FORMAT,
        "symbol": dataset.symbol,
        "timeframe_seconds": dataset.timeframe.seconds,
        "adjustment": dataset.adjustment,
        "feed": dataset.feed,
        "coverage": [span.as_json() for span in dataset.coverage],
        "first": dataset.first,
        "last": dataset.last,
    }
    table = pa.table(
        {
            "time": pa.array(bars.time.astype("datetime64[ns]"), type=pa.timestamp("ns", tz="UTC")),
            **{name: pa.array(getattr(bars, name), type=pa.float64()) for name in COLUMNS},
        }
    ).replace_schema_metadata({_META_KEY: json.dumps(info).encode()})
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, path)
    except OSError as exc:
        raise StoreError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One writer per file across processes (an advisory lock on a file beside it)."""
    lock = path.with_name(f".{path.name}.lock")
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def to_ns(when: datetime) -> int:
    delta = when - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * NS + delta.microseconds * 1_000


def from_ns(ns: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(ns) // 1_000)
