"""Backtesting: the strategies the bot trades, over history, with one documented fill model.

``data`` reads and checks history, ``engine`` simulates fills, ``report`` computes and
formats the statistics, ``sweep`` runs parameter grids in parallel, ``plot`` draws the
chart, ``runner`` is what ``tradebot backtest`` calls and ``cli_args`` declares its options.
Only numpy and pyarrow are imported on the way from a CSV file to the report.
"""

FILL_MODEL = """\
- A signal is computed on a bar's close and fills at the next bar's open. A signal on the
  last bar does nothing.
- Long only, one position at a time: a buy signal while flat opens a position, a sell
  signal while long closes it; other signals are ignored.
- Size: --fixed-qty Q buys Q units (no margin check: cash may go negative, and the report's
  heading then says LEVERAGE USED). Otherwise the
  live risk sizing (bot.risk.position_size): equity x RISK_PER_TRADE_PCT / (entry - stop),
  capped at MAX_POSITION_PCT of equity and by the cash, rounded down to whole shares (to
  0.000001 units for crypto symbols like BTC/USD, or with --fractional). A size of 0: no trade.
- Stop-loss and take-profit are set from the entry fill price, STOP_LOSS_PCT below and
  TAKE_PROFIT_PCT above (--stop-loss/--take-profit override them, 0 turns one off; a
  strategy may suggest its own stop). They are checked against the high and low of every
  bar from the entry bar on; when both are touched in one bar, the stop is assumed to have
  filled first. A bar that opens beyond a level (a gap) fills at that open.
- Costs: --slippage moves every market fill (entries, signal exits, stops, the final close)
  against you by that fraction of the price; a take-profit is a limit order and fills at its
  price, or at a better gap open. --commission is charged on each fill's notional, on entry
  and on exit.
- A position still open after the last bar is closed at the last bar's close, with exit
  reason end_of_data.
- Times are the start times of the bars the fills happened in. The equity curve is cash
  plus the position valued at each bar's close.
"""
