"""``GET /api/v1/profit`` and ``GET /api/v1/logs`` over real HTTP, and the parts under them:
periods (UTC days, ISO weeks from Monday, calendar months), the equity a period starts from, and
the bounded ring buffer of redacted log lines."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from bot.domain import Trade
from bot.logs import RECENT_LINES, RecentLines, RedactingFilter
from bot.periods import Period, equity_at, label, period_start, profit_by_period
from tests.helpers import make_app
from tests.webapp import WebThread

TOKEN = "script-token-0123456789abcdef"


def trade(exit_time: datetime, pnl: float) -> Trade:
    return Trade(
        "BTC/USD", "s", 1.0, exit_time - timedelta(hours=1), 100.0, exit_time, 100.0 + pnl, pnl, "signal"
    )


def at(day: str, hour: int = 12) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)


def test_periods_are_utc_days_iso_weeks_and_calendar_months():
    sunday_night = datetime(2026, 3, 8, 23, 59, tzinfo=UTC)
    assert period_start(sunday_night, Period.WEEK) == datetime(2026, 3, 2, tzinfo=UTC)  # its Monday
    assert label(period_start(sunday_night, Period.WEEK), Period.WEEK) == "2026-W10"
    assert label(period_start(at("2027-01-01"), Period.WEEK), Period.WEEK) == "2026-W53"
    assert period_start(at("2026-03-31"), Period.MONTH) == datetime(2026, 3, 1, tzinfo=UTC)
    trades = [
        trade(at("2025-12-31", 23), 5.0),
        trade(at("2026-01-01", 0), -2.0),
        trade(at("2026-01-15"), 4.0),
    ]
    months = profit_by_period(trades, [], Period.MONTH, at("2026-01-20"), 3)
    assert [(m.label, m.pnl, m.trades, m.wins) for m in months] == [
        ("2026-01", 2.0, 2, 1),
        ("2025-12", 5.0, 1, 1),
        ("2025-11", 0.0, 0, 0),
    ]
    days = profit_by_period(trades, [], Period.DAY, at("2026-01-01", 6), 2)
    assert [(d.label, d.pnl) for d in days] == [("2026-01-01", -2.0), ("2025-12-31", 5.0)]


def test_a_period_starts_from_its_first_snapshot_else_the_last_before():
    curve = [(at("2026-03-01", 10), 100.0), (at("2026-03-02", 9), 110.0), (at("2026-03-02", 15), 120.0)]
    day = datetime(2026, 3, 2, tzinfo=UTC)
    assert equity_at(curve, day, day + timedelta(days=1)) == 110.0
    assert equity_at(curve, day + timedelta(days=1), day + timedelta(days=2)) == 120.0  # no snapshot that day
    assert equity_at(curve, day - timedelta(days=5), day - timedelta(days=4)) is None  # before any
    [row] = profit_by_period([trade(at("2026-03-02"), 11.0)], curve, Period.DAY, at("2026-03-02"), 1)
    assert row.start_equity == 110.0 and row.return_pct == pytest.approx(10.0)


def test_the_ring_buffer_keeps_the_newest_lines_redacted_and_filters_by_level():
    ring = RecentLines(3)
    ring.addFilter(RedactingFilter(["hunter2-secret"]))
    log = logging.getLogger("test.ring")
    log.propagate, log.level = False, logging.DEBUG
    log.addHandler(ring)
    try:
        for i in range(5):
            log.info("line %d with hunter2-secret", i)
        log.warning("careful")
    finally:
        log.removeHandler(ring)
    lines, newest = ring.after()
    assert newest == 6 and [x.seq for x in lines] == [4, 5, 6]  # the oldest went
    assert lines[0].message == "line 3 with ***"
    assert [x.message for x in ring.after(level="WARNING")[0]] == ["careful"]
    assert ring.after(5)[0][0].seq == 6 and ring.after(6)[0] == []


@pytest.fixture
def web(tmp_path):
    app, _ = make_app(tmp_path / "bot.db", TRADEBOT_WEB_PORT="0", TRADEBOT_WEB_TOKEN=TOKEN)
    with WebThread(app) as running:
        yield httpx.Client(base_url=running.url, timeout=10)
    app.db.dispose()


def test_the_api_answers_profit_and_logs_and_refuses_what_it_does_not_know(web):
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert web.get("/api/v1/profit").status_code == 401
    assert web.get("/api/v1/logs").status_code == 401
    answer = web.get("/api/v1/profit", params={"period": "week", "count": 3}, headers=bearer)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["period"] == "week" and [p["label"] for p in body["periods"]] == [
        "2026-W10",
        "2026-W09",
        "2026-W08",
    ]
    assert len(web.get("/api/v1/profit", headers=bearer).json()["periods"]) == 30  # days by default
    assert web.get("/api/v1/profit", params={"period": "year"}, headers=bearer).status_code == 422
    assert web.get("/api/v1/profit", params={"count": 0}, headers=bearer).status_code == 422
    assert web.get("/api/v1/profit", params={"count": 367}, headers=bearer).status_code == 422
    logs = web.get("/api/v1/logs", params={"level": "WARNING"}, headers=bearer)
    assert logs.status_code == 200 and logs.json()["kept"] == RECENT_LINES
    assert all(x["level"] in {"WARNING", "ERROR", "CRITICAL"} for x in logs.json()["lines"])
    assert web.get("/api/v1/logs", params={"level": "LOUD"}, headers=bearer).status_code == 422
    assert web.get("/api/v1/logs", params={"after": -1}, headers=bearer).status_code == 422
