"""Backtesting: the strategies the bot trades, over history, with one documented fill model.

``data`` reads and checks history, ``engine`` simulates fills, ``report`` computes and
formats the statistics, ``sweep`` runs parameter grids in parallel, ``plot`` draws the
chart, ``runner`` is what ``tradebot backtest`` calls and ``cli_args`` declares its options.
``portfolio`` (with ``portfolio_run`` and ``portfolio_report``) trades many symbols from one
account with the live rules; ``walkforward`` re-optimises on rolling windows; ``overfitting``
measures how much of a sweep's best is luck (Deflated Sharpe Ratio, PBO); ``cluster`` runs
sweeps on a Dask cluster.
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
  bar after the entry bar. A bar that opens beyond a level (a gap) fills the order its open
  crosses, at that open, whatever the bar does next (one that opens above the target and then
  falls through the stop takes the target). A bar that opens between the levels and touches
  both fills the stop, at the stop (which came first inside the bar is unknown). The simulated
  exchange and the portfolio backtest follow the same rule (bot.brokers.rules.first_touch).
- Costs: --slippage moves every market fill (entries, signal exits, stops, the final close)
  against you by that fraction of the price; a take-profit is a limit order and fills at its
  price, or at a better gap open. --commission is charged on each fill's notional, on entry
  and on exit.
- A position still open after the last bar is closed at the last bar's close, with exit
  reason end_of_data.
- Times are the start times of the bars the fills happened in. The equity curve is cash
  plus the position valued at each bar's close.
"""

PORTFOLIO_RULES = """\
With --symbols, one account trades every symbol with the live bot's rules: what the engine,
the service and the simulated exchange would do with a cycle at the close of every bar
(a test replays the same bars through them and finds the same trades).
- At each bar's close: first the exchange's stops and targets (on bars that started at or
  after each entry), then the signals of the bars that just closed, symbol by symbol in the
  order given. A signal needs the strategy's warm-up bars and a bar after it.
- A buy signal while the symbol is held is ignored. Otherwise it is the service's entry: stop
  STOP_LOSS_PCT below and target TAKE_PROFIT_PCT above the signal bar's close (or the
  strategy's own stop), size by RISK_PER_TRADE_PCT on the equity and cash of that moment (whole
  shares; fractions for symbols with a slash), then every entry check: the daily loss limit
  (from the equity at 00:00 UTC), one position per symbol, MAX_OPEN_TRADES, MAX_POSITION_PCT,
  the cash, MAX_PORTFOLIO_RISK_PCT; never paused. An approved entry fills at the price then:
  the next bar's open (a bar's close when no bar follows at once). The exchange refuses a buy
  the cash cannot pay with commission.
- A sell signal sells the whole position at the price then. Stops fill at the stop, targets
  at the target; a bar that opens beyond a level fills the order its open crosses, at the open;
  a bar that opens between them and touches both fills the stop.
- --slippage makes entries, signal exits and stops worse by that fraction (the live simulator
  has none); --commission is charged on each fill's notional. --fixed-qty buys that many
  units, still through every check. --stop-loss/--take-profit must stay within the bounds
  /risk set allows.
- Positions still open at the end are closed at each symbol's last close (end_of_data). The
  equity curve has a point at every bar time of any symbol: cash plus the positions at their
  latest close.
"""
