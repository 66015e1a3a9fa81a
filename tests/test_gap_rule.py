"""One rule for a bar that opens beyond a level (issue 20 §2), the same in all three places that
fill stops and targets: the single-symbol backtest (``bot.backtest.engine``, C and Python), the
simulated exchange (``bot.brokers.sim`` through ``bot.brokers.rules.first_touch``) and the
portfolio backtest (``bot.backtest.portfolio``).

The rule: a bar that opens beyond a level fills the order its open crosses, at the open; a bar
that opens between them and touches both fills the stop (which came first inside the bar is
unknown: the conservative guess).

The case, built by hand after GOOG on 2007-10-11 with a 1 % stop and a 1.5 % target: a long
entered at 600.00 (stop 594.00, target 609.00); the next day opens at 612.00, above the target,
then falls to 590.00, through the stop. The target is taken at the open, 612.00."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from bot.backtest.engine import ENTRY_PRICE, EXIT_BAR, EXIT_PRICE, REASON, REASONS, FillSettings, simulate
from bot.backtest.portfolio import PortfolioSettings, simulate_portfolio
from bot.bars import NS, Bars, Timeframe
from bot.brokers.rules import first_touch
from bot.brokers.sim import SimBroker
from bot.clock import ManualClock
from bot.domain import ExitReason, OrderIntent, Side
from bot.risk import RiskLimits
from bot.strategy import Strategy, StrategyOutput
from storage import migrate
from storage.db import Database
from tests.replay import ReplayMarket

DAY = Timeframe.parse("1d")
T0 = int(datetime(2007, 10, 8, tzinfo=UTC).timestamp()) * NS  # a Monday
LIMITS = RiskLimits(stop_loss_pct=1.0, take_profit_pct=1.5)


def daily(rows: list[tuple[float, float, float, float]]) -> Bars:
    o, h, lo, c = (np.array(col, dtype=np.float64) for col in zip(*rows, strict=True))
    n = len(rows)
    return Bars(T0 + np.arange(n, dtype=np.int64) * 86_400 * NS, o, h, lo, c, np.full(n, 1e6))


# (open, high, low, close): a buy signal on bar 1's close fills at bar 2's open, 600.00;
# bar 3 is the case. Variants change only bar 3.
BEFORE = [(600.0, 601.0, 599.0, 600.0), (600.0, 601.0, 599.0, 600.0), (600.0, 602.0, 598.0, 600.0)]
AFTER = [(595.0, 596.0, 594.5, 595.0)]
CASES = {
    # opens above the target, then crosses the stop: the target, at the open
    "GOOG 2007-10-11: opens above the target, falls through the stop": (
        (612.0, 615.0, 590.0, 595.0), 612.0, ExitReason.TAKE_PROFIT,
    ),
    # opens below the stop, then rallies through the target: the stop, at the open
    "opens below the stop, rallies through the target": ((590.0, 615.0, 588.0, 611.0), 590.0, ExitReason.STOP_LOSS),
    # opens between them and touches both: the stop, at the stop
    "opens between, touches both": ((600.0, 612.0, 590.0, 600.0), 594.0, ExitReason.STOP_LOSS),
    # opens exactly at the target: the target, at the open (which is the target)
    "opens at the target, falls through the stop": ((609.0, 610.0, 590.0, 595.0), 609.0, ExitReason.TAKE_PROFIT),
}  # fmt: skip


def case_bars(bar: tuple[float, float, float, float]) -> Bars:
    return daily([*BEFORE, bar, *AFTER])


@pytest.mark.parametrize("impl", ["c", "python"])
@pytest.mark.parametrize("name", list(CASES))
def test_the_single_symbol_backtest(name, impl):
    bar, price, reason = CASES[name]
    bars = case_bars(bar)
    signal = np.zeros(len(bars), dtype=np.int8)
    signal[1] = 1
    settings = FillSettings(fixed_qty=10, stop_loss_pct=1.0, take_profit_pct=1.5)
    sim = simulate(bars, signal, settings, impl=impl)
    (trade,) = sim.trades.tolist()
    assert trade[ENTRY_PRICE] == 600.0 and trade[EXIT_BAR] == 3
    assert (trade[EXIT_PRICE], REASONS[int(trade[REASON])]) == (pytest.approx(price), reason)


@pytest.mark.parametrize("name", list(CASES))
def test_the_exchange_rule(name):
    bar, price, reason = CASES[name]
    bars = case_bars(bar)
    assert first_touch(bars[3:], stop=594.0, target=609.0) == (0, pytest.approx(price), reason)


@pytest.mark.parametrize("name", list(CASES))
def test_the_simulated_exchange(name, tmp_path):
    bar, price, reason = CASES[name]
    bars = case_bars(bar)
    db = Database(f"sqlite:///{tmp_path / 'sim.db'}")
    migrate.upgrade(db)
    clock = ManualClock(datetime.fromtimestamp(int(bars.time[2]) // NS, tz=UTC))  # bar 2 opens
    broker = SimBroker(db, ReplayMarket({"GOOG": bars}, DAY), clock, timeframe=DAY, starting_cash=100_000)
    entry = broker.submit(OrderIntent("goog-1", "GOOG", Side.BUY, 10, stop_loss=594.0, take_profit=609.0))
    assert entry.filled_avg_price == 600.0
    broker.acknowledge([f.fill_id for f in broker.sync(clock.now()).fills])
    clock.set(datetime.fromtimestamp(int(bars.time[4]) // NS, tz=UTC))  # bar 3 has closed
    (fill,) = broker.sync(clock.now()).fills
    assert (fill.price, fill.exit_reason) == (pytest.approx(price), reason)
    assert fill.time == datetime.fromtimestamp(int(bars.time[3]) // NS, tz=UTC)


class BuyOnBarOne(Strategy):
    name = "buy_on_bar_one"

    def compute(self, bars: Bars) -> StrategyOutput:
        signal = np.zeros(len(bars), dtype=np.int8)
        signal[1] = 1
        return StrategyOutput(signal)


@pytest.mark.parametrize("name", list(CASES))
def test_the_portfolio_backtest(name):
    bar, price, reason = CASES[name]
    bars = case_bars(bar)
    settings = PortfolioSettings(cash=100_000, limits=LIMITS, fixed_qty=10)
    run = simulate_portfolio({"GOOG": bars}, BuyOnBarOne(), DAY, settings)
    assert run.entry_price.tolist() == [600.0]  # stop 594.00 and target 609.00, from bar 1's close
    assert run.exit_time.tolist() == [int(bars.time[3])]
    assert (run.exit_price[0], REASONS[int(run.reason[0])]) == (pytest.approx(price), reason)
