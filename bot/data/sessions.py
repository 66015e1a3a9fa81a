"""Regular-hours stock bars: what a stock strategy sees unless ``TRADEBOT_EXTENDED_HOURS_BARS=on``.

Alpaca's and Polygon's intraday stock bars hold pre-market and after-hours trades, and neither
can be asked to leave them out (alpaca-py#580: "Currently server side is not supporting this
feature"; alpaca-trade-api-python#552: "There is no server-side option for this"). An IEX bar
at 07:12 or 19:40 ET is thin and often far from the day's prices: an indicator computed over
it, or a signal on it, is not what the same strategy saw in a backtest on the regular session.

``RegularHours`` wraps a bar source and keeps, for stock symbols on intraday timeframes, only
the bars that lie wholly inside the regular session, 09:30-16:00 New York time, Monday to
Friday. A bar that straddles the open or the close mixes both sessions and is dropped too:
Alpaca aligns hour bars on UTC hours, so with 1h bars the 09:00-10:00 ET bar goes, and with 4h
bars only those inside the session remain (30m and shorter align with 09:30). Daily bars and
crypto pass unchanged. Holidays have no regular session and no regular-hours bars either way;
on the three early-close days a year (13:00) bars from 13:00 to 16:00 are kept: this module has
no exchange calendar.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import numpy as np

from bot.bars import NS, Bars, Timeframe
from bot.data.base import BarSource
from bot.domain import is_crypto

NEW_YORK = ZoneInfo("America/New_York")
OPEN, CLOSE = time(9, 30), time(16, 0)
_DAY = 86_400 * NS


def _session_ns(day: date) -> tuple[int, int]:
    """The regular session of ``day`` (a New York date) as UTC nanoseconds."""
    opens = datetime.combine(day, OPEN, NEW_YORK).astimezone(UTC)
    closes = datetime.combine(day, CLOSE, NEW_YORK).astimezone(UTC)
    return int(opens.timestamp()) * NS, int(closes.timestamp()) * NS


def regular_mask(times: np.ndarray, timeframe: Timeframe) -> np.ndarray:
    """True for each bar (start times, ns) that lies wholly inside a weekday's regular session.

    The session falls inside one UTC date (13:30-21:00 UTC at the latest), so each bar is judged
    against the session of its UTC date, computed once per distinct date."""
    times = np.asarray(times, dtype=np.int64)
    if not len(times):
        return np.zeros(0, dtype=bool)
    days = times // _DAY
    unique, index = np.unique(days, return_inverse=True)
    opens = np.empty(len(unique), dtype=np.int64)
    closes = np.empty(len(unique), dtype=np.int64)
    weekday = np.empty(len(unique), dtype=bool)
    for i, d in enumerate(unique):
        day = datetime.fromtimestamp(int(d) * 86_400, tz=UTC).date()
        opens[i], closes[i] = _session_ns(day)
        weekday[i] = day.weekday() < 5
    ends = times + timeframe.seconds * NS
    return weekday[index] & (times >= opens[index]) & (ends <= closes[index])


def regular_hours(bars: Bars, timeframe: Timeframe) -> Bars:
    """``bars`` without the ones outside (or straddling) the regular session; intraday only."""
    if timeframe.seconds >= 86_400 or not len(bars):
        return bars
    keep = regular_mask(bars.time, timeframe)
    return bars if keep.all() else bars[keep]


class RegularHours:
    """A ``BarSource`` that serves stocks' intraday bars from the regular session only."""

    def __init__(self, source: BarSource) -> None:
        self.source = source
        self.name = source.name

    def fetch(
        self, symbols: list[str], timeframe: Timeframe, start: datetime, end: datetime
    ) -> dict[str, Bars]:
        fetched = self.source.fetch(symbols, timeframe, start, end)
        out: dict[str, Bars] = {}
        for symbol, bars in fetched.items():
            kept = self.keep(symbol, bars, timeframe)
            if len(kept):
                out[symbol] = kept
        return out

    @staticmethod
    def keep(symbol: str, bars: Bars, timeframe: Timeframe) -> Bars:
        """What of ``symbol``'s ``bars`` a strategy sees: a stock's regular hours, all of crypto."""
        return bars if is_crypto(symbol) else regular_hours(bars, timeframe)

    def __getattr__(self, name: str) -> object:  # latest_prices, served, ...: the wrapped source's
        return getattr(self.source, name)
