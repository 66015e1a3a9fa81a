"""Bars and timeframes: the market data shape every strategy, the engine and the backtester share.

``Bars`` holds plain numpy arrays (no pandas), so the backtest path can stay free of heavy
imports; ``Bars.from_frame`` / ``to_frame`` convert at the edges where pandas is already loaded.
Times are int64 nanoseconds since the epoch, UTC, and mark the *start* of each bar.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

COLUMNS = ("open", "high", "low", "close", "volume")
NS = 1_000_000_000

_UNITS = {"m": 60, "h": 3600, "d": 86400}
_TF_RE = re.compile(r"^\s*(\d+)\s*(m|min|h|d)\s*$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Timeframe:
    """A bar length such as ``1m``, ``15m``, ``1h`` or ``1d``."""

    seconds: int

    @classmethod
    def parse(cls, text: str) -> Timeframe:
        match = _TF_RE.match(text)
        if not match or int(match.group(1)) <= 0:
            raise ValueError(f"invalid timeframe {text!r}: use a number and a unit, like 1m, 15m, 1h or 1d")
        unit = match.group(2).lower()[0]
        return cls(int(match.group(1)) * _UNITS[unit])

    @property
    def label(self) -> str:
        for unit, size in (("d", 86400), ("h", 3600)):
            if self.seconds % size == 0:
                return f"{self.seconds // size}{unit}"
        return f"{self.seconds // 60}m"

    @property
    def periods_per_year(self) -> float:
        """Bars per year, for annualising: 24/7 calendar (crypto and the simulator)."""
        return 365 * 86400 / self.seconds

    def floor(self, when: datetime) -> datetime:
        """Start of the bar that contains ``when``."""
        ts = int(when.timestamp())
        return datetime.fromtimestamp(ts - ts % self.seconds, tz=UTC)

    def __str__(self) -> str:
        return self.label


@dataclass(frozen=True, slots=True)
class Bars:
    """OHLCV columns as numpy arrays of equal length, oldest first."""

    time: np.ndarray  # int64 ns, bar start, UTC
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    def __len__(self) -> int:
        return len(self.time)

    def tail(self, n: int) -> Bars:
        return self[-n:] if n < len(self) else self

    def __getitem__(self, item: slice | np.ndarray) -> Bars:
        """The rows of a slice, or of a boolean mask or index array."""
        return Bars(*(getattr(self, name)[item] for name in ("time", *COLUMNS)))

    def last_time(self) -> datetime:
        return datetime.fromtimestamp(int(self.time[-1]) / NS, tz=UTC)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> Bars:
        """From a DataFrame with a UTC DatetimeIndex and open/high/low/close/volume columns."""
        index = frame.index
        if getattr(index, "tz", None) is not None:
            index = index.tz_convert("UTC").tz_localize(None)
        times = index.as_unit("ns").asi8 if hasattr(index, "as_unit") else index.asi8
        return cls(
            np.asarray(times, dtype=np.int64),
            *(np.ascontiguousarray(frame[c].to_numpy(dtype=np.float64)) for c in COLUMNS),
        )

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd

        index = pd.DatetimeIndex(pd.to_datetime(self.time, unit="ns", utc=True), name="timestamp")
        return pd.DataFrame({c: getattr(self, c) for c in COLUMNS}, index=index)

    @classmethod
    def empty(cls) -> Bars:
        return cls(np.empty(0, np.int64), *(np.empty(0) for _ in COLUMNS))

    @classmethod
    def concat(cls, parts: list[Bars]) -> Bars:
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty()
        return cls(*(np.concatenate([getattr(p, n) for p in parts]) for n in ("time", *COLUMNS)))
