"""MACD crossover: long while the MACD line is above its signal line.

Buy on the bar the MACD line closes above the signal line (having been at or below it the bar
before), sell on the bar it closes below. MACD is TA-Lib's (``bot.indicators.macd``): EMA(fast)
- EMA(slow) of the close, the signal an EMA of that line.
"""

from __future__ import annotations

from typing import Any, ClassVar

from bot.bars import Bars
from bot.hookspecs import hookimpl
from bot.indicators import crossed_above, crossed_below, macd, signals
from bot.strategy import Param, Strategy, StrategyError, StrategyOutput


class MacdCross(Strategy):
    name = "macd"
    description = "Long while the MACD line is above its signal line: buy the cross up, sell the cross down."
    params: ClassVar[dict[str, Param]] = {
        "fast": Param(12, min=2, max=1000, help="bars in the fast EMA"),
        "slow": Param(26, min=3, max=1000, help="bars in the slow EMA (above fast)"),
        "signal": Param(9, min=1, max=1000, help="bars in the signal line's EMA"),
    }

    def __init__(self, **values: Any) -> None:
        super().__init__(**values)
        if self.fast >= self.slow:
            raise StrategyError(f"macd: fast={self.fast} must be below slow={self.slow}")

    @property
    def warmup(self) -> int:
        return self.slow + self.signal  # both lines start on bar slow+signal-2; a cross needs one more

    def compute(self, bars: Bars) -> StrategyOutput:
        line, signal_line, _ = macd(bars.close, self.fast, self.slow, self.signal)
        return StrategyOutput(signals(crossed_above(line, signal_line), crossed_below(line, signal_line)))


@hookimpl
def tradebot_strategies() -> list[type[Strategy]]:
    return [MacdCross]
