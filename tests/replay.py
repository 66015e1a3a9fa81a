"""A market that replays given bars to the live engine: its bar source and its simulated exchange's
price feed, for the test that runs a portfolio backtest and the real engine on the same history.

Strict as the synthetic market it stands in for (``bot/data/synthetic.py``): bars are served
only for the timeframe they have and only with ``start <= bar start < end`` (the
``BarSource.fetch`` contract in ``bot/data/base.py``), and asking for a price before a
symbol's first bar or for a symbol it does not have is an error, not a guess.

The price at an instant is the open of the bar under way (or starting) then, else the close of
the last bar before it: the definition ``bot.backtest.portfolio`` fills at.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from bot.bars import NS, Bars, Timeframe
from bot.data.base import DataError


def ns(when: datetime) -> int:
    delta = when - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * NS + delta.microseconds * 1_000


class ReplayMarket:
    name = "replay"

    def __init__(self, bars: dict[str, Bars], timeframe: Timeframe) -> None:
        self.bars = bars
        self.timeframe = timeframe
        self.fetches = 0

    def fetch(
        self, symbols: list[str], timeframe: Timeframe, start: datetime, end: datetime
    ) -> dict[str, Bars]:
        if timeframe != self.timeframe:
            raise DataError(f"replay has {self.timeframe} bars, not {timeframe}")
        self.fetches += 1
        lo, hi = ns(start), ns(end)
        out = {}
        for symbol in symbols:
            bars = self._of(symbol)
            keep = (bars.time >= lo) & (bars.time < hi)
            if keep.any():
                out[symbol] = bars[keep]  # type: ignore[index]
        return out

    def price_at(self, symbol: str, when: datetime) -> float:
        bars, t = self._of(symbol), ns(when)
        j = int(np.searchsorted(bars.time, t, "right")) - 1
        if j < 0:
            raise DataError(f"no {symbol} price before its first bar ({when:%Y-%m-%d %H:%M})")
        inside = int(bars.time[j]) + self.timeframe.seconds * NS > t
        return float(bars.open[j] if inside else bars.close[j])

    def _of(self, symbol: str) -> Bars:
        try:
            return self.bars[symbol]
        except KeyError:
            raise DataError(f"replay has no bars for {symbol}") from None
