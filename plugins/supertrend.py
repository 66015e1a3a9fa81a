"""Supertrend, exactly as TradingView's ``ta.supertrend`` computes it, and a strategy on its flips.

Direction is +1 while the trend is up (close above the line) and -1 while it is down. The
indicator is one sequential loop, defined in plain Python in ``bot.kernels`` (with the rules
spelled out there) and run in C when ``bot._speedups`` is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import numpy as np

from bot import kernels
from bot.hookspecs import hookimpl
from bot.strategy import BUY, SELL, Param, Strategy, StrategyError, StrategyOutput

if TYPE_CHECKING:
    import pandas as pd

    from bot.bars import Bars


def supertrend_arrays(
    high: np.ndarray, low: np.ndarray, close: np.ndarray, period: int = 10, multiplier: float = 3.0
) -> tuple[np.ndarray, np.ndarray]:
    """``(line, direction)`` as float64 arrays; both NaN on bars ``0 .. period-2``."""
    if int(period) != period or period < 1:
        raise StrategyError(f"supertrend period must be a whole number >= 1, got {period!r}")
    if not multiplier > 0:
        raise StrategyError(f"supertrend multiplier must be > 0, got {multiplier!r}")
    return kernels.supertrend(high, low, close, int(period), float(multiplier))


def supertrend(df: pd.DataFrame, period: int = 10, multiplier: float = 3.0) -> pd.DataFrame:
    """Columns ``supertrend`` and ``direction`` for a frame with high, low and close columns."""
    import pandas as pd

    line, direction = supertrend_arrays(df["high"], df["low"], df["close"], period, multiplier)
    return pd.DataFrame({"supertrend": line, "direction": direction}, index=df.index)


def flips(direction: np.ndarray) -> np.ndarray:
    """int8 per bar: BUY where direction turns -1 -> +1, SELL where it turns +1 -> -1, else 0."""
    signal = np.zeros(len(direction), dtype=np.int8)
    prev, cur = direction[:-1], direction[1:]
    signal[1:][(prev == -1) & (cur == 1)] = BUY
    signal[1:][(prev == 1) & (cur == -1)] = SELL
    return signal


class SupertrendStrategy(Strategy):
    name = "supertrend"
    description = "Long while Supertrend points up: buy when it turns up, sell when it turns down."
    params: ClassVar[dict[str, Param]] = {
        "period": Param(10, min=1, max=1000, help="ATR length in bars"),
        "multiplier": Param(3.0, min=0.1, max=100, help="band width in ATRs"),
    }

    @property
    def warmup(self) -> int:
        return self.period + 1

    def compute(self, bars: Bars) -> StrategyOutput:
        line, direction = supertrend_arrays(bars.high, bars.low, bars.close, self.period, self.multiplier)
        return StrategyOutput(signal=flips(direction), lines={"supertrend": line})


@hookimpl
def tradebot_strategies() -> list[type[Strategy]]:
    return [SupertrendStrategy]
