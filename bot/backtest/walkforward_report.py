"""A walk-forward run as a table for people, as JSON for programs and as a chart.

The JSON has the single backtest's keys for the stitched out-of-sample run (``trades``, the
statistics, ``equity_curve``) and ``walk_forward``: the window lengths, the ranking metric, each
window's dates, chosen parameters and in-sample and out-of-sample statistics, and the gap
between them (``summary``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from bot.backtest.engine import (
    ENTRY_BAR,
    ENTRY_PRICE,
    EXIT_BAR,
    EXIT_PRICE,
    PNL,
    QTY,
    REASON,
    REASONS,
    FillSettings,
)
from bot.backtest.overfitting import DSR_SENTENCE, PBO_SENTENCE
from bot.backtest.report import format_stats, iso_times, write_document
from bot.backtest.walkforward import WalkForward, WindowResult


def _finite(value: float | int) -> float | int | None:
    return value if not isinstance(value, float) or math.isfinite(value) else None


def _dates(wf: WalkForward, lo: int, hi: int, times: np.ndarray) -> tuple[str, str]:
    first, last = iso_times(times[[lo, hi - 1]])
    return first, last


def format_walk_forward(wf: WalkForward, full_times: np.ndarray, source: str, max_trades: int = 20) -> str:
    metric = wf.rank_by
    names = list(wf.windows[0].params) if wf.windows else []
    header = (
        "#", "in-sample", "out-of-sample", *names, f"IS {metric}", f"OOS {metric}", "change", "OOS return",
        "DSR", "PBO",
    )  # fmt: skip
    table = [header]
    for k, w in enumerate(wf.windows, 1):
        is_lo, is_hi = _dates(wf, *w.window.train, full_times)
        os_lo, os_hi = _dates(wf, *w.window.test, full_times)
        table.append(
            (
                str(k),
                f"{is_lo[:10]} .. {is_hi[:10]}",
                f"{os_lo[:10]} .. {os_hi[:10]}",
                *(f"{w.params[n]:g}" for n in names),
                _num(w.in_sample[metric]),
                _num(getattr(w.out_of_sample, metric)),
                _signed(w.degradation(metric, wf.bars_per_year)[metric]),
                f"{w.out_of_sample.return_pct:+.2f}%",
                *_measures(w),
            )
        )
    widths = [max(len(r[c]) for r in table) for c in range(len(header))]
    gap = wf.gap()
    first, last = iso_times(wf.bars.time[[0, -1]])
    efficiency = gap["efficiency_pct"]
    lines = [
        f"walk-forward on {source}: {len(wf.windows)} windows of {wf.train.label} in-sample, {wf.test.label} "
        f"out-of-sample; {wf.combinations} combinations each, best by {metric}",
        *(
            "  " + "  ".join(r[c].ljust(widths[c]) if c < 3 else r[c].rjust(widths[c]) for c in range(len(r)))
            for r in table
        ),
        "",
        f"in-sample vs out-of-sample, mean over the windows: {metric} {_num(gap[f'in_sample_{metric}'])} vs "
        f"{_num(gap[f'out_of_sample_{metric}'])} (gap {_num(gap[f'{metric}_gap'])}); annual return "
        f"{gap['in_sample_annual_return_pct']:+.2f}% vs {gap['out_of_sample_annual_return_pct']:+.2f}%"
        + (f" (efficiency {efficiency:.0f}%)" if math.isfinite(efficiency) else ""),
        *_explained(wf, gap),
        "",
        f"out-of-sample, stitched: {len(wf.bars):,} bars, {first} .. {last}",
        *format_stats(wf.stats),
    ]
    trades = wf.sim.trades
    if len(trades):
        shown = trades[-max_trades:]
        lines += [
            "",
            f"trades ({'all' if len(shown) == len(trades) else f'last {len(shown)} of {len(trades):,}'}):",
        ]
        entry_t = iso_times(wf.bars.time[shown[:, ENTRY_BAR].astype(np.int64)])
        exit_t = iso_times(wf.bars.time[shown[:, EXIT_BAR].astype(np.int64)])
        rows = [("entry time", "exit time", "entry", "exit", "qty", "pnl", "reason")]
        for i, row in enumerate(shown.tolist()):
            rows.append(
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
        w2 = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
        lines += [
            "  "
            + "  ".join(
                r[c].ljust(w2[c]) if c in (0, 1, 6) else r[c].rjust(w2[c]) for c in range(len(r))
            ).rstrip()
            for r in rows
        ]
    return "\n".join(lines)


def _measures(w: WindowResult) -> tuple[str, str]:
    """The window's DSR and PBO as table cells."""
    if w.overfitting is None:
        return ("n/a", "n/a")
    return (_num(w.overfitting.deflated.dsr), _num(w.overfitting.pbo.pbo))


def _signed(value: float) -> str:
    return "n/a" if not math.isfinite(value) else "inf" if math.isinf(value) else f"{value:+.2f}"


def _explained(wf: WalkForward, gap: dict[str, float]) -> list[str]:
    """One plain sentence for each column a reader may not know."""
    return [
        f"change: out-of-sample minus in-sample {wf.rank_by}, window by window (the price of choosing "
        "in-sample; a run that holds up keeps it near 0)",
        f"DSR, deflated Sharpe ratio of each window's choice (mean {_num(gap['mean_dsr'])}): {DSR_SENTENCE}",
        f"PBO, probability of backtest overfitting of each window's sweep (mean {_num(gap['mean_pbo'])}): "
        f"{PBO_SENTENCE}",
    ]


def _num(value: Any) -> str:
    value = float(value)
    return "inf" if math.isinf(value) else "n/a" if math.isnan(value) else f"{value:.2f}"


def to_json(wf: WalkForward, full_times: np.ndarray) -> dict[str, Any]:
    """The document without its equity curve (``write_json`` appends it)."""
    stats = {k: _finite(v) for k, v in wf.stats.as_dict().items()}
    trades = wf.sim.trades
    entry_t = iso_times(wf.bars.time[trades[:, ENTRY_BAR].astype(np.int64)])
    exit_t = iso_times(wf.bars.time[trades[:, EXIT_BAR].astype(np.int64)])
    rows = [
        {
            "entry_time": entry_t[i],
            "exit_time": exit_t[i],
            "entry_price": row[ENTRY_PRICE],
            "exit_price": row[EXIT_PRICE],
            "qty": row[QTY],
            "pnl": row[PNL],
            "exit_reason": str(REASONS[int(row[REASON])]),
        }
        for i, row in enumerate(trades.tolist())
    ]
    windows = []
    for w in wf.windows:
        is_lo, is_hi = _dates(wf, *w.window.train, full_times)
        os_lo, os_hi = _dates(wf, *w.window.test, full_times)
        windows.append(
            {
                "in_sample": {"first": is_lo, "last": is_hi, "bars": w.window.train[1] - w.window.train[0]},
                "out_of_sample": {"first": os_lo, "last": os_hi, "bars": w.window.test[1] - w.window.test[0]},
                "params": w.params,
                "in_sample_stats": {k: _finite(v) for k, v in w.in_sample.items()},
                "out_of_sample_stats": {k: _finite(v) for k, v in w.out_of_sample.as_dict().items()},
                "degradation": {
                    k: _finite(v) for k, v in w.degradation(wf.rank_by, wf.bars_per_year).items()
                },
                "overfitting": None if w.overfitting is None else w.overfitting.as_dict(),
            }
        )
    return {
        "trades": rows,
        **stats,
        "walk_forward": {
            "train": wf.train.label,
            "test": wf.test.label,
            "rank_by": wf.rank_by,
            "combinations": wf.combinations,
            "windows": windows,
            "summary": {k: _finite(v) for k, v in wf.gap().items()},
            "meaning": {
                "degradation": "out-of-sample minus in-sample, window by window: the price of choosing in-sample",
                "deflated_sharpe": f"deflated Sharpe ratio of each window's choice: {DSR_SENTENCE}",
                "pbo": f"probability of backtest overfitting of each window's sweep: {PBO_SENTENCE}",
            },
        },
    }


def write_json(wf: WalkForward, full_times: np.ndarray, path: str | Path) -> None:
    write_document(to_json(wf, full_times), wf.bars.time, wf.sim.equity, path)


def plot(wf: WalkForward, source: str, path: str | Path) -> None:
    """Price with each window's chosen lines and the trades, then the stitched equity and drawdown."""
    from bot.charts import Marker, render_backtest

    times, trades = wf.bars.time, wf.sim.trades
    markers: list[Marker] = []
    for row in trades.tolist():
        markers.append(Marker(int(times[int(row[ENTRY_BAR])]), row[ENTRY_PRICE], entry=True))
        markers.append(Marker(int(times[int(row[EXIT_BAR])]), row[EXIT_PRICE], entry=False, won=row[PNL] > 0))
    s = wf.stats
    title = (
        f"walk-forward {wf.train.label}/{wf.test.label} on {source}, {len(wf.windows)} out-of-sample windows: "
        f"return {s.return_pct:+.2f}%, sharpe {s.sharpe:.2f}, max drawdown {s.max_drawdown_pct:.2f}%, "
        f"{s.n_trades} trades"
    )
    Path(path).write_bytes(render_backtest(wf.bars, wf.lines, markers, wf.sim.equity, title))


class _PerWindow:
    """Stands for the strategy in the HTML report: its parameters change from window to window."""

    def __init__(self, label: str, name: str) -> None:
        self.label, self.name = label, name


def window_tables(wf: WalkForward, full_times: np.ndarray) -> list[tuple[str, list[str], list[list[str]]]]:
    """The windows and the in-sample vs out-of-sample summary, as rows of text (for the HTML report)."""
    metric = wf.rank_by
    names = list(wf.windows[0].params) if wf.windows else []
    rows = []
    for k, w in enumerate(wf.windows, 1):
        is_lo, is_hi = _dates(wf, *w.window.train, full_times)
        os_lo, os_hi = _dates(wf, *w.window.test, full_times)
        rows.append(
            [
                str(k),
                f"{is_lo[:16]} .. {is_hi[:16]}",
                f"{os_lo[:16]} .. {os_hi[:16]}",
                *(f"{w.params[n]:g}" for n in names),
                _num(w.in_sample[metric]),
                _num(getattr(w.out_of_sample, metric)),
                _signed(w.degradation(metric, wf.bars_per_year)[metric]),
                f"{w.out_of_sample.return_pct:+.2f}%",
                *_measures(w),
            ]
        )
    header = [
        "#",
        "in-sample",
        "out-of-sample",
        *names,
        f"in-sample {metric}",
        f"out-of-sample {metric}",
        "change",
        "return",
        "DSR",
        "PBO",
    ]
    gap = wf.gap()
    summary = [
        [
            metric,
            _num(gap[f"in_sample_{metric}"]),
            _num(gap[f"out_of_sample_{metric}"]),
            _num(gap[f"{metric}_gap"]),
        ],
        [
            "annual return %",
            _num(gap["in_sample_annual_return_pct"]),
            _num(gap["out_of_sample_annual_return_pct"]),
            _num(gap["in_sample_annual_return_pct"] - gap["out_of_sample_annual_return_pct"]),
        ],
    ]
    meanings = [[line.split(":", 1)[0], line.split(":", 1)[1].strip()] for line in _explained(wf, gap)]
    return [
        (f"Walk-forward windows ({wf.train.label} in-sample, {wf.test.label} out-of-sample)", header, rows),
        (
            "In-sample vs out-of-sample, mean over the windows",
            ["", "in-sample", "out-of-sample", "gap"],
            summary,
        ),
        ("What the columns mean", ["column", "meaning"], meanings),
    ]


def write_html(
    wf: WalkForward,
    full_times: np.ndarray,
    source: str,
    path: str | Path,
    *,
    strategy_name: str,
    settings: FillSettings,
    timeframe_label: str = "",
) -> None:
    """The dashboard's self-contained report (``bot.web.report``) for the stitched out-of-sample
    run, with the windows and the gap as tables under the metrics."""
    from bot.backtest.result import BacktestResult
    from bot.strategy import StrategyOutput
    from bot.web.report import write_html as write_page

    label = f"walk-forward {wf.train.label}/{wf.test.label} of {strategy_name} (best of {wf.combinations} by {wf.rank_by} per window)"
    output = StrategyOutput(np.zeros(len(wf.bars), dtype=np.int8), wf.lines)
    result = BacktestResult(
        _PerWindow(label, strategy_name),  # type: ignore[arg-type]
        wf.bars,
        output,
        wf.sim,
        wf.stats,
        settings,
        f"{source}, out-of-sample windows stitched",
        timeframe_label,
    )
    write_page(result, path, tables=window_tables(wf, full_times))
