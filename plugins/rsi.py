"""RSI mean reversion: buy when Wilder's RSI falls into oversold, sell when it rises into overbought.

Buy on the bar RSI(period) closes below ``oversold`` after being at or above it the bar before;
sell on the bar it closes above ``overbought`` after being at or below it. RSI is TA-Lib's
(``bot.indicators.rsi``).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from bot.bars import Bars
from bot.hookspecs import hookimpl
from bot.indicators import crossed_above, crossed_below, rsi, signals
from bot.strategy import Param, Strategy, StrategyError, StrategyOutput


class RsiReversion(Strategy):
    name = "rsi"
    description = "Buy when RSI falls below oversold, sell when it rises above overbought."
    params: ClassVar[dict[str, Param]] = {
        "period": Param(14, min=2, max=1000, help="bars in Wilder's averages"),
        "oversold": Param(30.0, min=0, max=100, help="buy when RSI falls below this"),
        "overbought": Param(70.0, min=0, max=100, help="sell when RSI rises above this (above oversold)"),
    }

    def __init__(self, **values: Any) -> None:
        super().__init__(**values)
        if self.oversold >= self.overbought:
            raise StrategyError(
                f"rsi: oversold={self.oversold:g} must be below overbought={self.overbought:g}"
            )

    @property
    def warmup(self) -> int:
        return self.period + 2  # RSI starts on bar period; a cross needs the bar before

    def compute(self, bars: Bars) -> StrategyOutput:
        value = rsi(bars.close, self.period)
        low = np.full(len(value), float(self.oversold))
        high = np.full(len(value), float(self.overbought))
        return StrategyOutput(signals(crossed_below(value, low), crossed_above(value, high)))


@hookimpl
def tradebot_strategies() -> list[type[Strategy]]:
    return [RsiReversion]
