"""The backtest chart: price with the strategy's lines and the trades, then equity and drawdown.

matplotlib (Agg backend, no display needed) is imported only here. Long series are thinned
to about ``MAX_POINTS`` points per line for drawing; markers are drawn for every trade.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bot.backtest.engine import ENTRY_BAR, ENTRY_PRICE, EXIT_BAR, EXIT_PRICE, PNL
from bot.metrics import drawdown_pct

if TYPE_CHECKING:
    from bot.backtest.runner import BacktestResult

MAX_POINTS = 20_000


def plot(result: BacktestResult, path: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bars, sim = result.bars, result.sim
    times = np.asarray(bars.time, dtype="datetime64[ns]")
    step = max(1, len(bars) // MAX_POINTS)
    fig, (ax_price, ax_equity) = plt.subplots(
        2, 1, figsize=(13, 8), sharex=True, gridspec_kw={"height_ratios": [3, 2]}, layout="constrained"
    )
    ax_price.plot(times[::step], bars.close[::step], color="#333333", linewidth=0.8, label="close")
    for name, line in result.output.lines.items():
        ax_price.plot(times[::step], line[::step], linewidth=0.9, label=name)
    if sim.n_trades:
        entries = sim.column(ENTRY_BAR).astype(np.int64)
        exits = sim.column(EXIT_BAR).astype(np.int64)
        won = sim.column(PNL) > 0
        ax_price.scatter(
            times[entries],
            sim.column(ENTRY_PRICE),
            marker="^",
            color="#1f9d55",
            s=28,
            label="entry",
            zorder=3,
        )
        ax_price.scatter(
            times[exits][won],
            sim.column(EXIT_PRICE)[won],
            marker="v",
            color="#1f6feb",
            s=28,
            label="exit (win)",
            zorder=3,
        )
        ax_price.scatter(
            times[exits][~won],
            sim.column(EXIT_PRICE)[~won],
            marker="v",
            color="#d73a49",
            s=28,
            label="exit (loss)",
            zorder=3,
        )
    s = result.stats
    ax_price.set_title(
        f"{result.strategy.label} on {result.source}: return {s.return_pct:+.2f}%, sharpe {s.sharpe:.2f}, "
        f"max drawdown {s.max_drawdown_pct:.2f}%, {s.n_trades} trades"
    )
    ax_price.set_ylabel("price")
    ax_price.legend(loc="upper left", fontsize=8)
    ax_price.grid(alpha=0.3)

    ax_equity.plot(times[::step], sim.equity[::step], color="#1f6feb", linewidth=1.0, label="equity")
    ax_equity.set_ylabel("equity")
    ax_equity.grid(alpha=0.3)
    ax_dd = ax_equity.twinx()
    dd = -drawdown_pct(sim.equity)[::step]
    ax_dd.fill_between(times[::step], dd, 0, color="#d73a49", alpha=0.25, label="drawdown")
    ax_dd.set_ylabel("drawdown %")
    ax_dd.set_ylim(min(float(dd.min()) * 1.1, -1.0) if len(dd) else -1.0, 0)
    handles = ax_equity.get_legend_handles_labels()[0] + ax_dd.get_legend_handles_labels()[0]
    ax_equity.legend(handles=handles, loc="lower left", fontsize=8)
    fig.savefig(path, dpi=110)
    plt.close(fig)
