"""The backtest chart: price with the strategy's lines and the trades, then equity and drawdown.

Drawn by ``bot.charts``, the same code that draws /chart and /equity in Telegram; matplotlib is
imported only when a plot is asked for.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bot.backtest.engine import ENTRY_BAR, ENTRY_PRICE, EXIT_BAR, EXIT_PRICE, PNL

if TYPE_CHECKING:
    from bot.backtest.result import BacktestResult


def plot(result: BacktestResult, path: str | Path) -> None:
    from bot.charts import Marker, render_backtest

    bars, sim = result.bars, result.sim
    markers: list[Marker] = []
    if sim.n_trades:
        times = bars.time
        for entry, entry_price, exit_, exit_price, pnl in zip(
            sim.column(ENTRY_BAR).astype(np.int64),
            sim.column(ENTRY_PRICE),
            sim.column(EXIT_BAR).astype(np.int64),
            sim.column(EXIT_PRICE),
            sim.column(PNL),
            strict=True,
        ):
            markers.append(Marker(int(times[entry]), float(entry_price), entry=True))
            markers.append(Marker(int(times[exit_]), float(exit_price), entry=False, won=bool(pnl > 0)))
    s = result.stats
    title = (
        f"{result.strategy.label} on {result.source}: return {s.return_pct:+.2f}%, sharpe {s.sharpe:.2f}, "
        f"max drawdown {s.max_drawdown_pct:.2f}%, {s.n_trades} trades"
    )
    Path(path).write_bytes(render_backtest(bars, result.output.lines, markers, sim.equity, title))
