"""The ``tradebot backtest`` options. Imports nothing heavy: ``tradebot --help`` stays fast."""

from __future__ import annotations

import argparse
from typing import Any

from bot.backtest import FILL_MODEL
from bot.backtest.research_args import EPILOG as RESEARCH_EPILOG
from bot.backtest.research_args import add_research_options

DESCRIPTION = """\
Run a strategy over history with the fill model below and print the trades and statistics.
Several values for a --param run a sweep: every combination, in parallel, ranked."""

EPILOG = (
    "fill model:\n"
    + "\n".join("  " + line if line else "" for line in FILL_MODEL.strip().splitlines())
    + """

examples:
  tradebot backtest --strategy supertrend --sample msft-daily
  tradebot backtest --strategy supertrend --csv bars.csv --param period=14 --param multiplier=2.5 \\
      --commission 0.0005 --slippage 0.0002 --json out.json --plot out.png --html report.html
  tradebot backtest --strategy supertrend --symbol BTC/USD --start 2024-01-01 --end 2024-07-01 --timeframe 15m
  tradebot backtest --strategy supertrend --sample msft-daily --param period=7..14 --param multiplier=2,2.5,3 \\
      --rank-by sharpe --sweep-csv sweep.csv

Bad input (missing columns, unparsable dates, unsorted or duplicate times, empty or NaN values,
impossible prices, times outside 1678-2261, a file that is not CSV text, an output path that
cannot be written, an unknown strategy or parameter) prints one line naming the problem and
exits with status 2, before any work starts."""
    + RESEARCH_EPILOG
)


MAX_WORKERS = 64  # as TRADEBOT_RESEARCH_WORKERS: each process loads the whole history


def worker_count(text: str) -> int:
    """``--workers``: ASCII digits, 1 to ``MAX_WORKERS`` (10,000 started up to one process per task)."""
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of processes from 1 to {MAX_WORKERS}")
    return int(text)


def add_backtest_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "backtest",
        help="test a strategy on history (CSV file or downloaded bars); sweep its parameters",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--strategy", required=True, metavar="NAME", help="strategy name (see `tradebot strategies`)"
    )
    data = parser.add_argument_group("history")
    data.add_argument(
        "--csv",
        metavar="PATH",
        help="bars from a CSV file: timestamp (or date), open, high, low, close, optional volume; any letter case",
    )
    data.add_argument(
        "--sample",
        metavar="NAME",
        help="a sample dataset shipped with tradebot, read like --csv: msft-daily (Microsoft daily bars "
        "1986-2017, public domain)",
    )
    data.add_argument(
        "--symbol",
        metavar="S",
        help="download this symbol's bars (AAPL, BTC/USD) for --start..--end; with --csv, only names the data "
        "(a slash sizes in fractional units, like crypto)",
    )
    data.add_argument(
        "--start", metavar="D", help="first day or time, UTC (2024-01-31 or 2024-01-31T09:30:00Z)"
    )
    data.add_argument("--end", metavar="D", help="end (exclusive), UTC")
    data.add_argument(
        "--timeframe",
        metavar="TF",
        help="bar length: 1m, 15m, 1h, 1d... Downloads default to TRADEBOT_TIMEFRAME; a CSV's own spacing is "
        "used unless this is a multiple of it, then its bars are aggregated",
    )
    data.add_argument(
        "--source",
        choices=("auto", "alpaca", "synthetic", "store"),
        default="auto",
        help="where --symbol bars come from: alpaca (needs ALPACA_API_KEY/SECRET), synthetic (the simulator's "
        "market), store (only the local store, no network: a span it lacks is refused), auto = alpaca when "
        "keys are set, else synthetic (default)",
    )
    data.add_argument(
        "--data-dir",
        metavar="DIR",
        help="the local bar store downloads are read from and kept in (default: TRADEBOT_DATA_DIR, "
        "tradebot-data): only what it lacks is fetched",
    )
    data.add_argument(
        "--no-store",
        "--no-cache",
        dest="no_store",
        action="store_true",
        help="fetch everything again; read and write nothing in the local store",
    )

    strategy = parser.add_argument_group("strategy and fills")
    strategy.add_argument(
        "--param",
        action="append",
        metavar="K=V",
        help="strategy parameter, repeatable: period=14; a range period=7..14 (or 2..3:0.5) or a list "
        "multiplier=2,2.5,3 makes a sweep",
    )
    strategy.add_argument("--cash", type=float, default=10_000.0, help="starting cash (default: %(default)g)")
    strategy.add_argument(
        "--commission",
        type=float,
        default=0.0,
        metavar="F",
        help="fraction of each fill's notional: 0.001 = 0.1%%",
    )
    strategy.add_argument(
        "--slippage", type=float, default=0.0, metavar="F", help="fraction of price lost on each market fill"
    )
    strategy.add_argument(
        "--fixed-qty", type=float, metavar="Q", help="buy Q units per entry (default: the live risk sizing)"
    )
    strategy.add_argument(
        "--stop-loss",
        type=float,
        metavar="PCT",
        help="stop below the entry, percent (default: STOP_LOSS_PCT; 0: none)",
    )
    strategy.add_argument(
        "--take-profit",
        type=float,
        metavar="PCT",
        help="target above the entry, percent (default: TAKE_PROFIT_PCT; 0: none)",
    )
    strategy.add_argument(
        "--fractional", action="store_true", help="size in fractional units (0.000001 steps)"
    )

    out = parser.add_argument_group("output")
    out.add_argument("--json", metavar="OUT", help="write trades, statistics and the equity curve as JSON")
    out.add_argument(
        "--plot", metavar="OUT.png", help="write a chart: price, lines, entries/exits, equity, drawdown"
    )
    out.add_argument(
        "--html",
        metavar="OUT.html",
        help="write one self-contained interactive report (zoomable chart, equity, drawdown, metrics, trades) "
        "that opens from disk with no server and no network",
    )
    out.add_argument(
        "--rank-by",
        default="sharpe",
        metavar="METRIC",
        help="sweep ranking: sharpe (default), sortino, return_pct, final_equity, profit_factor, win_rate, "
        "max_drawdown_pct (smallest first), exposure_pct, n_trades",
    )
    out.add_argument("--sweep-csv", metavar="OUT", help="write every sweep result, ranked, as CSV")
    out.add_argument(
        "--top", type=int, default=10, metavar="N", help="sweep rows printed (default: %(default)s)"
    )
    out.add_argument(
        "--workers",
        type=worker_count,
        metavar="N",
        help=f"sweep processes, 1 to {MAX_WORKERS} (default: one per core)",
    )
    out.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bars on stderr (default: when stderr is a terminal)",
    )
    out.add_argument("--timing", action="store_true", help="print the elapsed time on stderr")
    add_research_options(parser)
    parser.set_defaults(func=_run)
    return parser


def _run(args: argparse.Namespace) -> int:
    from bot.backtest.runner import main

    return main(args)
