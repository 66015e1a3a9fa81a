"""Bollinger Band reversion: buy a close below the lower band, sell when the close is back above
the middle band.

Buy on the bar the close falls below the lower band (having been at or above it the bar
before); sell on the bar it rises above the middle band. Bands are TA-Lib's BBANDS with a simple
average (``bot.indicators.bbands``): middle = SMA(period), the others stddev population standard
deviations above and below.
"""

from __future__ import annotations

from typing import ClassVar

from bot.bars import Bars
from bot.hookspecs import hookimpl
from bot.indicators import bbands, crossed_above, crossed_below, signals
from bot.strategy import Param, Strategy, StrategyOutput


class BollingerReversion(Strategy):
    name = "bollinger"
    description = "Buy a close below the lower Bollinger Band, sell a close back above the middle band."
    params: ClassVar[dict[str, Param]] = {
        "period": Param(20, min=2, max=1000, help="bars in the average and the deviation"),
        "stddev": Param(2.0, min=0.1, max=10, help="band width in standard deviations"),
    }

    @property
    def warmup(self) -> int:
        return self.period + 1  # the bands start on bar period-1; a cross needs the bar before

    def compute(self, bars: Bars) -> StrategyOutput:
        upper, middle, lower = bbands(bars.close, self.period, self.stddev)
        close = bars.close
        signal = signals(crossed_below(close, lower), crossed_above(close, middle))
        return StrategyOutput(signal, lines={"upper band": upper, "middle band": middle, "lower band": lower})


@hookimpl
def tradebot_strategies() -> list[type[Strategy]]:
    return [BollingerReversion]
