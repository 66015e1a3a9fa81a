"""Paging through orders, trades and events (issue 19 section 6): each page reads its own rows,
newest first; ``before=`` the previous page's ``X-Next-Before`` continues exactly where it
stopped, with no row missed or shown twice, even when new rows arrive between the pages.

The repository on SQLite and (with TEST_DATABASE_URL) Postgres; the API over real HTTP on a real
web server (``tests/webapp.py``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from bot.domain import Event, EventKind, Order, OrderStatus, Side, Trade
from storage import repository as repo
from tests.helpers import make_app
from tests.webapp import WebThread

TOKEN = "script-token-0123456789abcdef"
T0 = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)


def trade(i: int, exit_time: datetime, symbol: str = "AAPL") -> Trade:
    """A trade told apart from every other by its P&L (``i``)."""
    return Trade(
        symbol,
        "supertrend",
        1.0,
        exit_time - timedelta(minutes=5),
        100.0,
        exit_time,
        100.0,
        float(i),
        "signal",
    )


def order(i: int, symbol: str = "AAPL") -> Order:
    return Order(
        f"tb-{i:05d}", symbol, Side.BUY, 1.0, OrderStatus.FILLED, strategy="supertrend", created_at=T0
    )


def write_history(db, trades: int = 230, orders: int = 230, events: int = 230) -> None:
    """``trades`` trades, three to each exit time (ties the cursor must break by id), two symbols."""
    with db.session() as s:
        for i in range(trades):
            repo.add_trade(s, trade(i, T0 + timedelta(minutes=i // 3), "AAPL" if i % 2 else "MSFT"))
        for i in range(orders):
            repo.save_order(s, order(i, "AAPL" if i % 2 else "MSFT"), T0)
        for i in range(events):
            repo.add_event(s, Event(EventKind.INFO, f"event {i}", T0))


def all_trade_pages(db, **filters) -> list[list[float]]:
    pages, before = [], None
    while True:
        with db.session() as s:
            page = repo.trade_page(s, limit=100, before=before, **filters)
        pages.append([t.pnl for t in page.items])
        if page.next_before is None:
            return pages
        before = page.next_before


def test_trade_pages_cover_the_history_once_in_order(db):
    write_history(db)
    pages = all_trade_pages(db)
    assert [len(p) for p in pages] == [100, 100, 30]
    seen = [pnl for p in pages for pnl in p]
    with db.session() as s:
        assert seen == [t.pnl for t in repo.list_trades(s)]  # the full list's order, ties included
    assert sorted(seen) == [float(i) for i in range(230)]
    aapl = [pnl for p in all_trade_pages(db, symbol="aapl") for pnl in p]
    assert aapl == [float(i) for i in range(229, -1, -1) if i % 2]


def test_order_and_event_pages_continue_exactly_when_rows_arrive_between_pages(db):
    write_history(db)
    with db.session() as s:
        first = repo.order_page(s, limit=100)
        events_first = repo.recent_events(s, 101)
    with db.session() as s:  # the bot goes on trading between two page loads
        for i in range(230, 260):
            repo.save_order(s, order(i), T0)
            repo.add_event(s, Event(EventKind.INFO, f"event {i}", T0))
    ids = [o.client_order_id for o in first.items]
    before = first.next_before
    while before is not None:
        with db.session() as s:
            page = repo.order_page(s, limit=100, before=before)
        ids += [o.client_order_id for o in page.items]
        before = page.next_before
    assert ids == [f"tb-{i:05d}" for i in range(229, -1, -1)]
    shown = [e.message for e in events_first[:100]]
    with db.session() as s:
        shown += [e.message for e in repo.recent_events(s, 200, before=events_first[99].id)]
    assert shown == [f"event {i}" for i in range(229, -1, -1)]


# ---------------------------------------------------------------------- over HTTP


@pytest.fixture
def web(tmp_path):
    app, _ = make_app(
        tmp_path / "bot.db", TRADEBOT_SYMBOLS="AAPL,MSFT", TRADEBOT_WEB_PORT="0", TRADEBOT_WEB_TOKEN=TOKEN
    )
    with WebThread(app) as running:
        yield running
    app.db.dispose()


def walk(client: httpx.Client, path: str, between=None) -> tuple[list[dict], int]:
    """Every page of ``path``, following ``X-Next-Before``; ``between()`` runs after page one."""
    rows, pages, url = [], 0, path
    while True:
        response = client.get(url)
        assert response.status_code == 200, response.text
        rows += response.json()
        pages += 1
        cursor = response.headers.get("X-Next-Before")
        if cursor is None:
            assert "Link" not in response.headers
            return rows, pages
        assert (
            response.headers["Link"].endswith('rel="next"') and f"before={cursor}" in response.headers["Link"]
        )
        url = f"{path}{'&' if '?' in path else '?'}before={cursor}"
        if pages == 1 and between is not None:
            between()


def test_the_api_pages_orders_trades_and_events_with_no_gap_or_duplicate(web):
    db = web.app.db
    write_history(db)

    def more_history() -> None:
        with db.session() as s:
            for i in range(230, 245):
                repo.add_trade(s, trade(i, T0 + timedelta(days=1)))
                repo.save_order(s, order(i), T0)
                repo.add_event(s, Event(EventKind.INFO, f"event {i}", T0))

    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=web.url + "/api/v1", headers=headers, timeout=30) as client:
        trades, pages = walk(client, "/trades?limit=100", between=more_history)
        assert pages == 3
        assert [t["pnl"] for t in trades] == sorted((float(i) for i in range(230)), reverse=True)
        orders, _ = walk(client, "/orders?limit=100&symbol=AAPL")
        assert [o["client_order_id"] for o in orders] == [
            f"tb-{i:05d}" for i in range(244, -1, -1) if i % 2 or i >= 230
        ]
        events, _ = walk(client, "/events?limit=100&kind=info")
        ids = [e["id"] for e in events]
        assert len(ids) == len(set(ids)) == 245 and ids == sorted(ids, reverse=True)


def test_page_size_is_bounded_and_a_bad_cursor_is_one_clear_line(web):
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=web.url + "/api/v1", headers=headers, timeout=30) as client:
        for path in ("/orders", "/trades", "/events"):
            assert client.get(path, params={"limit": 501}).status_code == 422
            assert client.get(path, params={"limit": 500}).status_code == 200
            assert client.get(path, params={"before": 0}).status_code == 422
        missing = client.get("/trades", params={"before": 999999})
        assert missing.status_code == 404
        assert missing.json()["detail"] == "no trade 999999 to continue from: start again without before="
