"""One trading instance per database: the lease, the service's gate, `tradebot tick`, two real `tradebot run`s."""

from __future__ import annotations

import signal
import sqlite3
import threading
import time
from datetime import UTC, datetime

from sqlalchemy import text

from bot.brokers.sim import SimBroker
from bot.clock import ManualClock
from bot.commands import Caller
from bot.config import Settings
from bot.domain import Side, TradingState
from bot.lease import Lease
from storage import migrate
from storage.db import Database
from tests import processes

START = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)


def expire(db: Database) -> None:
    """As if the holder had stopped renewing long ago."""
    with db.engine.begin() as connection:
        connection.execute(
            text("UPDATE leases SET renewed_at = renewed_at - 3600, expires_at = expires_at - 3600")
        )


def test_one_holder_at_a_time(db):
    first, second = Lease(db, seconds=30), Lease(db, seconds=30)
    assert first.try_acquire()
    assert first.held
    assert not second.try_acquire()
    assert not second.held
    assert second.other is not None and second.other.holder == first.holder
    assert first.holder in second.refusal("order")
    assert second.refusal("books") is not None
    assert first.refusal("order") is None  # renews in the database first
    assert first.try_acquire()  # taking it again is renewing it


def test_renewal_keeps_it_and_only_the_holder_can_renew(db):
    first, second = Lease(db, seconds=30), Lease(db, seconds=30)
    assert first.try_acquire()
    before = first.info()
    assert first.renew()
    assert first.info().expires_at >= before.expires_at
    assert not second.renew()  # never held it


def test_an_expired_lease_is_taken_over_and_the_old_holder_finds_out(db):
    first, second = Lease(db, seconds=30), Lease(db, seconds=30)
    assert first.try_acquire()
    expire(db)
    assert second.try_acquire()
    assert not first.renew()
    assert first.lost and not first.held
    assert "took over" in first.refusal("order")
    assert "took over" in first.describe()


def test_release_lets_the_next_one_in_at_once(db):
    first, second = Lease(db, seconds=30), Lease(db, seconds=30)
    assert first.try_acquire()
    first.release()
    assert not first.held
    assert second.try_acquire()
    assert "free" not in second.info().describe()


def test_a_released_lease_is_told_from_one_left_to_expire_by_a_crash(db):
    released, crashed = Lease(db, seconds=30), Lease(db, seconds=30)
    assert released.try_acquire()
    released.release()
    assert released.info().released
    assert crashed.try_acquire()
    expire(db)  # its holder never released it: the row simply runs out
    info = crashed.info()
    assert info.expired and not info.released


def test_a_holder_that_cannot_renew_stops_trusting_its_lease(db):
    now = [1000.0]
    lease = Lease(db, seconds=3, monotonic=lambda: now[0])  # trusted for 3 s less the margin: 2 s
    assert lease.try_acquire()
    now[0] += 1.9
    assert lease.held and lease.refusal("books") is None
    now[0] += 0.2  # no renewal for 2.1 s (the database unreachable, the process stalled)
    assert not lease.held
    assert lease.refusal("books") is not None
    assert lease.renew() and lease.held  # renewing succeeds again: trusted from then on


def test_racing_processes_get_exactly_one_lease(storage_url):
    migrate.upgrade(Database(storage_url))
    databases = [Database(storage_url) for _ in range(6)]
    leases = [Lease(d, seconds=30) for d in databases]
    barrier = threading.Barrier(len(leases))
    results: list[bool] = []

    def contend(lease: Lease) -> None:
        barrier.wait()
        results.append(lease.try_acquire())

    threads = [threading.Thread(target=contend, args=(lease,)) for lease in leases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for d in databases:
        d.dispose()
    assert sorted(results) == [False] * 5 + [True]


def test_draining_blocks_new_orders_but_not_the_books(db):
    lease = Lease(db, seconds=30)
    assert lease.try_acquire()
    lease.draining = True
    assert "shutting down" in lease.refusal("order")
    assert lease.refusal("books") is None


def test_the_service_sends_nothing_without_the_lease(storage_url):
    from bot.app import build_app

    settings = Settings.from_mapping({"DATABASE_URL": storage_url, "TRADEBOT_SYMBOLS": "AAPL"})
    clock = ManualClock(START)
    app = build_app(settings, accelerate=False, clock=clock)
    holder = Lease(app.db, seconds=30)
    assert holder.try_acquire()  # another process trades
    assert not app.lease.try_acquire()

    outcome = app.service.place_manual("AAPL", Side.BUY, 1, request_id="m1")
    assert outcome.status == "blocked"
    assert "standby" in outcome.message and holder.holder in outcome.message
    assert app.service.order(outcome.order.client_order_id if outcome.order else "") is None
    assert app.service.reconcile() == []
    assert isinstance(app.broker, SimBroker) and app.broker.open_orders() == []
    assert "standby" in app.service.status().instance
    assert app.service.status().trading_state is TradingState.STANDBY
    assert "State: standby" in app.router.handle("/status", Caller("console")).text

    holder.release()
    assert app.lease.try_acquire()
    outcome = app.service.place_manual("AAPL", Side.BUY, 1, request_id="m2")
    assert outcome.status == "filled", outcome.message
    assert "active" in app.service.status().instance
    assert app.service.status().trading_state is TradingState.ACTIVE
    app.db.dispose()


def test_tick_does_nothing_while_another_process_holds_the_lease(storage_url, tmp_path):
    db = Database(storage_url)
    migrate.upgrade(db)
    holder = Lease(db, seconds=30)
    assert holder.try_acquire()
    env = processes.environment(storage_url)

    status = processes.run(tmp_path, "tick1", env, "tick")
    assert status == 75, processes.log_of(tmp_path, "tick1")
    said = processes.output_of(tmp_path, "tick1")
    assert "Tick skipped, nothing done" in said and holder.holder in said
    with db.engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM sim_orders")).scalar_one() == 0
        assert connection.execute(text("SELECT count(*) FROM equity_snapshots")).scalar_one() == 0

    holder.release()
    status = processes.run(tmp_path, "tick2", env, "tick")
    assert status == 0, processes.log_of(tmp_path, "tick2")
    assert "Cycle at" in processes.output_of(tmp_path, "tick2")
    assert holder.info().expired  # the tick released it when done
    db.dispose()


def test_two_real_processes_only_one_trades_and_the_second_takes_over(tmp_path):
    """Two `tradebot run` on one SQLite file: B waits while A trades; SIGKILL A; B takes over."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    env = processes.environment(url)
    a = processes.start(tmp_path, "a", env, "run")
    b = None
    try:
        processes.wait_for(tmp_path, "a", "order_placed", timeout=40)
        b = processes.start(tmp_path, "b", env, "run")
        processes.wait_for(tmp_path, "b", "standby:", timeout=30)
        processes.wait_for(tmp_path, "a", "order_placed", timeout=30, count=3)  # A keeps trading
        log_b = processes.log_of(tmp_path, "b")
        assert "order_placed" not in log_b and "tick:" not in log_b, log_b

        a.send_signal(signal.SIGKILL)
        a.wait(timeout=10)
        killed_at = time.monotonic()
        processes.wait_for(tmp_path, "b", "took over the trading lease", timeout=20)
        took_over_in = time.monotonic() - killed_at
        processes.wait_for(tmp_path, "b", "order_placed", timeout=40)
        b.send_signal(signal.SIGTERM)
        assert b.wait(timeout=20) == 0
    finally:
        for process in (a, b):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()

    log_a, log_b = processes.log_of(tmp_path, "a"), processes.log_of(tmp_path, "b")
    standby, takeover = log_b.index("standby:"), log_b.index("took over the trading lease")
    assert "order_placed" not in log_b[standby:takeover] and "tick:" not in log_b[standby:takeover]
    assert took_over_in < 4 + 5  # lease (4 s) + one poll
    with sqlite3.connect(tmp_path / "shared.db") as connection:
        # Every order the exchange saw is on record once, whichever process sent it.
        ours = dict(connection.execute("SELECT client_order_id, status FROM orders").fetchall())
        theirs = dict(connection.execute("SELECT client_order_id, status FROM sim_orders").fetchall())
        assert set(ours) <= set(theirs) | {c for c, s in ours.items() if s in ("submit_failed", "rejected")}
        sent_by_a = log_a.count("order_placed")
        sent_by_b = log_b.count("order_placed")
        entries_and_exits = connection.execute(
            "SELECT count(*) FROM sim_orders WHERE client_order_id NOT LIKE '%-sl%' AND client_order_id NOT LIKE '%-tp%'"
        ).fetchone()[0]
        assert sent_by_a + sent_by_b == entries_and_exits
        assert (
            connection.execute("SELECT count(*) FROM orders WHERE status = 'pending_submit'").fetchone()[0]
            == 0
        )
