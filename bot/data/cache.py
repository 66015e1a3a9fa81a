"""The bounded per-symbol history cache: each cycle fetches only the bars that closed since the last.

``HistoryCache.update(symbols, now)`` asks the source for the bars each symbol is missing,
in as few calls as possible: symbols that need the same window share one ``fetch`` (Alpaca
answers many symbols in one request), merges them after the cached ones and keeps the last
``max_bars`` per symbol as plain numpy arrays (100 symbols x 1,000 bars is about 5 MB).

Only closed bars are asked for and kept: every fetch ends at the start of the bar still
forming, ``timeframe.floor(now)``. The cache does not judge the data (the engine runs
``validate_bars`` on what it returns); it only guarantees that each symbol's times stay
strictly increasing.
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

        A symbol with cached bars asks from its last bar's start + timeframe; a new one (or one
        whose gap is longer than the window) asks for the last ``max_bars`` bars. Symbols with
        the same start share one ``source.fetch`` call. A ``DataError`` (or any other failure)
        of that call is reported for every symbol in it, and their cached bars stay as they were.
        """
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
        step = self.timeframe.seconds * NS
        end = self.timeframe.floor(now)
        end_ns = _ns(end)
        window_start = end_ns - self.max_bars * step

        batches: dict[int, list[str]] = {}
        for symbol in dict.fromkeys(symbols):
            cached = self._bars.get(symbol)
            start = window_start
            if cached is not None and len(cached):
                start = max(start, int(cached.time[-1]) + step)
            if start < end_ns:
                batches.setdefault(start, []).append(symbol)

        errors: dict[str, str] = {}
        for start_ns, batch in batches.items():
            start_at = _datetime(start_ns)
            try:
                fetched = self.source.fetch(batch, self.timeframe, start_at, end)
            except DataError as exc:
                message = str(exc) or type(exc).__name__
                errors.update(dict.fromkeys(batch, message))
                continue
            except Exception as exc:  # a bug or an unwrapped transport error: isolate this batch
                log.exception("bar source %s failed for %s", self.source.name, ", ".join(batch))
                message = f"{self.source.name} failed: {type(exc).__name__}: {exc}"
                errors.update(dict.fromkeys(batch, message))
                continue
            for symbol in batch:
                new = fetched.get(symbol)
                if new is not None and len(new):
                    self._merge(symbol, new, start_ns, end_ns, _ns(now))
                if symbol not in self._bars:
                    errors[symbol] = (
                        f"no {self.timeframe} bars for {symbol} from {self.source.name}"
                        f" between {start_at:%Y-%m-%d %H:%M} and {end:%Y-%m-%d %H:%M} UTC"
                    )

        bars = {s: self._bars[s] for s in dict.fromkeys(symbols) if s in self._bars}
        return CacheResult(bars=bars, errors=errors)

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
