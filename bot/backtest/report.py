"""Statistics of a simulation, as a table for people and as JSON for programs.

The statistics are pure functions of the equity curve and the trades (``bot.metrics``, the
same functions /pnl uses). Sharpe and Sortino are annualised with the number of bars per
year the data actually has: 525,600 for 24/7 one-minute crypto bars, about 98,000 for
one-minute bars of US stocks in regular hours, about 252 for daily stock bars.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bot import metrics
from bot.backtest.engine import (
    ENTRY_BAR,
    ENTRY_PRICE,
    EXIT_BAR,
    EXIT_PRICE,
    PNL,
    QTY,
    REASON,
    REASONS,
    Simulation,
)
from bot.bars import NS, Bars, Timeframe

if TYPE_CHECKING:
    from bot.backtest.runner import BacktestResult

YEAR_SECONDS = 365 * 86_400
# Metrics a sweep can rank by, and whether bigger is better.
RANKABLE = {
    "sharpe": True,
    "sortino": True,
    "return_pct": True,
    "final_equity": True,
    "profit_factor": True,
    "win_rate": True,
    "max_drawdown_pct": False,
    "exposure_pct": True,
    "n_trades": True,
}


@dataclass(frozen=True, slots=True)
class Stats:
    final_equity: float
    return_pct: float
    sharpe: float
    sortino: float
    max_drawdown_pct: float
    win_rate: float
    profit_factor: float  # inf with gains and no losses
    exposure_pct: float
    n_trades: int

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def bars_per_year(bars: Bars, timeframe: Timeframe | None = None) -> float:
    """Bars per year in this data (its count over its time span); the timeframe's 24/7 figure
    when the data is too short to tell."""
    if len(bars) >= 2 and bars.time[-1] > bars.time[0]:
        span_years = (int(bars.time[-1]) - int(bars.time[0])) / NS / YEAR_SECONDS
        return (len(bars) - 1) / span_years
    return timeframe.periods_per_year if timeframe else 252.0


def compute_stats(sim: Simulation, cash: float, periods_per_year: float) -> Stats:
    equity = sim.equity
    pnls = sim.column(PNL).tolist()
    final = float(equity[-1]) if len(equity) else cash
    # Trades never share a bar (an exit at an open needs the sell signal of a bar still held),
    # so the bars held are the sum of each trade's entry-to-exit span, inclusive.
    held = float((sim.column(EXIT_BAR) - sim.column(ENTRY_BAR) + 1).sum())
    exposure = 100.0 * held / len(equity) if len(equity) else 0.0
    r = metrics.returns(equity)
    return Stats(
        final_equity=final,
        return_pct=(final / cash - 1.0) * 100.0,
        sharpe=metrics.sharpe_of_returns(r, periods_per_year),
        sortino=metrics.sortino_of_returns(r, periods_per_year),
        max_drawdown_pct=metrics.max_drawdown_pct(equity),
        win_rate=metrics.win_rate(pnls),
        profit_factor=metrics.profit_factor(pnls),
        exposure_pct=exposure,
        n_trades=sim.n_trades,
    )


def iso_times(ns: np.ndarray) -> list[str]:
    """int64 ns -> ``2024-01-31T09:30:00Z`` strings (vectorised)."""
    stamps = np.datetime_as_string(np.asarray(ns, dtype="datetime64[ns]").astype("datetime64[s]"), unit="s")
    return [f"{s}Z" for s in stamps.tolist()]


def trade_rows(result: BacktestResult) -> list[dict[str, Any]]:
    sim, times = result.sim, result.bars.time
    entry_times = iso_times(times[sim.column(ENTRY_BAR).astype(np.int64)])
    exit_times = iso_times(times[sim.column(EXIT_BAR).astype(np.int64)])
    rows = []
    for i, row in enumerate(sim.trades.tolist()):
        rows.append(
            {
                "entry_time": entry_times[i],
                "exit_time": exit_times[i],
                "entry_price": row[ENTRY_PRICE],
                "exit_price": row[EXIT_PRICE],
                "qty": row[QTY],
                "pnl": row[PNL],
                "exit_reason": str(REASONS[int(row[REASON])]),
            }
        )
    return rows


def to_json(result: BacktestResult, *, curve: bool = True) -> dict[str, Any]:
    """Exactly the documented keys; ``profit_factor`` is null when there was no losing trade."""
    stats = result.stats.as_dict()
    if not math.isfinite(stats["profit_factor"]):
        stats["profit_factor"] = None
    doc: dict[str, Any] = {"trades": trade_rows(result), **stats}
    if curve:
        times = iso_times(result.bars.time)
        doc["equity_curve"] = [
            {"time": t, "equity": e} for t, e in zip(times, result.sim.equity.tolist(), strict=True)
        ]
    return doc


def write_json(result: BacktestResult, path: str | Path) -> None:
    """``to_json`` as a file. The equity curve (a point per bar: a million for a million bars) is
    written as text directly, which takes half the time of building and encoding its dicts."""
    head = json.dumps(to_json(result, curve=False), separators=(",", ":"))
    times = iso_times(result.bars.time)
    points = ",".join(
        [f'{{"time":"{t}","equity":{e!r}}}' for t, e in zip(times, result.sim.equity.tolist(), strict=True)]
    )
    Path(path).write_text(f'{head[:-1]},"equity_curve":[{points}]}}\n', encoding="utf-8")


def leverage(result: BacktestResult) -> tuple[float, float]:
    """``(most, lowest_cash)``: the largest entry cost (commission included) as a multiple of the
    cash there was before it, and the lowest the cash went. Above 1x the run traded on money it
    did not have (only ``--fixed-qty`` can: the risk sizing is capped by the cash)."""
    sim = result.sim
    if not sim.n_trades:
        return 0.0, result.settings.cash
    # Between trades the account is all cash, and each trade's P&L includes its commissions.
    pnl = sim.column(PNL)
    before = result.settings.cash + np.concatenate(([0.0], np.cumsum(pnl)[:-1]))
    cost = sim.column(QTY) * sim.column(ENTRY_PRICE) * (1.0 + result.settings.commission)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(before > 0, cost / before, np.inf)
    return float(ratio.max()), float((before - cost).min())


def _money(value: float) -> str:
    return f"{value:,.2f}"


def _ratio(value: float) -> str:
    return "inf" if math.isinf(value) else f"{value:.2f}"


def format_report(result: BacktestResult, max_trades: int = 20) -> str:
    """The summary and the most recent trades, as aligned plain text."""
    s, bars = result.stats, result.bars
    first, last = iso_times(bars.time[[0, -1]])
    lines = [
        f"{result.strategy.label} on {result.source}: {len(bars):,} bars"
        f"{f' of {result.timeframe_label}' if result.timeframe_label else ''}, "
        f"{first} .. {last}",
        f"fill: {result.settings_line}",
    ]
    most, lowest = leverage(result)
    if most > 1 + 1e-9:
        times = "more than all" if math.isinf(most) else f"up to {most:,.2f}x"
        lines.append(
            f"LEVERAGE USED: positions cost {times} the cash at entry; cash went down to {_money(lowest)}"
        )
    lines += [
        "",
        f"  {'final equity':<18}{_money(s.final_equity):>16}",
        f"  {'return':<18}{s.return_pct:>+15.2f}%",
        f"  {'sharpe':<18}{_ratio(s.sharpe):>16}",
        f"  {'sortino':<18}{_ratio(s.sortino):>16}",
        f"  {'max drawdown':<18}{s.max_drawdown_pct:>15.2f}%",
        f"  {'win rate':<18}{s.win_rate:>15.2f}%",
        f"  {'profit factor':<18}{_ratio(s.profit_factor):>16}",
        f"  {'exposure':<18}{s.exposure_pct:>15.2f}%",
        f"  {'trades':<18}{s.n_trades:>16,}",
    ]
    if s.n_trades:
        shown = result.sim.trades[-max_trades:]
        start = s.n_trades - len(shown)
        lines += ["", f"trades ({'all' if start == 0 else f'last {len(shown)} of {s.n_trades:,}'}):"]
        header = ("entry time", "exit time", "entry", "exit", "qty", "pnl", "reason")
        table = [header]
        entry_t = iso_times(bars.time[shown[:, ENTRY_BAR].astype(np.int64)])
        exit_t = iso_times(bars.time[shown[:, EXIT_BAR].astype(np.int64)])
        for i, row in enumerate(shown.tolist()):
            table.append(
                (
                    entry_t[i],
                    exit_t[i],
                    f"{row[ENTRY_PRICE]:,.4f}",
                    f"{row[EXIT_PRICE]:,.4f}",
                    f"{row[QTY]:,.6g}",
                    f"{row[PNL]:+,.2f}",
                    str(REASONS[int(row[REASON])]),
                )
            )
        widths = [max(len(r[c]) for r in table) for c in range(len(header))]
        for r in table:
            cells = [
                r[c].ljust(widths[c]) if c in (0, 1, 6) else r[c].rjust(widths[c]) for c in range(len(r))
            ]
            lines.append("  " + "  ".join(cells).rstrip())
    return "\n".join(lines)
