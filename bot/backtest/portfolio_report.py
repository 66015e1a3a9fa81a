"""A portfolio backtest's result, as a table for people, as JSON for programs and as a chart.

The JSON has the single-symbol keys (``trades``, the statistics, ``equity_curve``), each trade
with its ``symbol``, plus ``symbols`` (trades and P&L per symbol) and ``entries`` (what became
of the buy signals: opened, blocked by which risk check, refused by the exchange, ignored).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bot import metrics
from bot.backtest.engine import REASONS
from bot.backtest.portfolio import PortfolioRun, PortfolioSettings, equity_point
from bot.backtest.report import YEAR_SECONDS, Stats, format_stats, iso_times, write_document
from bot.bars import NS, Timeframe
from bot.strategy import Strategy


@dataclass(frozen=True)
class PortfolioResult:
    strategy: Strategy
    run: PortfolioRun
    stats: Stats
    settings: PortfolioSettings
    timeframe: Timeframe
    source: str

    @property
    def rules_line(self) -> str:
        s, limits = self.settings, self.settings.limits
        sizing = (
            f"{s.fixed_qty:g} units per entry"
            if s.fixed_qty
            else f"{limits.risk_per_trade_pct:g}% risked per trade"
        )
        return (
            f"the live bot's: next bar's open, long only; stop {limits.stop_loss_pct:g}%, target "
            f"{limits.take_profit_pct:g}% from the signal's close; {sizing}, at most {limits.max_position_pct:g}% "
            f"of equity per position, {limits.max_portfolio_risk_pct:g}% portfolio risk, "
            f"{limits.max_open_trades} open trades, {limits.daily_loss_limit_pct:g}% daily loss; "
            f"commission {s.commission:g}, slippage {s.slippage:g}; cash {s.cash:,.2f}"
        )


def per_symbol(result: PortfolioResult) -> dict[str, dict[str, float | int]]:
    """Trades, total P&L and win rate of each symbol, in the order given."""
    run = result.run
    out: dict[str, dict[str, float | int]] = {}
    for k, name in enumerate(run.symbols):
        pnl = run.pnl[run.symbol == k]
        wins = int((pnl > 0).sum())
        out[name] = {
            "n_trades": len(pnl),
            "pnl": float(pnl.sum()),
            "win_rate": 100.0 * wins / len(pnl) if len(pnl) else 0.0,
        }
    return out


def entries_line(result: PortfolioResult) -> str:
    e = result.run.entries
    blocked = sum(e.blocked.values())
    kinds = ", ".join(f"{kind} {count:,}" for kind, count in sorted(e.blocked.items(), key=lambda kv: -kv[1]))
    return (
        f"buy signals: {e.signals:,}: {e.opened:,} opened, {blocked:,} blocked by risk checks"
        f"{f' ({kinds})' if kinds else ''}, {e.rejected:,} refused by the exchange (cash with commission), "
        f"{e.ignored:,} ignored (symbol already held)"
    )


def format_portfolio(result: PortfolioResult, max_trades: int = 20, max_symbols: int = 20) -> str:
    run = result.run
    first, last = iso_times(run.times[[0, -1]])
    names = run.symbols
    shown_names = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
    lines = [
        f"{result.strategy.label} on {len(names)} symbols ({shown_names}) from {result.source}: "
        f"{result.timeframe.label} bars, {first} .. {last}",
        f"rules: {result.rules_line}",
        "",
        *format_stats(result.stats),
        "",
        entries_line(result),
    ]
    table = [("symbol", "trades", "pnl", "win rate")]
    rows = sorted(per_symbol(result).items(), key=lambda kv: -float(kv[1]["pnl"]))
    for name, row in rows[:max_symbols]:
        table.append((name, f"{row['n_trades']:,}", f"{row['pnl']:+,.2f}", f"{row['win_rate']:.1f}%"))
    title = "by symbol" + (f" (best {max_symbols} of {len(rows)} by P&L)" if len(rows) > max_symbols else "")
    lines += ["", f"{title}:", *_aligned(table, left={0})]
    if run.n_trades:
        start = max(0, run.n_trades - max_trades)
        lines += [
            "",
            f"trades ({'all' if start == 0 else f'last {run.n_trades - start} of {run.n_trades:,}'}):",
        ]
        entry_t, exit_t = iso_times(run.entry_time[start:]), iso_times(run.exit_time[start:])
        trades = [("symbol", "entry time", "exit time", "entry", "exit", "qty", "pnl", "reason")]
        for j, i in enumerate(range(start, run.n_trades)):
            trades.append(
                (
                    names[int(run.symbol[i])],
                    entry_t[j],
                    exit_t[j],
                    f"{run.entry_price[i]:,.4f}",
                    f"{run.exit_price[i]:,.4f}",
                    f"{run.qty[i]:,.6g}",
                    f"{run.pnl[i]:+,.2f}",
                    str(REASONS[int(run.reason[i])]),
                )
            )
        lines += _aligned(trades, left={0, 1, 2, 7})
    return "\n".join(lines)


def _aligned(table: Sequence[tuple[str, ...]], left: set[int]) -> list[str]:
    widths = [max(len(r[c]) for r in table) for c in range(len(table[0]))]
    return [
        "  "
        + "  ".join(
            r[c].ljust(widths[c]) if c in left else r[c].rjust(widths[c]) for c in range(len(r))
        ).rstrip()
        for r in table
    ]


def trade_rows(run: PortfolioRun) -> list[dict[str, Any]]:
    entry_t, exit_t = iso_times(run.entry_time), iso_times(run.exit_time)
    return [
        {
            "symbol": run.symbols[k],
            "entry_time": entry_t[i],
            "exit_time": exit_t[i],
            "entry_price": entry_price,
            "exit_price": exit_price,
            "qty": qty,
            "pnl": pnl,
            "exit_reason": str(REASONS[reason]),
        }
        for i, (k, entry_price, exit_price, qty, pnl, reason) in enumerate(
            zip(
                run.symbol.tolist(),
                run.entry_price.tolist(),
                run.exit_price.tolist(),
                run.qty.tolist(),
                run.pnl.tolist(),
                run.reason.tolist(),
                strict=True,
            )
        )
    ]


def to_json(result: PortfolioResult) -> dict[str, Any]:
    """The document without its equity curve (``write_json`` appends it)."""
    stats: dict[str, Any] = dict(result.stats.as_dict())
    if not math.isfinite(stats["profit_factor"]):
        stats["profit_factor"] = None
    e = result.run.entries
    return {
        "trades": trade_rows(result.run),
        **stats,
        "symbols": per_symbol(result),
        "entries": {
            "signals": e.signals,
            "opened": e.opened,
            "blocked": dict(e.blocked),
            "rejected": e.rejected,
            "ignored": e.ignored,
        },
    }


def write_json(result: PortfolioResult, path: str | Path) -> None:
    write_document(to_json(result), result.run.times, result.run.equity, path)


def plot(result: PortfolioResult, path: str | Path) -> None:
    """Equity and drawdown of the account (drawn by ``bot.charts``, as /equity)."""
    from bot.charts import EquityChart, render_equity

    s = result.stats
    title = (
        f"{result.strategy.label} on {len(result.run.symbols)} symbols: return {s.return_pct:+.2f}%, "
        f"sharpe {s.sharpe:.2f}, max drawdown {s.max_drawdown_pct:.2f}%, {s.n_trades} trades"
    )
    times = np.asarray(result.run.times, dtype="datetime64[ns]")
    Path(path).write_bytes(render_equity(EquityChart(times, result.run.equity), title=title))


def portfolio_stats(run: PortfolioRun, cash: float) -> Stats:
    """The single-symbol statistics, for the account; exposure is the share of bar times with
    at least one position open."""
    equity, times = run.equity, run.times
    final = float(equity[-1]) if len(equity) else cash
    span_years = (int(times[-1]) - int(times[0])) / NS / YEAR_SECONDS if len(times) >= 2 else 0.0
    per_year = (len(times) - 1) / span_years if span_years > 0 else 252.0
    held = np.zeros(len(times) + 1)
    if run.n_trades:  # bars from the entry's to the exit's, both counted (as for one symbol)
        np.add.at(held, [equity_point(times, t) for t in run.entry_time.tolist()], 1)
        np.add.at(held, [equity_point(times, t) + 1 for t in run.exit_time.tolist()], -1)
    exposure = 100.0 * float((np.cumsum(held)[:-1] > 0).mean()) if len(times) else 0.0
    r = metrics.returns(equity)
    pnls = run.pnl.tolist()
    return Stats(
        final_equity=final,
        return_pct=(final / cash - 1.0) * 100.0,
        sharpe=metrics.sharpe_of_returns(r, per_year),
        sortino=metrics.sortino_of_returns(r, per_year),
        max_drawdown_pct=metrics.max_drawdown_pct(equity),
        win_rate=metrics.win_rate(pnls),
        profit_factor=metrics.profit_factor(pnls),
        exposure_pct=exposure,
        n_trades=run.n_trades,
    )
