"""The repository and the whole bot on each database under test: SQLite always, Postgres with TEST_DATABASE_URL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from bot.app import build_app
from bot.clock import ManualClock
from bot.config import Settings, database_url
from bot.domain import Event, EventKind, Fill, Order, OrderStatus, Position, Severity, Side, Signal, Trade
from storage import repository as repo
from storage.db import DatabaseError
from tests.helpers import take_lease

T0 = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)


def test_heroku_urls_become_psycopg3_urls():
    assert database_url("postgres://u:p@h:5432/d") == "postgresql+psycopg://u:p@h:5432/d"
    assert database_url("postgresql://u@h/d?sslmode=require") == "postgresql+psycopg://u@h/d?sslmode=require"
    assert database_url("sqlite:///x.db") == "sqlite:///x.db"


def test_orders_round_trip_and_update_in_place(db):
    order = Order("tb-1", "AAPL", Side.BUY, 10, OrderStatus.PENDING_SUBMIT, stop_loss=95.0, created_at=T0)
    with db.session() as s:
        repo.save_order(s, order, T0)
    with db.session() as s:
        repo.save_order(s, Order("tb-1", "AAPL", Side.BUY, 10, OrderStatus.FILLED, filled_qty=10), T0)
    with db.session() as s:
        got = repo.get_order(s, "tb-1")
        assert got.status is OrderStatus.FILLED and got.filled_qty == 10
        assert got.created_at == T0 and got.created_at.tzinfo is not None
        assert repo.list_orders(s, open_only=True) == []
        assert [o.client_order_id for o in repo.list_orders(s)] == ["tb-1"]


def test_a_fill_is_recorded_once(db):
    fill = Fill("f-1", "tb-1", "AAPL", Side.BUY, 10, 100.0, T0)
    with db.session() as s:
        repo.add_fill(s, fill)
    with db.session() as s:
        assert repo.has_fill(s, "f-1") and repo.count_fills(s) == 1
    with pytest.raises(DatabaseError), db.session() as s:  # the unique key is the last line of defence
        repo.add_fill(s, fill)
    with db.session() as s:
        assert repo.count_fills(s) == 1


def test_positions_trades_equity_settings_and_events(db):
    with db.session() as s:
        repo.save_position(s, Position("BTC/USD", 0.5, 60_000.0, opened_at=T0), commission=1.5)
        repo.mark_prices(s, {"BTC/USD": 61_000.0, "ETH/USD": 3_000.0})  # no ETH position: left alone
        for i in range(3):
            exit_time = T0 + timedelta(minutes=i)
            repo.add_trade(s, Trade("AAPL", "st", 1, T0, 100.0, exit_time, 101.0 + i, 1.0 + i, "signal"))
            repo.add_equity_snapshot(s, T0 + timedelta(hours=i), 100_000 + i, 50_000)
        repo.set_setting(s, "risk_overrides", {"max_open_trades": 3.0})
        for i in range(3):
            repo.add_event(s, Event(EventKind.INFO, f"event {i}", T0, Severity.INFO, data={"i": i}))
    with db.session() as s:
        position = repo.get_position(s, "BTC/USD")
        assert position.market_price == 61_000.0 and position.opened_at == T0
        assert repo.get_position(s, "ETH/USD") is None
        assert repo.position_commission(s, "BTC/USD") == 1.5
        assert [t.pnl for t in repo.list_trades(s)] == [3.0, 2.0, 1.0]  # newest first
        assert len(repo.list_trades(s, since=T0 + timedelta(minutes=1))) == 2
        assert [e for _, e in repo.equity_curve(s)] == [100_000, 100_001, 100_002]
        assert repo.last_equity_before(s, T0 + timedelta(hours=1)) == 100_000
        assert repo.first_equity_since(s, T0 + timedelta(minutes=1)) == 100_001
        assert repo.get_setting(s, "risk_overrides") == {"max_open_trades": 3.0}
        first, *rest = repo.events_after(s, 0)
        assert [e.message for e in repo.events_after(s, first.id)] == ["event 1", "event 2"]
        assert rest[-1].data == {"i": 2}
        assert repo.count_events(s, EventKind.INFO, T0) == 3
        repo.delete_position(s, "BTC/USD")
    with db.session() as s:
        assert repo.list_positions(s) == []


def test_times_come_back_as_the_same_instant_in_utc(db):
    tokyo = datetime(2026, 3, 2, 23, 30, tzinfo=timezone(timedelta(hours=9)))
    with db.session() as s:
        repo.add_signal(s, Signal("st", "AAPL", Side.BUY, tokyo, 100.0), "placed", tokyo)
        repo.add_equity_snapshot(s, tokyo, 1.0, 1.0)
    with db.session() as s:
        ((when, _),) = repo.equity_curve(s)
    assert when == tokyo and when.utcoffset() == timedelta(0)


def test_the_bot_trades_for_hours_on_this_database_and_its_books_agree(storage_url):
    settings = Settings.from_mapping(
        {"DATABASE_URL": storage_url, "TRADEBOT_SYMBOLS": "AAPL,BTC/USD,ETH/USD"}
    )
    clock = ManualClock(T0)
    app = take_lease(build_app(settings, accelerate=False, clock=clock))
    for _ in range(240):
        clock.advance(minutes=1)
        app.engine.tick()
    app.service.reconcile()
    service = app.service
    assert service.trades(limit=1000), "four hours of 1m bars on three symbols should trade"
    ours = {p.symbol: p.qty for p in service.positions()}
    theirs = {p.symbol: p.qty for p in app.broker.positions()}
    assert ours == pytest.approx(theirs)
    assert not [o for o in service.orders(open_only=True) if o.status is OrderStatus.PENDING_SUBMIT]
    app.db.dispose()
