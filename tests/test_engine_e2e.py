"""The whole core on the embedded default: synthetic market, simulated exchange, a real SQLite file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from bot.clock import ManualClock
from bot.commands import Caller
from bot.domain import EventKind, OutcomeStatus
from bot.service import TradingService
from tests.helpers import make_app

CYCLES = 300


def books_agree(service: TradingService) -> None:
    """The service's records and the exchange's own books tell the same story."""
    account = service.broker.account()
    ours = {p.symbol: p for p in service.positions()}
    theirs = {p.symbol: p for p in service.broker.positions()}
    assert set(ours) == set(theirs)
    for symbol, position in ours.items():
        assert position.qty == pytest.approx(theirs[symbol].qty)
        assert position.avg_price == pytest.approx(theirs[symbol].avg_price)
    # equity = cash + positions at market
    marked = sum(p.qty * p.market_price for p in theirs.values())
    assert account.equity == pytest.approx(account.cash + marked)
    # starting cash + realized P&L + unrealized P&L = equity (no commission configured)
    realized = sum(t.pnl for t in service.trades(limit=10_000))
    unrealized = sum((p.market_price - p.avg_price) * p.qty for p in theirs.values())
    assert 100_000 + realized + unrealized == pytest.approx(account.equity, abs=1e-6)


def copy_database(source: Path, target: Path) -> Path:
    """A consistent copy of a live SQLite database (WAL included), through SQLite's backup API."""
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    return target


@pytest.fixture(scope="module")
def traded(tmp_path_factory):
    """Run a few hundred one-minute cycles once; the tests below only read the result. A test that
    changes anything restarts the bot on a copy of the database (``restart_on_a_copy``), so the
    tests pass in any order."""
    db_path = tmp_path_factory.mktemp("e2e") / "tradebot.db"
    app, clock = make_app(db_path)
    reports = []
    for _ in range(CYCLES):
        clock.advance(minutes=1)
        reports.append(app.engine.tick())
    return app, clock, db_path, reports


def test_it_trades_and_records_everything(traded):
    app, _clock, db_path, reports = traded
    service = app.service
    trades = service.trades(limit=10_000)
    assert sum(r.signals for r in reports) > 5
    assert len(trades) >= 3, "a few hundred cycles on five symbols should close trades"
    with sqlite3.connect(db_path) as con:
        fills = con.execute("select count(*) from fills").fetchone()[0]
        orders = con.execute("select count(*) from orders").fetchone()[0]
        snapshots = con.execute("select count(*) from equity_snapshots").fetchone()[0]
        ids = [row[0] for row in con.execute("select client_order_id from orders")]
        mode = con.execute("pragma journal_mode").fetchone()[0]
    assert mode == "wal"
    assert fills >= 2 * len(trades)
    assert orders >= fills
    assert len(ids) == len(set(ids))
    assert snapshots >= CYCLES // 5 - 1  # one every 5 minutes at least
    exit_reasons = {t.exit_reason for t in trades}
    assert exit_reasons <= {"signal", "stop_loss", "take_profit"}
    books_agree(service)


def test_every_entry_has_protection_and_respects_the_position_cap(traded):
    app, *_ = traded
    for order in app.service.orders(open_only=False, limit=1000):
        if order.side.value == "buy" and order.strategy != "manual":
            assert order.stop_loss is not None and order.take_profit is not None
            assert order.stop_loss < order.filled_avg_price < order.take_profit
            # 20% of ~100k, with some slack for equity drift
            assert order.qty * order.filled_avg_price <= 0.2 * 110_000


def restart_on_a_copy(traded, tmp_path: Path):
    """The traded bot restarted (a new process: new app, empty caches) on a copy of its database."""
    _app, clock, db_path, _ = traded
    copy = copy_database(db_path, tmp_path / "copy.db")
    return make_app(copy, clock=ManualClock(clock.now()))


def test_rerunning_a_cycle_that_signalled_places_no_duplicate(tmp_path):
    app, clock = make_app(tmp_path / "t.db")
    for _ in range(200):  # run until a cycle places an order
        clock.advance(minutes=1)
        report = app.engine.tick()
        if any(o.status is OutcomeStatus.PLACED or o.status is OutcomeStatus.FILLED for o in report.orders):
            break
    else:
        pytest.fail("no cycle placed an order in 200 minutes")
    placed = [o.order.client_order_id for o in report.orders if o.order is not None]
    before = app.service.orders(open_only=False, limit=10_000)
    at_exchange = len(app.broker.positions()), app.broker.account().cash

    # A fresh process (new app, empty caches) running the cycle of the same minute again.
    again, _ = make_app(tmp_path / "t.db", clock=clock)
    replay = again.engine.tick()
    assert replay.signals == report.signals > 0  # the same signals came again...
    assert {o.status for o in replay.orders} == {OutcomeStatus.DUPLICATE}  # ...and none was sent
    assert {o.order.client_order_id for o in replay.orders if o.order} >= set(placed)
    assert again.service.orders(open_only=False, limit=10_000) == before
    assert (len(again.broker.positions()), again.broker.account().cash) == at_exchange
    books_agree(again.service)


def test_restart_keeps_positions_and_the_paused_state(traded, tmp_path):
    app, clock, _db_path, _ = traded
    positions = [(p.symbol, p.qty) for p in app.service.positions()]
    equity = app.service.broker.account().equity
    first, clock = restart_on_a_copy(traded, tmp_path)
    first.service.pause(by="test")

    restarted, _ = make_app(tmp_path / "copy.db", clock=clock)
    assert restarted.service.paused()
    assert [(p.symbol, p.qty) for p in restarted.service.positions()] == positions
    assert restarted.service.broker.account().equity == pytest.approx(equity)
    assert restarted.service.reconcile() == []

    # paused: cycles go on (exits still run) but no entry is placed
    placed_before = {o.client_order_id for o in restarted.service.orders(open_only=False, limit=10_000)}
    for _ in range(60):
        clock.advance(minutes=1)
        restarted.engine.tick()
    new = [
        o
        for o in restarted.service.orders(open_only=False, limit=10_000)
        if o.client_order_id not in placed_before
    ]
    assert all(o.side.value == "sell" for o in new)
    # entries blocked while paused are counted, not alerted one by one (issue 10, point 3)
    blocked = [e for e in restarted.service.recent_events(200) if e.kind is EventKind.RISK_BLOCKED]
    assert not any("paused" in e.message for e in blocked)
    assert restarted.service.pause_state().blocked > 0
    restarted.service.resume(by="test")
    assert not restarted.service.paused()
    assert app.service.positions() and not app.service.paused()  # the original is untouched


def test_stale_or_broken_data_skips_the_symbol_and_alerts(tmp_path):
    app, clock = make_app(tmp_path / "t.db", TRADEBOT_SYMBOLS="AAPL,MSFT")
    clock.advance(minutes=1)
    app.engine.tick()
    # a NaN close in AAPL's history: validation stops AAPL, MSFT goes on
    app.engine.cache.get("AAPL").close[-1] = float("nan")
    clock.advance(minutes=1)
    report = app.engine.tick()
    assert "NaN" in report.data_problems["AAPL"] and "MSFT" not in report.data_problems
    # the data source goes down: every symbol is skipped, nothing is traded, one alert each
    app.engine.cache.source = _DeadSource()
    clock.advance(minutes=30)
    tick = app.engine.tick()
    assert set(tick.data_problems) == {"AAPL", "MSFT"}
    assert tick.orders == []
    outages = [e for e in app.service.recent_events(50) if e.kind is EventKind.DATA_OUTAGE]
    assert {e.symbol for e in outages} == {"AAPL", "MSFT"}
    count = len(outages)
    # the next failing cycle does not alert again
    clock.advance(minutes=1)
    app.engine.tick()
    assert len([e for e in app.service.recent_events(50) if e.kind is EventKind.DATA_OUTAGE]) == count


class _DeadSource:
    name = "dead"

    def fetch(self, symbols, timeframe, start, end):
        from bot.data.base import DataError

        raise DataError("connection refused")


def test_a_failing_strategy_is_reported_and_the_others_go_on(tmp_path):
    from bot.strategy import Strategy

    class Broken(Strategy):
        name = "broken"

        def compute(self, bars):
            raise RuntimeError("division by zero in my indicator")

    app, clock = make_app(tmp_path / "t.db", TRADEBOT_SYMBOLS="AAPL")
    app.engine.strategies.insert(0, Broken())
    for _ in range(120):
        clock.advance(minutes=1)
        report = app.engine.tick()
        assert "broken/AAPL" in report.strategy_errors
    errors = [e for e in app.service.recent_events(500) if e.kind is EventKind.STRATEGY_ERROR]
    assert len(errors) == 1 and "division by zero" in errors[0].message
    assert app.service.orders(open_only=False), "supertrend kept trading beside the broken strategy"


def test_pnl_report_reads_the_stored_trades_and_equity(traded):
    app, *_ = traded
    report = app.service.pnl()
    trades = app.service.trades(limit=10_000)
    curve = [equity for _time, equity in app.service.equity_curve()] + [app.service.broker.account().equity]
    assert report.trades == len(trades)
    assert report.total_realized == pytest.approx(sum(t.pnl for t in trades))
    assert report.win_rate == pytest.approx(100 * sum(t.pnl > 0 for t in trades) / len(trades))
    peak, worst = curve[0], 0.0
    for value in curve:  # max drawdown by hand
        peak = max(peak, value)
        worst = max(worst, (peak - value) / peak * 100)
    assert report.max_drawdown_pct == pytest.approx(worst)
    assert report.return_pct == pytest.approx((curve[-1] / curve[0] - 1) * 100)
    assert sum(s.trades for s in report.per_strategy) == len(trades)
    text = app.router.handle("/pnl", Caller("console")).text
    assert f"Trades: {len(trades)}" in text and "Max drawdown:" in text
    # A few hours of history: Sharpe and Sortino are held back until they mean something.
    assert report.sharpe is None and report.sortino is None
    assert "Sharpe, Sortino: not yet" in text


def test_a_repeating_buy_signal_enters_once_and_raises_no_alerts(tmp_path):
    import numpy as np

    from bot.strategy import Strategy, StrategyOutput

    class AlwaysIn(Strategy):
        name = "always_in"

        def compute(self, bars):
            return StrategyOutput(signal=np.ones(len(bars), dtype=np.int8))

    app, clock = make_app(tmp_path / "t.db", TRADEBOT_SYMBOLS="AAPL")
    app.engine.strategies[:] = [AlwaysIn()]
    outcomes = []
    for _ in range(5):
        clock.advance(minutes=1)
        outcomes += [o.status for o in app.engine.tick().orders]
    assert outcomes[0] == "placed" and set(outcomes[1:]) == {"ignored"}
    assert len(app.service.orders(open_only=False)) == 1
    assert not [e for e in app.service.recent_events(100) if e.kind is EventKind.RISK_BLOCKED]
