"""The ``tradebot backtest`` options for portfolios, walk-forward runs and Dask clusters.

Declared here, added to the command by ``cli_args``; imports nothing heavy.
"""

from __future__ import annotations

import argparse

from bot.backtest import PORTFOLIO_RULES

EPILOG = (
    "\n\nportfolio rules (--symbols):\n"
    + "\n".join("  " + line if line else "" for line in PORTFOLIO_RULES.strip().splitlines())
    + """

walk-forward (--walk-forward TRAIN/TEST):
  Rolling windows: the --param grid is swept on each in-sample window of TRAIN, the best by
  --rank-by trades the next TEST (signals computed from the in-sample start, so no warm-up is
  lost; flat at each window's end), then the windows move on by TEST. Reported: the stitched
  out-of-sample trades, equity and statistics, each window's choice, and the in-sample vs
  out-of-sample gap (also in --json, --plot and --html). Lengths: a number of bars, or a number
  with h, d, w, M (months) or y; each at most 250 years or 20,000,000 bars, TEST shorter than the
  whole history.

Dask cluster (--cluster tcp://HOST:8786, or TRADEBOT_DASK_SCHEDULER):
  Sweeps and walk-forward runs go to an existing Dask cluster instead of local processes
  (pip install 'tradebot[cluster]' on this machine and on every worker): the bars are sent to
  each worker once, the results are the same as a local run's, a worker that dies costs only
  its tasks. Workers with other versions or other code are reported before any work starts.
  The address is tcp://HOST:PORT or HOST:PORT; the scheduler must answer within 15 s.

size: every sweep and walk-forward run says its size and an estimate (the first backtest
  timed) on stderr before it starts; above 10,000,000,000 bars in all it needs --yes.

more examples:
  tradebot backtest --strategy supertrend --symbols AAPL,MSFT,SPY --csv data/ --json portfolio.json
  tradebot backtest --strategy supertrend --symbols BTC/USD,ETH/USD --start 2024-01-01 --end 2024-03-01
  tradebot backtest --strategy supertrend --csv bars.csv --param period=7..14 --param multiplier=2,3 \\
      --walk-forward 6M/1M --rank-by sharpe --plot wf.png
  tradebot backtest --strategy supertrend --csv bars.csv --param period=5..30 --cluster tcp://10.0.0.5:8786"""
)


def add_research_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("portfolio, walk-forward and cluster")
    group.add_argument(
        "--symbols",
        metavar="A,B,C",
        help="a portfolio: one account trades all these symbols with the live bot's rules (below); with "
        "--csv DIR, from DIR/AAPL.csv, DIR/BTC-USD.csv...; else downloaded like --symbol",
    )
    group.add_argument(
        "--walk-forward",
        metavar="TRAIN/TEST",
        help="optimise the --param grid on each TRAIN window, trade the best on the next TEST window, roll on "
        "(6M/1M, 30d/7d, 2y/6M, or bars: 50000/10000)",
    )
    group.add_argument(
        "--yes",
        action="store_true",
        help="start a sweep or walk-forward run of more than 10,000,000,000 bars in all (combinations x "
        "bars each runs over; about 25 min of one core for Supertrend); the size and an estimate are "
        "printed either way",
    )
    group.add_argument(
        "--cluster",
        metavar="ADDRESS",
        help="run sweeps and walk-forward on this Dask scheduler (tcp://HOST:8786; default: "
        "TRADEBOT_DASK_SCHEDULER, else local processes)",
    )
