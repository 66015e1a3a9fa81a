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
# ASCII digits only (``\d`` would take Arabic-Indic or full-width ones), at most six of them.
_TF_RE = re.compile(r"^\s*([0-9]{1,6})\s*(m|min|h|d)\s*$", re.IGNORECASE)
# The longest bar the bot draws, backtests or asks a data source for: a week. Longer ones have
# no data source (Alpaca serves up to 1d, Polygon whole days) and a chart's span of them runs
# past the calendar (999999d x 300 bars is an OverflowError in datetime arithmetic).
MAX_TIMEFRAME_SECONDS = 7 * 86400
TIMEFRAME_FORMAT = "a whole number and a unit (m, h or d) from 1m to 7d, like 1m, 15m, 1h or 1d"


@dataclass(frozen=True, slots=True)
class Timeframe:
    """A bar length such as ``1m``, ``15m``, ``1h`` or ``1d``."""

    seconds: int

    @classmethod
    def parse(cls, text: str) -> Timeframe:
        """The one parser of a bar length typed by a person (``/chart``, the API, ``--timeframe``).

        Raises ``ValueError`` with one sentence for anything the bot cannot handle: no unit, a
        zero, non-ASCII digits, ``1M`` (a month elsewhere: never read as a minute), or a bar longer
        than ``MAX_TIMEFRAME_SECONDS``."""
        shown = text if len(text) <= 24 else text[:24] + "..."
        match = _TF_RE.match(text)
        if match and match.group(2) == "M":
            raise ValueError(f"invalid timeframe {shown!r}: M would be months; minutes are written m (15m)")
        seconds = int(match.group(1)) * _UNITS[match.group(2).lower()[0]] if match else 0
        if not 0 < seconds <= MAX_TIMEFRAME_SECONDS:
            raise ValueError(f"invalid timeframe {shown!r}: allowed {TIMEFRAME_FORMAT}")
        return cls(seconds)

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


def parse_date(text: str, option: str) -> datetime:
    """A date or time a person typed for ``option`` (``2024-01-31``, ``2024-01-31T09:30:00Z``), in
    UTC (a time without a zone is read as UTC). ValueError names the option and the text."""
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{option} {text!r} is not a date (use 2024-01-31 or 2024-01-31T09:30:00Z)"
        ) from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


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
