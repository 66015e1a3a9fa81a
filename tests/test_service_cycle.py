"""What one engine cycle on the simulated exchange must get right for the risk checks to hold:
an entry filled within the cycle counts at once, and the daily loss limit counts from the equity
at the day's first cycle. (Both were found by ``tests/test_portfolio_parity.py``.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from bot.bars import NS, Bars, Timeframe
from bot.brokers.sim import SimBroker
from bot.clock import ManualClock
from bot.domain import OrderStatus, Side, Signal
from bot.lease import Lease
from bot.risk import RiskLimits
from bot.service import TradingService
from storage.db import Database
from storage.revisions import ensure_newest
from tests.replay import ReplayMarket

MINUTE = Timeframe(60)
T0 = datetime(2024, 1, 1, 23, 50, tzinfo=UTC)


def flat_bars(price: float, n: int = 30, drop_at: int | None = None) -> Bars:
    close = np.full(n, price)
    if drop_at is not None:
        close[drop_at:] = price * 0.9
    times = int(T0.timestamp()) * NS + np.arange(n, dtype=np.int64) * 60 * NS
    return Bars(times, close.copy(), close * 1.001, close * 0.999, close, np.ones(n))


def make_service(tmp_path, bars: dict[str, Bars], limits: RiskLimits) -> tuple[TradingService, ManualClock]:
    db = Database(f"sqlite:///{tmp_path / 'tradebot.db'}")
    ensure_newest(db)
    clock = ManualClock(T0 + timedelta(minutes=1))
    broker = SimBroker(db, ReplayMarket(bars, MINUTE), clock, timeframe=MINUTE, starting_cash=10_000)
    lease = Lease(db, seconds=600)  # the trading lease, held as by the active instance
    assert lease.try_acquire()
    return TradingService(db, broker, clock, limits, lease=lease), clock


def buy(symbol: str, clock: ManualClock, price: float, stop: float | None = None) -> Signal:
    return Signal("t", symbol, Side.BUY, clock.now() - timedelta(minutes=1), price, stop_loss=stop)


def test_an_entry_filled_in_this_cycle_counts_for_the_next_signal(tmp_path):
    bars = {"AAA": flat_bars(50.0), "BBB": flat_bars(40.0)}
    service, clock = make_service(tmp_path, bars, RiskLimits(max_open_trades=1))
    service.sync()
    first = service.on_signal(buy("AAA", clock, 50.0))
    second = service.on_signal(buy("BBB", clock, 40.0))  # same cycle, no sync in between
    assert first.status == "placed" and first.order.status is OrderStatus.FILLED
    assert second.status == "blocked" and "max open trades" in second.message
    assert [p.symbol for p in service.positions()] == ["AAA"]


def test_the_daily_loss_limit_counts_from_the_equity_at_the_days_first_cycle(tmp_path):
    # AAA falls 10 % at 23:58, two minutes before midnight, above its stop at 40: 20 shares sized
    # to risk 2 % down to the stop lose 100, 1 % of the equity.
    bars = {"AAA": flat_bars(50.0, drop_at=8), "BBB": flat_bars(40.0)}
    service, clock = make_service(tmp_path, bars, RiskLimits(daily_loss_limit_pct=0.5))
    service.sync()
    entry = service.on_signal(buy("AAA", clock, 50.0, stop=40.0))
    assert entry.order.status is OrderStatus.FILLED and entry.order.qty == 20
    for _ in range(10):  # one cycle a minute until 00:01
        clock.advance(minutes=1)
        service.sync()
        service.snapshot_equity()
    assert clock.now() == datetime(2024, 1, 2, 0, 1, tzinfo=UTC)
    assert service.positions()[0].market_price == 45.0
    # The fall came before 00:00: today's loss is nil, so the entry is allowed (counting from the
    # snapshot taken at 23:56 would call it a 1 % loss and block it).
    outcome = service.on_signal(buy("BBB", clock, 40.0))
    assert outcome.status == "placed", outcome.message
    assert service.risk_view().day_loss_pct == pytest.approx(0.0, abs=1e-9)
