"""/pnl from running totals (issue 19 section 6): the totals kept as trades and snapshots are
booked equal what the books add up to, after a run with many trades and after a restart, and a
start rebuilds totals that differ from the books (rows written around the repository).

"What the books add up to" is recomputed here the way /pnl computed it before the totals: every
trade and every equity snapshot through ``bot.metrics``.
"""

from __future__ import annotations

import itertools
import logging
import sqlite3

import pytest

from bot import metrics
from bot.domain import Trade
from bot.service.reports import GAP_SAMPLE
from storage import repository as repo
from tests.helpers import make_app

SYMBOLS = "AAPL,MSFT,SPY,QQQ,NVDA,AMZN,BTC/USD,ETH/USD"


def run(app, clock, cycles: int) -> None:
    for _ in range(cycles):
        clock.advance(minutes=5)
        app.engine.tick()


def recomputed(app):
    """The /pnl figures from every trade and every snapshot (the old way)."""
    with app.db.session() as s:
        trades: list[Trade] = repo.list_trades(s)
        curve = repo.equity_curve(s)
    equities = [e for _, e in curve] + [app.service.broker.account().equity]
    # Annualised by the median gap of the newest GAP_SAMPLE snapshots, as documented.
    gaps = sorted((b[0] - a[0]).total_seconds() for a, b in itertools.pairwise(curve[-GAP_SAMPLE:]))
    per_year = 365 * 86400 / gaps[len(gaps) // 2]
    pnls = [t.pnl for t in trades]
    per_strategy = {
        name: (len(own), pytest.approx(sum(own)), pytest.approx(metrics.win_rate(own)))
        for name in {t.strategy for t in trades}
        for own in [[t.pnl for t in trades if t.strategy == name]]
    }
    return {
        "trades": len(trades),
        "total_realized": pytest.approx(sum(pnls)),
        "win_rate": pytest.approx(metrics.win_rate(pnls)),
        "max_drawdown_pct": pytest.approx(metrics.max_drawdown_pct(equities)),
        "starting_equity": pytest.approx(curve[0][1]),
        "sharpe": pytest.approx(metrics.sharpe(equities, per_year), rel=1e-6),
        "sortino": pytest.approx(metrics.sortino(equities, per_year), rel=1e-6),
        "per_strategy": per_strategy,
    }


def shown(app):
    report = app.service.pnl()
    return {
        "trades": report.trades,
        "total_realized": report.total_realized,
        "win_rate": report.win_rate,
        "max_drawdown_pct": report.max_drawdown_pct,
        "starting_equity": report.starting_equity,
        "sharpe": report.sharpe,
        "sortino": report.sortino,
        "per_strategy": {p.strategy: (p.trades, p.pnl, p.win_rate) for p in report.per_strategy},
    }


@pytest.fixture(scope="module")
def traded(tmp_path_factory):
    """About a hundred trades over four simulated days of five-minute cycles, run once."""
    path = tmp_path_factory.mktemp("totals") / "bot.db"
    app, clock = make_app(path, TRADEBOT_SYMBOLS=SYMBOLS, MAX_OPEN_TRADES="8")
    run(app, clock, 1200)
    app.db.dispose()
    return path, clock


def test_the_totals_equal_the_books_after_many_trades_and_after_a_restart(traded, tmp_path):
    import shutil

    path = tmp_path / "bot.db"
    shutil.copy(traded[0], path)
    app, clock = make_app(path, clock=traded[1], TRADEBOT_SYMBOLS=SYMBOLS, MAX_OPEN_TRADES="8")
    figures = shown(app)
    assert figures["trades"] >= 50, "the run should close many trades"
    assert figures["sharpe"] is not None  # days of snapshots: the ratios are shown
    assert figures == recomputed(app)
    with app.db.session() as s:
        assert repo.verify_totals(s) == []  # and the stored totals are what a start computes

    run(app, clock, 300)  # restarted, it goes on booking trades into the same totals
    app.db.dispose()
    again, _ = make_app(path, clock=clock, TRADEBOT_SYMBOLS=SYMBOLS, MAX_OPEN_TRADES="8")
    assert shown(again)["trades"] > figures["trades"]
    assert shown(again) == recomputed(again)
    again.db.dispose()


def test_a_start_rebuilds_totals_that_differ_from_the_books(traded, tmp_path, caplog):
    import shutil

    path = tmp_path / "bot.db"
    shutil.copy(traded[0], path)
    with sqlite3.connect(path) as con:  # rows written around the repository: the totals are wrong
        con.execute("UPDATE trade_totals SET pnl = pnl + 1000, trades = trades + 3")
        con.execute("UPDATE equity_totals SET max_drawdown_pct = 99")
        con.execute("DELETE FROM trades WHERE id = (SELECT max(id) FROM trades)")
    with caplog.at_level(logging.WARNING, logger="storage.totals"):
        app, _ = make_app(path, clock=traded[1], TRADEBOT_SYMBOLS=SYMBOLS, MAX_OPEN_TRADES="8")
    rebuilt = [r.getMessage() for r in caplog.records if "rebuilt from the books" in r.getMessage()]
    assert any("trades of supertrend" in line for line in rebuilt) and any(
        "equity curve" in line for line in rebuilt
    )
    assert shown(app) == recomputed(app)
    app.db.dispose()


def test_the_first_start_after_the_migration_fills_the_totals(traded, tmp_path):
    import shutil

    path = tmp_path / "bot.db"
    shutil.copy(traded[0], path)
    with sqlite3.connect(path) as con:  # as migration 0005 leaves them: empty
        con.execute("DELETE FROM trade_totals")
        con.execute("DELETE FROM equity_totals")
    app, _ = make_app(path, clock=traded[1], TRADEBOT_SYMBOLS=SYMBOLS, MAX_OPEN_TRADES="8")
    assert shown(app) == recomputed(app)
    app.db.dispose()


def test_pnl_does_no_more_work_with_more_history(traded, tmp_path):
    """/pnl reads the totals, today's trades and the newest snapshot times: counted in SQLite's
    virtual machine steps, its work does not grow when 3,000 older trades are added (reading
    every trade, as it did, costs some ten steps per trade)."""
    import shutil
    from datetime import timedelta

    from sqlalchemy import event

    path = tmp_path / "bot.db"
    shutil.copy(traded[0], path)
    app, clock = make_app(path, clock=traded[1], TRADEBOT_SYMBOLS=SYMBOLS, MAX_OPEN_TRADES="8")
    app.db.engine.dispose()  # every connection from here on is counted

    def steps() -> int:
        counted = [0]

        def tick() -> int:
            counted[0] += 1
            return 0

        def on_checkout(dbapi_connection, _record, _proxy):
            dbapi_connection.set_progress_handler(tick, 10)

        event.listen(app.db.engine, "checkout", on_checkout)
        try:
            app.service.pnl()
        finally:
            event.remove(app.db.engine, "checkout", on_checkout)
            app.db.engine.dispose()
        return counted[0] * 10

    before = steps()
    long_ago = clock.now() - timedelta(days=400)
    with app.db.session() as s:
        for i in range(3000):
            when = long_ago + timedelta(minutes=i)
            repo.add_trade(s, Trade("AAPL", "supertrend", 1, when, 100, when, 101, 1.0, "signal"))
    after = steps()
    assert after < before + 3000, (before, after)
    app.db.dispose()


def test_the_repository_keeps_totals_on_both_databases(db):
    """On SQLite and Postgres: totals kept row by row equal a start's recomputation, a snapshot
    booked out of time order included, and what ``bot.metrics`` makes of the rows."""
    from datetime import UTC, datetime, timedelta

    t0 = datetime(2026, 3, 2, tzinfo=UTC)
    equities = [100_000 + 500 * ((i * 7919) % 13 - 6) + 40 * i for i in range(200)]
    with db.session() as s:
        for i, equity in enumerate(equities):
            when = t0 + timedelta(minutes=5 * i)
            repo.add_equity_snapshot(s, when, equity, equity / 2)
            repo.add_trade(s, Trade("AAPL", f"s{i % 3}", 1, when, 100, when, 100, float(i % 7 - 3), "signal"))
    with db.session() as s:  # a late snapshot, older than the last: the statistics are recomputed
        repo.add_equity_snapshot(s, t0 + timedelta(minutes=2), 99_000, 49_000)
    with db.session() as s:
        totals = {t.strategy: (t.trades, t.wins, t.pnl) for t in repo.strategy_totals(s)}
        stats = repo.equity_stats(s)
        curve = [e for _, e in repo.equity_curve(s)]
        assert repo.verify_totals(s) == []
    pnls = [float(i % 7 - 3) for i in range(200)]
    assert totals == {
        f"s{k}": (len(own), sum(p > 0 for p in own), pytest.approx(sum(own)))
        for k in range(3)
        for own in [pnls[k::3]]
    }
    assert stats.snapshots == 201 and curve[1] == 99_000
    assert stats.max_drawdown_pct == pytest.approx(metrics.max_drawdown_pct(curve))
    assert stats.sharpe(365.0) == pytest.approx(metrics.sharpe(curve, 365.0), rel=1e-9)
    assert stats.sortino(365.0) == pytest.approx(metrics.sortino(curve, 365.0), rel=1e-9)


def test_equity_is_a_point_a_day_then_the_newest_snapshots_in_full(traded, tmp_path):
    """/equity's curve: each UTC day before the newest EQUITY_DETAIL_POINTS snapshots as its last
    snapshot, those in full, the deepest drawdown of the whole curve; the same after a start that
    rebuilt the days."""
    import shutil

    from bot.service.reports import EQUITY_DETAIL_POINTS

    path = tmp_path / "bot.db"
    shutil.copy(traded[0], path)

    def expected(app):
        curve = repo_curve(app)
        detail = curve[-EQUITY_DETAIL_POINTS:]
        closes = {}
        for when, equity in curve:
            if when.date() < detail[0][0].date():
                closes[when.date()] = (when, equity)
        return list(closes.values()) + detail, metrics.max_drawdown_pct([e for _, e in curve])

    app, _ = make_app(path, clock=traded[1], TRADEBOT_SYMBOLS=SYMBOLS, MAX_OPEN_TRADES="8")
    history = app.service.equity_history()
    points, deepest = expected(app)
    assert [(t, e) for t, e, _high in history.points] == points
    assert len(points) < len(repo_curve(app)) and len({t.date() for t, _ in points}) >= 4
    assert history.max_drawdown_pct == pytest.approx(deepest)
    app.db.dispose()

    with sqlite3.connect(path) as con:  # days written wrong (around the repository): rebuilt at start
        con.execute("UPDATE equity_days SET close = close * 2")
    again, _ = make_app(path, clock=traded[1], TRADEBOT_SYMBOLS=SYMBOLS, MAX_OPEN_TRADES="8")
    assert [(t, e) for t, e, _high in again.service.equity_history().points] == points
    again.db.dispose()


def repo_curve(app):
    with app.db.session() as s:
        return repo.equity_curve(s)


def test_profit_by_day_week_and_month_from_day_totals_equals_every_trade(traded, tmp_path):
    """/profit from ``trade_days`` and each day's first and last snapshot: the same periods as
    ``profit_by_period`` over every trade and snapshot; also after a start rebuilt wrong days."""
    import shutil

    from bot.periods import Period, profit_by_period

    path = tmp_path / "bot.db"
    shutil.copy(traded[0], path)

    def both(app, period, count):
        with app.db.session() as s:
            trades, curve = repo.list_trades(s), repo.equity_curve(s)
        now = app.service.clock.now()
        want = [
            (p.label, p.trades, p.wins, pytest.approx(p.pnl), p.start_equity)
            for p in profit_by_period(trades, curve, period, now, count)
        ]
        have = [(p.label, p.trades, p.wins, p.pnl, p.start_equity) for p in app.service.profit(period, count)]
        return have, want

    app, _ = make_app(path, clock=traded[1], TRADEBOT_SYMBOLS=SYMBOLS, MAX_OPEN_TRADES="8")
    for period, count in ((Period.DAY, 7), (Period.DAY, 2), (Period.WEEK, 3), (Period.MONTH, 2)):
        have, want = both(app, period, count)
        assert have == want and sum(row[1] for row in have) > 0
    app.db.dispose()
    with sqlite3.connect(path) as con:
        con.execute("UPDATE trade_days SET trades = 0, pnl = 0")
        con.execute("UPDATE equity_days SET open = 1")
    again, _ = make_app(path, clock=traded[1], TRADEBOT_SYMBOLS=SYMBOLS, MAX_OPEN_TRADES="8")
    have, want = both(again, Period.DAY, 7)
    assert have == want
    again.db.dispose()
