"""Moving-average crossover, simple (``sma_cross``) or exponential (``ema_cross``).

Long while the fast average is above the slow one: buy on the bar the fast average closes above
the slow one, sell on the bar it closes below. The averages are TA-Lib's SMA and EMA
(``bot.indicators``).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from bot.bars import Bars
from bot.hookspecs import hookimpl
from bot.indicators import crossed_above, crossed_below, ema, signals, sma
from bot.strategy import Param, Strategy, StrategyError, StrategyOutput


class _Crossover(Strategy):
    kind: ClassVar[str]

    def average(self, values: np.ndarray, n: int) -> np.ndarray:
        raise NotImplementedError  # each kind of crossover names its average

    def __init__(self, **values: Any) -> None:
        super().__init__(**values)
        if self.fast >= self.slow:
            raise StrategyError(f"{self.name}: fast={self.fast} must be below slow={self.slow}")

    @property
    def warmup(self) -> int:
        return self.slow + 1  # the slow average starts on bar slow-1; a cross needs the bar before

    def compute(self, bars: Bars) -> StrategyOutput:
        fast = self.average(bars.close, self.fast)
        slow = self.average(bars.close, self.slow)
        signal = signals(crossed_above(fast, slow), crossed_below(fast, slow))
        return StrategyOutput(
            signal, lines={f"{self.kind} {self.fast}": fast, f"{self.kind} {self.slow}": slow}
        )


def _params(fast: int, slow: int, kind: str) -> dict[str, Param]:
    return {
        "fast": Param(fast, min=2, max=1000, help=f"bars in the fast {kind}"),
        "slow": Param(slow, min=3, max=1000, help=f"bars in the slow {kind} (above fast)"),
    }


class SmaCross(_Crossover):
    name = "sma_cross"
    description = "Long while SMA(fast) is above SMA(slow): buy when it crosses above, sell when below."
    params: ClassVar[dict[str, Param]] = _params(10, 30, "SMA")
    kind = "sma"

    def average(self, values: np.ndarray, n: int) -> np.ndarray:
        return sma(values, n)


class EmaCross(_Crossover):
    name = "ema_cross"
    description = "Long while EMA(fast) is above EMA(slow): buy when it crosses above, sell when below."
    params: ClassVar[dict[str, Param]] = _params(12, 26, "EMA")
    kind = "ema"

    def average(self, values: np.ndarray, n: int) -> np.ndarray:
        return ema(values, n)


@hookimpl
def tradebot_strategies() -> list[type[Strategy]]:
    return [SmaCross, EmaCross]
