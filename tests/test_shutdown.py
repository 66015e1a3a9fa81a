"""Graceful shutdown and crash recovery, with real `tradebot` processes on a SQLite file.

SIGTERM: no new orders, the running cycle finishes, nothing half-recorded, lease released, exit
within 20 s. SIGKILL at the worst moments of an order: the next start loses nothing and sends
no duplicate (deterministic client order ids, write-ahead, reconciliation).
"""

from __future__ import annotations

import signal
import sqlite3
import time
from pathlib import Path

import pytest

from tests import processes


def books(path: Path) -> dict[str, object]:
    with sqlite3.connect(path) as c:
        return {
            "orders": dict(c.execute("SELECT client_order_id, status FROM orders").fetchall()),
            "sim_orders": dict(c.execute("SELECT client_order_id, status FROM sim_orders").fetchall()),
            "fills": [r[0] for r in c.execute("SELECT fill_id FROM fills").fetchall()],
            "positions": dict(c.execute("SELECT symbol, qty FROM positions").fetchall()),
            "sim_positions": dict(c.execute("SELECT symbol, qty FROM sim_positions").fetchall()),
            "lease": c.execute("SELECT holder, renewed_at, expires_at FROM leases").fetchone(),
        }


def assert_consistent(state: dict[str, object]) -> None:
    """The bot's books and the exchange's agree; every fill once; nothing left half-recorded."""
    orders, sim_orders = state["orders"], state["sim_orders"]
    assert "pending_submit" not in orders.values(), orders
    for cid, status in sim_orders.items():
        if status == "filled":
            assert orders.get(cid) == "filled", (cid, orders.get(cid))
    fills = state["fills"]
    assert len(fills) == len(set(fills))
    assert len(fills) == sum(1 for s in sim_orders.values() if s == "filled")
    assert state["positions"] == pytest.approx(state["sim_positions"])


def test_sigterm_stops_cleanly_within_20_seconds(tmp_path):
    env = processes.environment(f"sqlite:///{tmp_path / 'tradebot.db'}")
    process = processes.start(tmp_path, "run", env, "run")
    try:
        processes.wait_for(tmp_path, "run", "order_placed", timeout=40)
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        status = process.wait(timeout=20)
        elapsed = time.monotonic() - started
    finally:
        if process.poll() is None:
            process.kill()
    log = processes.log_of(tmp_path, "run")
    assert status == 0, log[-3000:]
    assert elapsed < 20
    assert "released" in log and "stopped: tradebot stopped" in log
    state = books(tmp_path / "tradebot.db")
    _holder, renewed_at, expires_at = state["lease"]
    assert expires_at <= renewed_at  # released, not left to expire
    assert_consistent(state)


def test_sigterm_in_the_middle_of_an_order_finishes_that_order_and_sends_no_other(tmp_path):
    env = processes.environment(f"sqlite:///{tmp_path / 'tradebot.db'}", TRADEBOT_FAULT="term-during-submit")
    process = processes.start(tmp_path, "run", env, "run")
    try:
        status = process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    log = processes.log_of(tmp_path, "run")
    assert status == 0, log[-3000:]
    assert "FAULT: SIGTERM" in log
    after_signal = log[log.index("FAULT: SIGTERM") :]
    assert after_signal.count("order_placed") == 1  # the order in flight, and no other
    assert "released" in after_signal
    state = books(tmp_path / "tradebot.db")
    assert len(state["orders"]) == 1 and list(state["orders"].values()) == ["filled"]
    assert_consistent(state)


@pytest.mark.parametrize("fault", ["kill-before-submit", "kill-after-submit"])
def test_sigkill_mid_order_loses_nothing_and_duplicates_nothing(tmp_path, fault):
    db_path = tmp_path / "tradebot.db"
    env = processes.environment(f"sqlite:///{db_path}")
    process = processes.start(tmp_path, "crash", {**env, "TRADEBOT_FAULT": fault}, "run")
    assert process.wait(timeout=60) == -signal.SIGKILL, processes.log_of(tmp_path, "crash")[-3000:]

    crashed = books(db_path)
    (cid, status), *_ = crashed["orders"].items()
    assert status == "pending_submit"  # the write-ahead record survived the crash
    assert (cid in crashed["sim_orders"]) == (fault == "kill-after-submit")

    # The next start: waits out the dead holder's lease (4 s), reconciles, trades on.
    restart = processes.start(tmp_path, "restart", env, "run")
    try:
        processes.wait_for(tmp_path, "restart", "took over the trading lease", timeout=30)
        processes.wait_for(tmp_path, "restart", "tick:", timeout=30, count=5)
        restart.send_signal(signal.SIGTERM)
        assert restart.wait(timeout=20) == 0
    finally:
        if restart.poll() is None:
            restart.kill()
    log = processes.log_of(tmp_path, "restart")
    assert "took over the trading lease" in log
    state = books(db_path)
    assert_consistent(state)
    if fault == "kill-after-submit":
        # Reconciliation's sync recorded the fill the crash kept from the books.
        assert state["orders"][cid] in ("filled", "canceled")  # filled, or closed since by a stop
        assert f"sim-{cid}" in state["fills"]
    else:
        assert "never reached the broker" in log or state["orders"][cid] != "pending_submit"
        # Either left as failed, or the same signal was sent again under the same id: once.
        assert state["orders"][cid] in ("submit_failed", "filled")
    assert list(state["sim_orders"]).count(cid) <= 1
