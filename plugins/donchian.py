"""Donchian channel breakout: buy a close above the highest high of the last ``entry`` bars, sell a
close below the lowest low of the last ``exit`` bars (the Turtle traders' rule).

The channels are TA-Lib's MAX of the highs and MIN of the lows (``bot.indicators``) over the
bars before the one being decided, so a bar never has to break its own high.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from bot.bars import Bars
from bot.hookspecs import hookimpl
from bot.indicators import rolling_max, rolling_min, signals
from bot.strategy import Param, Strategy, StrategyOutput


def _before(values: np.ndarray) -> np.ndarray:
    """Each bar sees the value of the bar before (NaN on the first)."""
    out = np.full(len(values), np.nan)
    out[1:] = values[:-1]
    return out


class DonchianBreakout(Strategy):
    name = "donchian"
    description = "Buy a close above the highest high of N bars, sell a close below the lowest low of M bars."
    params: ClassVar[dict[str, Param]] = {
        "entry": Param(20, min=2, max=1000, help="bars whose highest high a close must exceed to buy"),
        "exit": Param(10, min=2, max=1000, help="bars whose lowest low a close must fall under to sell"),
    }

    @property
    def warmup(self) -> int:
        return max(self.entry, self.exit) + 1

    def compute(self, bars: Bars) -> StrategyOutput:
        upper = _before(rolling_max(bars.high, self.entry))
        lower = _before(rolling_min(bars.low, self.exit))
        signal = signals(bars.close > upper, bars.close < lower)
        return StrategyOutput(signal, lines={"channel high": upper, "channel low": lower})


@hookimpl
def tradebot_strategies() -> list[type[Strategy]]:
    return [DonchianBreakout]
