"""``tradebot backtest ... --html report.html``: one self-contained, interactive file.

The dashboard's own chart component (``static/chart.js`` on Lightweight Charts) with everything
inlined: the libraries, the styles and the data. It opens from disk with no server and no
network. Price with the strategy's lines and every trade, equity and drawdown below (their time
scales move together), the metrics table, and the trade list: click a trade to zoom onto it.

Long histories are drawn with merged candles (at most ``MAX_CANDLES``: open of the first, high and
low of all, close of the last), and the equity curve with at most ``MAX_POINTS`` points; every
trade keeps its marker and its row, and the metrics come from the full-resolution run.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bot.backtest.engine import ENTRY_BAR, ENTRY_PRICE, EXIT_BAR, EXIT_PRICE, PNL, QTY, REASON, REASONS
from bot.bars import NS
from bot.metrics import drawdown_pct
from bot.web.assets import STATIC, lightweight_charts_js

if TYPE_CHECKING:
    from bot.backtest.runner import BacktestResult

MAX_CANDLES = 20_000
MAX_POINTS = 5_000


def report_data(result: BacktestResult) -> dict[str, Any]:
    """Everything the page draws, as JSON-ready lists (times in seconds since the epoch, UTC)."""
    bars, sim = result.bars, result.sim
    n = len(bars)
    step = max(1, math.ceil(n / MAX_CANDLES))
    starts = np.arange(0, n, step)
    ends = np.minimum(starts + step, n) - 1
    seconds = (bars.time // NS).astype(np.int64)
    data: dict[str, Any] = {
        "time": seconds[starts].tolist(),
        "open": bars.open[starts].tolist(),
        "high": np.maximum.reduceat(bars.high, starts).tolist(),
        "low": np.minimum.reduceat(bars.low, starts).tolist(),
        "close": bars.close[ends].tolist(),
        "lines": {
            _label(result, name): [
                None if not math.isfinite(v) else v for v in np.asarray(line, dtype=np.float64)[ends].tolist()
            ]
            for name, line in result.output.lines.items()
        },
        "merged": step,
    }
    trades, markers = [], []
    for row in sim.trades.tolist():
        entry, exit_ = int(row[ENTRY_BAR]), int(row[EXIT_BAR])
        won = row[PNL] > 0
        trades.append(
            {
                "entry_time": int(seconds[entry]),
                "exit_time": int(seconds[exit_]),
                "entry_price": row[ENTRY_PRICE],
                "exit_price": row[EXIT_PRICE],
                "qty": row[QTY],
                "pnl": row[PNL],
                "return_pct": (row[EXIT_PRICE] / row[ENTRY_PRICE] - 1) * 100 if row[ENTRY_PRICE] else 0.0,
                "exit_reason": str(REASONS[int(row[REASON])]),
            }
        )
        markers.append(
            {"time": int(seconds[starts[entry // step]]), "price": row[ENTRY_PRICE], "kind": "entry"}
        )
        markers.append(
            {
                "time": int(seconds[starts[exit_ // step]]),
                "price": row[EXIT_PRICE],
                "kind": "exit_win" if won else "exit_loss",
            }
        )
    data["markers"] = markers
    equity_points = []
    if len(sim.equity):
        equity = sim.equity
        dd = drawdown_pct(equity)
        every = max(1, math.ceil(len(equity) / MAX_POINTS))
        # Thinned, but the last point and the deepest drawdown are always kept.
        picked = np.unique(np.append(np.arange(0, len(equity), every), [len(equity) - 1, int(np.argmax(dd))]))
        equity_points = [
            {"time": int(seconds[i]), "equity": float(equity[i]), "drawdown_pct": float(dd[i])}
            for i in picked.tolist()
        ]
    stats = result.stats.as_dict()
    return {
        "title": f"{result.strategy.label} on {result.source}",
        "subtitle": f"{n:,} bars{f' of {result.timeframe_label}' if result.timeframe_label else ''}; "
        f"fill: {result.settings_line}",
        "price": data,
        "equity": equity_points,
        "trades": trades,
        "stats": {
            k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in stats.items()
        },
    }


# An extra table for the page: its title, its column names and its rows (already formatted).
Table = tuple[str, list[str], list[list[str]]]


def render_html(result: BacktestResult, tables: Sequence[Table] = ()) -> str:
    """The page; ``tables`` are drawn under the metrics (a walk-forward run's windows, say)."""
    data = report_data(result)
    payload = json.dumps(data, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    inline = {
        "lib": _script(lightweight_charts_js().read_text(encoding="utf-8")),
        "chart": _script((STATIC / "chart.js").read_text(encoding="utf-8")),
        "report": _script((STATIC / "report.js").read_text(encoding="utf-8")),
        "style": (STATIC / "style.css").read_text(encoding="utf-8"),
    }
    title = html.escape(data["title"])
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Backtest: {title}</title>
<style>{inline["style"]}</style>
</head>
<body class="report">
<main id="app">
<h1>{title}</h1>
<p class="hint">{html.escape(data["subtitle"])}</p>
<div id="metrics" class="cards"></div>
{"".join(_table(*table) for table in tables)}<h2>Price, {html.escape(", ".join(data["price"]["lines"]) or "no strategy lines")}, trades</h2>
<div id="price" class="chart"></div>
<p class="hint">Wheel or pinch to zoom, drag to pan; click a trade below to zoom onto it. Times in UTC.</p>
<h2>Equity</h2><div id="equity" class="chart medium"></div>
<h2>Drawdown %</h2><div id="drawdown" class="chart small"></div>
<h2>Trades</h2><div id="trades"></div>
</main>
<script type="application/json" id="report-data">{payload}</script>
<script>{inline["lib"]}</script>
<script>{inline["chart"]}</script>
<script>{inline["report"]}</script>
</body></html>
"""


def write_html(result: BacktestResult, path: str | Path, tables: Sequence[Table] = ()) -> None:
    Path(path).write_text(render_html(result, tables), encoding="utf-8")


def _table(title: str, header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td data-label="{html.escape(h)}">{html.escape(c)}</td>'
            for h, c in zip(header, row, strict=False)
        )
        + "</tr>"
        for row in rows
    )
    return (
        f'<h2>{html.escape(title)}</h2>\n<div class="scroll"><table class="extra"><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>\n"
    )


def _label(result: BacktestResult, line: str) -> str:
    """As the dashboard names a strategy's lines (bot/charts.py): its label, plus the line's name."""
    strategy = result.strategy
    return strategy.label if line == strategy.name else f"{strategy.label} {line}"


def _script(source: str) -> str:
    return source.replace("</script", "<\\/script")
