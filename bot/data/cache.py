"""The bounded per-symbol history cache: each cycle fetches only the bars that closed since the last.

``HistoryCache.update(symbols, now)`` asks the source for the bars each symbol is missing,
in as few calls as possible: symbols that need the same window share one ``fetch`` (Alpaca
answers many symbols in one request), merges them after the cached ones and keeps the last
``max_bars`` per symbol as plain numpy arrays (100 symbols x 1,000 bars is about 5 MB).

Only closed bars are asked for and kept: every fetch ends at the start of the bar still
forming, ``timeframe.floor(now)``. The cache does not judge the data (the engine runs
``validate_bars`` on what it returns); it only guarantees that each symbol's times stay
strictly increasing.

**A split re-reads the window.** Stock bars come split-adjusted (``bot.alpaca.data``): after a
split the source serves every earlier bar at the new scale, while the cache holds the old one,
and appending new bars to it would show a crash (or a leap) that never traded. So each fetch
asks again for the last cached bar as well; when the source now serves it more than
``REWRITE_TOLERANCE`` (1 %) off what is cached (a split or any other rewrite of history, far
beyond a late trade's revision), that symbol's whole window is read again. If that read fails,
its window is dropped rather than kept at the old scale, and the error is reported.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np

from bot.bars import COLUMNS, NS, Bars, Timeframe
from bot.data.base import BarSource, DataError

__all__ = ["CacheResult", "HistoryCache"]

log = logging.getLogger(__name__)

_FIELDS = ("time", *COLUMNS)
REWRITE_TOLERANCE = 0.01  # a cached bar served this far off (relative close): history was rewritten


@dataclass(frozen=True, slots=True)
class CacheResult:
    """What one ``update`` produced.

    ``bars``: the current window of every requested symbol that has any cached bars (at most
    ``max_bars``, closed bars only, oldest first). ``errors``: symbol -> why it has no fresh
    data this cycle (the source's error, or no data at all for it). A symbol whose fetch failed
    keeps its older window in ``bars`` and also appears in ``errors``.
    """

    bars: dict[str, Bars] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def _ns(when: datetime) -> int:
    delta = when - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * NS + delta.microseconds * 1_000


def _datetime(ns: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=ns // 1_000)


class HistoryCache:
    """The last ``max_bars`` closed bars of each symbol, refreshed incrementally from ``source``."""

    def __init__(self, source: BarSource, timeframe: Timeframe, max_bars: int) -> None:
        if max_bars < 1:
            raise ValueError(f"max_bars must be at least 1, got {max_bars}")
        self.source = source
        self.timeframe = timeframe
        self.max_bars = int(max_bars)
        self._bars: dict[str, Bars] = {}

    def get(self, symbol: str) -> Bars | None:
        """The cached window of ``symbol``, or None if it has none."""
        return self._bars.get(symbol)

    def symbols(self) -> list[str]:
        return list(self._bars)

    def forget(self, symbol: str) -> None:
        """Drop ``symbol``'s bars (a symbol no longer traded), so memory follows the symbol list."""
        self._bars.pop(symbol, None)

    def update(self, symbols: list[str], now: datetime) -> CacheResult:
        """Fetch the bars each of ``symbols`` is missing up to ``timeframe.floor(now)`` and merge them.

        A symbol with cached bars asks from its last bar's start (that bar again, to see whether
        the source rewrote history); a new one (or one whose gap is longer than the window) asks
        for the last ``max_bars`` bars, and a cached one of those has its last bar asked for on
        its own. Symbols with the same start share one ``source.fetch`` call. A ``DataError``
        (or any other failure) of that call is reported for every symbol in it, and their cached
        bars stay as they were. A symbol whose history was rewritten has its whole cached window
        read again.
        """
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
        step = self.timeframe.seconds * NS
        end = self.timeframe.floor(now)
        end_ns = _ns(end)
        window_start = end_ns - self.max_bars * step

        batches: dict[int, list[str]] = {}
        probes: dict[int, list[str]] = {}  # a gap longer than the window: its last bar, asked alone
        for symbol in dict.fromkeys(symbols):
            cached = self._bars.get(symbol)
            start = window_start
            if cached is not None and len(cached):
                last = int(cached.time[-1])
                if max(start, last + step) >= end_ns:
                    continue  # no bar can have closed since the last one cached
                if last >= start:
                    start = last
                else:
                    probes.setdefault(last, []).append(symbol)
            if start < end_ns:
                batches.setdefault(start, []).append(symbol)

        rewritten = self._probe(probes)
        errors: dict[str, str] = {}
        for start_ns, batch in batches.items():
            batch = [s for s in batch if s not in rewritten]
            fetched = self._fetch(batch, start_ns, end, errors) if batch else None
            if fetched is None:
                continue
            for symbol in batch:
                new = fetched.get(symbol)
                if new is not None and len(new):
                    if self._rewritten(symbol, new):
                        rewritten.append(symbol)
                        continue
                    self._merge(symbol, new, start_ns, end_ns, _ns(now))
                if symbol not in self._bars:
                    errors[symbol] = self._none(symbol, start_ns, end)
        for symbol in rewritten:
            self._reread(symbol, end, now, errors)

        bars = {s: self._bars[s] for s in dict.fromkeys(symbols) if s in self._bars}
        return CacheResult(bars=bars, errors=errors)

    def _probe(self, probes: dict[int, list[str]]) -> list[str]:
        """Ask for the last cached bar of symbols whose gap outgrew the window; those the source
        now serves at another scale. A failed probe proves nothing (the main fetch reports)."""
        step = self.timeframe.seconds * NS
        rewritten: list[str] = []
        for last, batch in probes.items():
            fetched = self._fetch(batch, last, _datetime(last + step), {})
            for symbol in batch if fetched is not None else []:
                new = fetched.get(symbol) if fetched is not None else None
                if new is not None and len(new) and self._rewritten(symbol, new):
                    rewritten.append(symbol)
        return rewritten

    def _fetch(
        self, batch: list[str], start_ns: int, end: datetime, errors: dict[str, str]
    ) -> dict[str, Bars] | None:
        """One ``source.fetch``; None (and ``errors`` filled in for the batch) when it failed."""
        try:
            return self.source.fetch(batch, self.timeframe, _datetime(start_ns), end)
        except DataError as exc:
            message = str(exc) or type(exc).__name__
        except Exception as exc:  # a bug or an unwrapped transport error: isolate this batch
            log.exception("bar source %s failed for %s", self.source.name, ", ".join(batch))
            message = f"{self.source.name} failed: {type(exc).__name__}: {exc}"
        errors.update(dict.fromkeys(batch, message))
        return None

    def _none(self, symbol: str, start_ns: int, end: datetime) -> str:
        return (
            f"no {self.timeframe} bars for {symbol} from {self.source.name}"
            f" between {_datetime(start_ns):%Y-%m-%d %H:%M} and {end:%Y-%m-%d %H:%M} UTC"
        )

    def _rewritten(self, symbol: str, new: Bars) -> bool:
        """Whether ``new`` serves the last cached bar of ``symbol`` at another scale."""
        cached = self._bars.get(symbol)
        if cached is None or not len(cached):
            return False
        last = int(cached.time[-1])
        hits = np.flatnonzero(np.asarray(new.time, dtype=np.int64) == last)
        if not len(hits):
            return False
        old, served = float(cached.close[-1]), float(new.close[int(hits[0])])
        if not (np.isfinite(old) and old > 0) or abs(served / old - 1.0) <= REWRITE_TOLERANCE:
            return False  # the same bar (or one validation will refuse anyway)
        log.warning(
            "%s: the source now serves its %s bar closing at %g, cached at %g (a split?): "
            "re-reading its whole window",
            symbol,
            _datetime(last).isoformat(),
            served,
            old,
        )
        return True

    def _reread(self, symbol: str, end: datetime, now: datetime, errors: dict[str, str]) -> None:
        """The source rewrote ``symbol``'s history (a split): read its cached window again, from its
        first bar. If that fails the window is dropped, not kept at the old scale."""
        old = self._bars.pop(symbol)
        first = int(old.time[0])
        fetched = self._fetch([symbol], first, end, errors)
        new = fetched.get(symbol) if fetched is not None else None
        if new is not None and len(new):
            self._merge(symbol, new, first, _ns(end), _ns(now))
        if symbol not in self._bars and symbol not in errors:
            errors[symbol] = self._none(symbol, first, end)

    def _merge(self, symbol: str, new: Bars, start_ns: int, end_ns: int, now_ns: int) -> None:
        """Append ``new`` after the cached bars: closed bars in the asked window only, strictly
        increasing times (a repeated time keeps its first bar), the last ``max_bars`` kept.

        Closed means its start plus the timeframe is not after now, whatever the source's bar
        boundaries: Alpaca's crypto days start at midnight US/Central, so a day bar that starts
        before the UTC midnight ``end`` can still be forming (issue 9)."""
        times = np.asarray(new.time, dtype=np.int64)
        times, first_of_each = np.unique(times, return_index=True)  # sorts, drops duplicates
        cached = self._bars.get(symbol)
        lowest = start_ns
        if cached is not None and len(cached):
            lowest = max(lowest, int(cached.time[-1]) + 1)
        keep = (times >= lowest) & (times < end_ns) & (times + self.timeframe.seconds * NS <= now_ns)
        picked = first_of_each[keep]
        fresh = len(picked)
        if not fresh:
            return
        old = 0 if cached is None else min(len(cached), self.max_bars - min(fresh, self.max_bars))
        picked = picked[-self.max_bars :]
        columns = []
        for name in _FIELDS:
            dtype = np.int64 if name == "time" else np.float64
            tail = [np.asarray(getattr(cached, name))[-old:]] if cached is not None and old else []
            columns.append(np.concatenate([*tail, np.asarray(getattr(new, name), dtype=dtype)[picked]]))
        self._bars[symbol] = Bars(*columns)
