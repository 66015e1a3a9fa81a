"""TradingService driven through a broker that fails the way real ones do, on a real database
(SQLite, and Postgres with TEST_DATABASE_URL).

The broker is the simulated exchange (its own books in the ``sim_*`` tables) behind a thin
wrapper that injects what a network does to a broker's API: the order arrives but the answer is
lost, the request never arrives, the lookup by client id fails too. The database is made to fail
in the middle of recording a fill. Each test checks what a trader cares about: exactly one
order at the exchange, nothing lost, nothing recorded twice, and an event that says why.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import event
from sqlalchemy.exc import OperationalError

from bot import formatting as fmt
from bot.bars import Timeframe
from bot.brokers.base import BrokerError
from bot.brokers.sim import SimBroker
from bot.clock import ManualClock
from bot.data.cache import HistoryCache
from bot.data.synthetic import SyntheticMarket
from bot.domain import (
    EventKind,
    OrderStatus,
    OutcomeStatus,
    Severity,
    Side,
    Signal,
    TradingState,
)
from bot.engine import Engine
from bot.lease import Lease
from bot.risk import RiskLimits
from bot.service import TradingService
from bot.strategy import Strategy, StrategyOutput
from storage import repository as repo
from storage.models import SimOrderRow

START = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)
TIMEFRAME = Timeframe.parse("1m")


class FaultyBroker:
    """The simulated exchange with switchable faults (``faults``, a set of names):

    - ``accept_then_raise``: the order reaches the exchange, the answer is lost (a read timeout);
    - ``refuse_connection``: the request never arrives (connection refused);
    - ``lookup_fails``: asking for an order by its client id fails as well;
    - ``sync_fails``: the fills and order updates cannot be fetched.
    """

    def __init__(self, inner: SimBroker) -> None:
        self.inner = inner
        self.faults: set[str] = set()
        self.submits = 0

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def submit(self, intent):
        self.submits += 1
        if "refuse_connection" in self.faults:
            raise ConnectionRefusedError("connection refused")
        order = self.inner.submit(intent)
        if "accept_then_raise" in self.faults:
            raise TimeoutError("read timed out")
        return order

    def get_order_by_client_id(self, client_order_id):
        if "lookup_fails" in self.faults:
            raise ConnectionResetError("connection reset by peer")
        return self.inner.get_order_by_client_id(client_order_id)

    def sync(self, now):
        if "sync_fails" in self.faults:
            raise ConnectionResetError("connection reset by peer")
        return self.inner.sync(now)


@pytest.fixture
def rig(db):
    clock = ManualClock(START)
    market = SyntheticMarket()
    broker = FaultyBroker(SimBroker(db, market, clock, timeframe=TIMEFRAME))
    lease = Lease(db, seconds=600)
    assert lease.try_acquire()
    service = TradingService(
        db, broker, clock, RiskLimits(), lease=lease, symbols=("AAPL",), strategies=("test",)
    )
    return service, broker, clock, db, market


def buy_signal(service: TradingService, clock: ManualClock, symbol: str = "AAPL") -> Signal:
    price = service.broker.latest_price(symbol, clock.now())
    return Signal("test", symbol, Side.BUY, clock.now() - timedelta(minutes=1), price, reason="test entry")


def exchange_orders(db) -> list[SimOrderRow]:
    from sqlmodel import select

    with db.session() as s:
        return list(s.exec(select(SimOrderRow)))


def events(service: TradingService, kind: EventKind):
    return service.recent_events(200, kind=kind)


# ---------------------------------------------------------------------- the order path


def test_an_order_that_arrived_but_whose_answer_was_lost_counts_as_placed(rig):
    service, broker, clock, db, _ = rig
    broker.faults = {"accept_then_raise"}
    signal = buy_signal(service, clock)
    outcome = service.on_signal(signal)
    assert outcome.status is OutcomeStatus.PLACED, outcome.message
    assert [o.client_order_id for o in exchange_orders(db)] == [signal.client_order_id]
    assert not events(service, EventKind.ORDER_FAILED)

    broker.faults = set()
    again = service.on_signal(signal)  # the same signal once more (a replayed cycle)
    assert again.status is OutcomeStatus.DUPLICATE
    assert broker.submits == 1 and len(exchange_orders(db)) == 1


def test_an_order_that_never_arrived_is_failed_and_may_be_sent_again(rig):
    service, broker, clock, db, _ = rig
    broker.faults = {"refuse_connection"}
    signal = buy_signal(service, clock)
    outcome = service.on_signal(signal)
    assert outcome.status is OutcomeStatus.FAILED
    assert service.order(signal.client_order_id).status is OrderStatus.SUBMIT_FAILED
    [failed] = events(service, EventKind.ORDER_FAILED)
    assert "not placed" in failed.message and failed.data["client_order_id"] == signal.client_order_id
    assert exchange_orders(db) == []

    broker.faults = set()
    retried = service.on_signal(signal)
    assert retried.status is OutcomeStatus.PLACED
    assert [o.client_order_id for o in exchange_orders(db)] == [signal.client_order_id]


def test_when_the_lookup_fails_too_the_order_stays_pending_until_reconciliation(rig):
    service, broker, clock, db, _ = rig
    broker.faults = {"accept_then_raise", "lookup_fails"}
    signal = buy_signal(service, clock)
    with pytest.raises(BrokerError, match="state unknown"):
        service.on_signal(signal)
    assert service.order(signal.client_order_id).status is OrderStatus.PENDING_SUBMIT
    assert service.on_signal(signal).status is OutcomeStatus.DUPLICATE  # never "failed", never resent
    assert broker.submits == 1

    broker.faults = set()
    service.reconcile()  # the broker is the truth: the order was placed, and it filled
    order = service.order(signal.client_order_id)
    assert order.status is OrderStatus.FILLED
    assert [p.symbol for p in service.positions()] == ["AAPL"]
    assert len(exchange_orders(db)) == 1


def test_an_order_that_never_arrived_and_could_not_be_looked_up_is_settled_by_reconciliation(rig):
    service, broker, clock, db, _ = rig
    broker.faults = {"refuse_connection", "lookup_fails"}
    signal = buy_signal(service, clock)
    with pytest.raises(BrokerError):
        service.on_signal(signal)
    broker.faults = set()
    [diff] = service.reconcile()
    assert "never reached the broker" in diff
    assert service.order(signal.client_order_id).status is OrderStatus.SUBMIT_FAILED
    assert events(service, EventKind.RECONCILE_DIFF)
    assert service.on_signal(signal).status is OutcomeStatus.PLACED  # may be sent now
    assert len(exchange_orders(db)) == 1


# ---------------------------------------------------------------------- the fill ledger


@contextmanager
def failing_once(db, prefix: str) -> Iterator[list[str]]:
    """The first statement starting with ``prefix`` fails as a full disk would; yields the list the
    failed statement lands in."""
    failures: list[str] = []

    def listener(connection, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith(prefix) and not failures:
            failures.append(statement)
            raise OperationalError(statement, parameters, Exception("disk I/O error"))

    event.listen(db.engine, "before_cursor_execute", listener)
    try:
        yield failures
    finally:
        event.remove(db.engine, "before_cursor_execute", listener)


def test_a_database_failure_mid_fill_loses_nothing_and_records_the_fill_once(rig):
    service, broker, clock, db, _ = rig
    signal = buy_signal(service, clock)
    with failing_once(db, "INSERT INTO FILLS") as failures:
        # The simulator fills at once and the service books the fill at once: that write fails.
        # The order exists at the exchange all the same: the outcome says so, not "failed".
        outcome = service.on_signal(signal)
    assert failures
    assert outcome.status is OutcomeStatus.BOOKS_BEHIND
    assert "placed at the broker; the books are behind" in outcome.message
    assert "disk I/O error" in outcome.message
    # All of the fill's bookkeeping was rolled back together: no half-recorded fill.
    assert service.positions() == []
    assert service.order(signal.client_order_id).filled_qty == 0
    assert not events(service, EventKind.ORDER_FILLED)
    assert len(exchange_orders(db)) == 1  # placed once at the exchange

    assert service.sync() == 1  # the exchange reports it again (it was never acknowledged)
    assert service.sync() == 0
    with db.session() as s:
        assert repo.count_fills(s) == 1
    [position] = service.positions()
    [theirs] = broker.positions()
    assert position.qty == pytest.approx(theirs.qty) and position.avg_price == pytest.approx(theirs.avg_price)
    assert len(events(service, EventKind.ORDER_FILLED)) == 1


def test_a_database_failure_after_the_broker_accepted_is_not_called_a_failed_order(rig):
    """The order path's own record of the accepted order fails (not the fill): still placed."""
    service, _, clock, db, _ = rig
    signal = buy_signal(service, clock)
    with failing_once(db, "UPDATE ORDERS") as failures:
        outcome = service.on_signal(signal)
    assert failures and outcome.status is OutcomeStatus.BOOKS_BEHIND
    assert len(exchange_orders(db)) == 1
    assert service.on_signal(signal).status is OutcomeStatus.DUPLICATE  # never sent twice
    assert len(exchange_orders(db)) == 1
    shown = fmt.status(service.status())  # /status says why entries wait
    assert "Books: behind the broker (DatabaseError: " in shown
    assert "no new entries until a reconciliation succeeds" in shown
    service.sync()  # reconciles: the order on record takes the exchange's word, the fill is booked
    assert service.status().books_behind is None and "Books:" not in fmt.status(service.status())
    assert service.order(signal.client_order_id).status is OrderStatus.FILLED
    assert [p.symbol for p in service.positions()] == ["AAPL"]
    assert events(service, EventKind.BOOKS_CAUGHT_UP)


# ---------------------------------------------------------------------- trading state


def test_trading_state_active_paused_halted(rig):
    service, _, clock, db, _ = rig
    assert service.status().trading_state is TradingState.ACTIVE
    service.pause(by="test")
    assert service.paused() and service.status().trading_state is TradingState.PAUSED
    service.resume(by="test")
    assert service.status().trading_state is TradingState.ACTIVE
    day_start = clock.now().replace(hour=0, minute=0)
    with db.session() as s:  # the day began 10 % richer than the account is now
        repo.add_equity_snapshot(s, day_start, 110_000.0, 110_000.0)
    status = service.status()
    assert status.trading_state is TradingState.HALTED
    # /status's today (cheap: no trades read) is /pnl's today, and the 10 % below the day's start
    assert status.today_pnl == service.pnl().today_pnl == pytest.approx(status.equity - 110_000.0)
    outcome = service.on_signal(buy_signal(service, clock))
    assert outcome.status is OutcomeStatus.BLOCKED and "daily loss" in outcome.message


# ---------------------------------------------------------------------- through the engine


class AlwaysIn(Strategy):
    name = "always_in"

    def compute(self, bars):
        return StrategyOutput(signal=np.ones(len(bars), dtype=np.int8))


def test_the_engine_names_an_order_failure_and_a_cycle_failure(rig):
    service, broker, clock, _, market = rig
    engine = Engine(service, HistoryCache(market, TIMEFRAME, 100), [AlwaysIn()], ["AAPL"], TIMEFRAME, clock)
    broker.faults = {"refuse_connection", "lookup_fails"}
    clock.advance(minutes=1)
    engine.tick()  # the order path raised: the cycle goes on and says which order
    [failed] = events(service, EventKind.ORDER_FAILED)
    assert failed.message.startswith("Order for AAPL (always_in) failed") and failed.symbol == "AAPL"

    import asyncio

    broker.faults = {"sync_fails"}
    clock.advance(minutes=1)
    assert asyncio.run(engine.run_tick()) is None  # the scheduler's job never raises
    [cycle] = events(service, EventKind.CYCLE_FAILED)
    assert "Engine cycle failed: ConnectionResetError" in cycle.message
    assert not events(service, EventKind.BROKER_ERROR)


def test_books_behind_the_broker_are_said_truthfully_and_stop_entries_until_reconciled(rig):
    """Issue: the broker accepted an entry, booking its fill failed, and the engine alerted
    "Order failed" while the next entry in the same cycle was approved against books that missed
    the position."""
    service, broker, clock, db, market = rig
    engine = Engine(
        service, HistoryCache(market, TIMEFRAME, 100), [AlwaysIn()], ["AAPL", "MSFT"], TIMEFRAME, clock
    )
    clock.advance(minutes=1)
    with failing_once(db, "INSERT INTO FILLS") as failures:
        report = engine.tick()
    assert failures
    aapl, msft = report.orders
    assert aapl.status is OutcomeStatus.BOOKS_BEHIND and aapl.symbol == "AAPL"
    assert msft.status is OutcomeStatus.BLOCKED
    assert msft.message.startswith("the books are behind the broker (DatabaseError")
    assert msft.message.endswith("no new entries until a reconciliation succeeds")
    assert not events(service, EventKind.ORDER_FAILED)  # it was not a failed order
    [alert] = events(service, EventKind.BOOKS_BEHIND)
    assert alert.severity is Severity.ERROR
    assert alert.message.startswith(
        f"Buy {aapl.order.qty:g} AAPL was placed at the broker ({aapl.order.client_order_id})"
    )
    assert "the books could not record it" in alert.message and "disk I/O error" in alert.message
    assert "No new entries until a reconciliation brings the books in line" in alert.message
    assert [o.symbol for o in exchange_orders(db)] == ["AAPL"]  # the second entry never went out

    # The end of the same cycle synced: the books are reconciled, the fill booked once.
    assert events(service, EventKind.BOOKS_CAUGHT_UP)
    [position] = service.positions()
    assert position.symbol == "AAPL" and position.qty == broker.positions()[0].qty
    # The same signal again (a retry) is the same client_order_id: not sent a second time.
    retry = _signal_of(service, "AAPL")
    assert retry.client_order_id == aapl.order.client_order_id
    assert service.on_signal(retry).status is OutcomeStatus.DUPLICATE
    assert len(exchange_orders(db)) == 1

    clock.advance(minutes=1)  # the next cycle: entries are allowed again
    report = engine.tick()
    assert {o.symbol: o.status for o in report.orders}["MSFT"] is OutcomeStatus.PLACED
    assert sorted(o.symbol for o in exchange_orders(db)) == ["AAPL", "MSFT"]


def _signal_of(service: TradingService, symbol: str) -> Signal:
    """The symbol's last recorded signal, rebuilt as the engine sent it."""
    record = next(r for r in service.recent_signals() if r.symbol == symbol)
    return Signal(record.strategy, record.symbol, Side(record.side), record.bar_time, record.price)
