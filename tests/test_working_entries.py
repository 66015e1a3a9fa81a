"""An entry order the broker is still working on counts toward the risk limits as if it had filled.

The simulated exchange fills at most ``max_fill_qty`` of an order per bar (a thin market), so an
entry stays working with most of it unfilled; before, the next entry was judged as if that rest
did not exist: its risk to the stop and the cash it takes were missing from the checks.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from bot.bars import NS, Bars, Timeframe
from bot.brokers.sim import SimBroker
from bot.clock import ManualClock
from bot.domain import EventKind, OrderStatus, OutcomeStatus, Side, Signal
from bot.lease import Lease
from bot.risk import RiskLimits
from bot.service import TradingService
from storage.db import Database
from storage.revisions import ensure_newest
from tests.replay import ReplayMarket

MINUTE = Timeframe(60)
T0 = datetime(2024, 1, 2, 15, 0, tzinfo=UTC)


def flat(price: float, n: int = 30) -> Bars:
    close = np.full(n, price)
    times = int(T0.timestamp()) * NS + np.arange(n, dtype=np.int64) * 60 * NS
    return Bars(times, close.copy(), close * 1.001, close * 0.999, close, np.ones(n))


def thin_market(tmp_path, limits: RiskLimits) -> tuple[TradingService, ManualClock]:
    """AAA at 50 and BBB at 40 on an exchange that fills 10 units of an order per bar."""
    db = Database(f"sqlite:///{tmp_path / 'tradebot.db'}")
    ensure_newest(db)
    clock = ManualClock(T0 + timedelta(minutes=1))
    market = ReplayMarket({"AAA": flat(50.0), "BBB": flat(40.0)}, MINUTE)
    broker = SimBroker(db, market, clock, timeframe=MINUTE, starting_cash=10_000, max_fill_qty=10)
    lease = Lease(db, seconds=600)
    assert lease.try_acquire()
    service = TradingService(db, broker, clock, limits, lease=lease, symbols=("AAA", "BBB"))
    service.sync()
    return service, clock


def buy(symbol: str, clock: ManualClock, price: float) -> Signal:
    return Signal("t", symbol, Side.BUY, clock.now() - timedelta(minutes=1), price)


def test_a_working_entry_counts_toward_the_portfolio_risk_limit(tmp_path):
    # Each entry is sized to 40 units of AAA (20 % of 10,000) or 50 of BBB, 2 % above the stop:
    # 40 and 40 at risk. 0.8 % together, over the 0.6 % limit; the 10 AAA filled so far alone
    # (10 at risk) would let BBB through.
    service, clock = thin_market(tmp_path, RiskLimits(max_portfolio_risk_pct=0.6))
    first = service.on_signal(buy("AAA", clock, 50.0))
    assert first.status is OutcomeStatus.PLACED and first.order.qty == 40
    service.sync()
    order = service.order(first.order.client_order_id)
    assert (order.status, order.filled_qty) == (OrderStatus.PARTIALLY_FILLED, 10)
    assert [(p.symbol, p.qty) for p in service.positions()] == [("AAA", 10)]

    second = service.on_signal(buy("BBB", clock, 40.0))
    assert second.status is OutcomeStatus.BLOCKED
    assert second.message == (
        "portfolio risk would be 0.80% of equity if every stop were hit "
        "(working entry orders included) (limit 0.6%)"
    )
    [blocked] = service.recent_events(5, kind=EventKind.RISK_BLOCKED)
    assert blocked.symbol == "BBB" and "working entry orders included" in blocked.message
    assert service.risk_view().portfolio_risk_pct == pytest.approx(
        0.4
    )  # 10 filled + 30 working, 1 each to the stop

    for _ in range(3):  # the rest fills over the next bars: the same risk, now as a position
        clock.advance(minutes=1)
        service.sync()
    assert service.order(first.order.client_order_id).status is OrderStatus.FILLED
    again = service.on_signal(buy("BBB", clock, 40.0))
    assert again.status is OutcomeStatus.BLOCKED and again.message.startswith("portfolio risk would be 0.80%")


def test_a_working_entry_holds_its_cash_back_from_the_next_entry(tmp_path):
    # AAA: 120 units (60 % of 10,000 = 6,000), 10 fill at once; 110 x 50 = 5,500 still to pay.
    # The account shows 9,500 cash, but only 4,000 of it is free.
    service, clock = thin_market(tmp_path, RiskLimits(max_position_pct=60.0, risk_per_trade_pct=5.0))
    first = service.on_signal(buy("AAA", clock, 50.0))
    assert first.status is OutcomeStatus.PLACED and first.order.qty == 120
    service.sync()
    assert service.broker.account().cash == 9_500

    refusal = service.preview_manual("BBB", Side.BUY, 120, "msg-1")  # 4,800: asked before confirming
    assert refusal is not None and refusal.status is OutcomeStatus.BLOCKED
    assert refusal.message == (
        "not enough cash: 4,800.00 needed, 4,000.00 available "
        "(5,500.00 of the cash is held for working entry orders)"
    )
    placed = service.place_manual("BBB", Side.BUY, 120, "msg-1", by="ann")  # confirmed: checked again
    assert placed.status is OutcomeStatus.BLOCKED and placed.message == refusal.message
    assert [p.symbol for p in service.positions()] == ["AAA"]

    sized = service.on_signal(buy("BBB", clock, 40.0))  # a strategy entry is sized to the free cash
    assert sized.status is OutcomeStatus.PLACED and sized.order.qty == 100  # 4,000 / 40
