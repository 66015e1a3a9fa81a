"""One snapshot of prices per view (issue 18, point 1).

Equity was the broker's (current prices) while the unrealized P&L was the books' mark from the
last cycle, so "Today" was not realized + unrealized on the same screen (off by 4.55 to 45 USD
while a position was open). Here the market moves after the last cycle, with no cycle since:
every figure of one answer must be priced at the same moment.
"""

from __future__ import annotations

import math

from bot.domain import Side
from storage import repository as repo
from tests.helpers import make_app


def _moved(tmp_path):
    app, clock = make_app(tmp_path / "t.db", TRADEBOT_SYMBOLS="AAPL,BTC/USD")
    assert app.service.place_manual("AAPL", Side.BUY, 10, "snap-aapl", by="test").status == "filled"
    assert app.service.place_manual("BTC/USD", Side.BUY, 0.05, "snap-btc", by="test").status == "filled"
    clock.advance(minutes=47)  # the market moves; no cycle marks the books meanwhile
    now = clock.now()
    prices = {s: app.broker.latest_price(s, now) for s in ("AAPL", "BTC/USD")}
    with app.db.session() as s:  # the books' marks: the fill prices, from before the move
        marked = {p.symbol: p.market_price for p in repo.list_positions(s)}
    assert all(not math.isclose(prices[s], marked[s]) for s in prices), "the market did not move"
    return app, prices


def test_pnl_today_is_realized_plus_unrealized_at_the_same_prices(tmp_path):
    app, prices = _moved(tmp_path)
    report = app.service.pnl()
    with app.db.session() as s:
        held = {p.symbol: p for p in repo.list_positions(s)}
    unrealized = sum((prices[s] - p.avg_price) * p.qty for s, p in held.items())
    assert math.isclose(report.unrealized, unrealized, abs_tol=0.005)
    assert math.isclose(report.today_pnl, report.today_realized + report.unrealized, abs_tol=0.005)
    cash = app.broker.account().cash
    assert math.isclose(report.equity, cash + sum(p.qty * prices[s] for s, p in held.items()), abs_tol=0.005)
    app.db.dispose()


def test_status_equity_is_cash_plus_the_positions_it_lists(tmp_path):
    app, prices = _moved(tmp_path)
    view = app.service.status()
    assert {p.symbol: p.market_price for p in view.holdings} == prices
    assert math.isclose(view.equity, view.cash + sum(p.market_value for p in view.holdings), abs_tol=0.005)
    assert math.isclose(view.today_pnl, sum(p.unrealized_pnl for p in view.holdings), abs_tol=0.005)
    # The positions as views read them are marked at the current prices too (/api/v1/positions).
    assert {p.symbol: p.market_price for p in app.service.marked_positions()} == prices
    app.db.dispose()


def test_positions_in_the_console_and_telegram_are_priced_as_status_prices_them(tmp_path):
    from bot import formatting as fmt
    from bot.commands import Caller, CommandRouter
    from bot.plugins import Registry

    app, prices = _moved(tmp_path)
    router = CommandRouter(app.service, Registry(), app.service.clock)
    text = router.handle("/positions", Caller(transport="console", chat_id=0, name="test")).text
    for symbol, price in prices.items():
        assert f"{symbol}: " in text and f"now {fmt.money(price)} " in text, text
    app.db.dispose()
