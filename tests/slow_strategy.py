"""A strategy that takes a known time per backtest, for the test that kills a Dask worker in the
middle of a sweep: the sweep must last long enough for the kill to land while work is running."""

from __future__ import annotations

import time

from bot.bars import Bars
from bot.strategy import StrategyOutput
from plugins.supertrend import SupertrendStrategy

SECONDS = 0.05


class SlowSupertrend(SupertrendStrategy):
    name = "slow_supertrend"

    def compute(self, bars: Bars) -> StrategyOutput:
        time.sleep(SECONDS)  # stands for a heavier indicator; the result is Supertrend's
        return super().compute(bars)
