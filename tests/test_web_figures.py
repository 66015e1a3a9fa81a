"""Every figure the dashboard shows, read off the page in a real browser at desktop and phone size,
equals the API's and agrees with the books (issue 18, point 1).

The books are read here on their own terms: trades, equity snapshots and positions from the
database, prices from the simulated exchange at the page's moment. A figure on a page is the API's
value formatted as the page formats it (``money``, ``signed``, ``pct`` below, rounding ties away
from zero as JavaScript's ``toLocaleString`` and ``toFixed`` do); the API's value is the books'.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import UTC
from decimal import ROUND_HALF_UP, Decimal

import pytest

from bot.periods import Period, label, period_start
from storage import repository as repo
from tests import web_scenario
from tests.browser import SIZES, Session, chromium, needs_chromium
from tests.webapp import WebThread

pytestmark = needs_chromium
browser = pytest.fixture(scope="module")(chromium)


def fixed(value: float, digits: int = 2) -> str:
    return str(Decimal(value).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP))


def money(value: float | None) -> str:
    if value is None:
        return "–"
    whole, _, cents = fixed(abs(value)).partition(".")
    return ("-" if value < 0 and fixed(abs(value)) != "0.00" else "") + f"{int(whole):,}.{cents}"


def signed(value: float | None) -> str:
    return "–" if value is None else ("+" if value >= 0 else "") + money(value)


def pct(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else fixed(value, digits) + "%"


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    scenario = web_scenario.build(tmp_path_factory.mktemp("figures") / "bot.db")
    with WebThread(scenario.app) as server:
        yield scenario, server
    scenario.app.db.dispose()


class Books:
    """What the database and the exchange say, computed here without the service."""

    def __init__(self, scenario: web_scenario.Scenario) -> None:
        app = scenario.app
        self.now = scenario.clock.now()
        with app.db.session() as s:
            self.trades = repo.list_trades(s)
            self.curve = repo.equity_curve(s)
            self.positions = {p.symbol: p for p in repo.list_positions(s)}
        self.prices = {sym: app.broker.latest_price(sym, self.now) for sym in self.positions}
        self.cash = app.broker.account().cash
        self.equity = self.cash + sum(p.qty * self.prices[s] for s, p in self.positions.items())
        day = self.now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        self.day_start = next(e for t, e in self.curve if t >= day)
        self.today = self.equity - self.day_start
        self.today_realized = sum(t.pnl for t in self.trades if t.exit_time >= day)
        self.unrealized = sum((self.prices[s] - p.avg_price) * p.qty for s, p in self.positions.items())
        self.realized = sum(t.pnl for t in self.trades)
        self.win_rate = 100 * sum(t.pnl > 0 for t in self.trades) / len(self.trades)
        peak, worst = 0.0, 0.0
        for value in [e for _, e in self.curve] + [self.equity]:
            peak = max(peak, value)
            worst = max(worst, (peak - value) / peak * 100)
        self.max_drawdown = worst
        self.return_pct = (self.equity / self.curve[0][1] - 1) * 100
        self.by_strategy: dict[str, list[float]] = defaultdict(list)
        for t in self.trades:
            self.by_strategy[t.strategy].append(t.pnl)


def cards(page, scope: str) -> dict[str, str]:
    return page.evaluate(
        """scope => Object.fromEntries([...document.querySelectorAll(scope + ' .card')].map(c =>
          [c.querySelector('.label').innerText, c.querySelector('.value').innerText]))""",
        scope,
    )


def rows(page, scope: str) -> list[dict[str, str]]:
    return page.evaluate(
        """scope => [...document.querySelectorAll(scope + ' tbody tr')].map(tr =>
          Object.fromEntries([...tr.children].map(td => [td.dataset.label, td.innerText])))""",
        scope,
    )


@pytest.mark.parametrize("size", list(SIZES))
def test_every_figure_equals_the_api_and_the_books(world, browser, size):
    scenario, server = world
    books = Books(scenario)
    session = Session(browser, server.url, size)

    # Overview: equity, today, cash, counts, and each position's price and P&L.
    page = session.open("/", "#positions table")
    overview = session.api("/overview")
    status = overview["status"]
    assert close(status["equity"], books.equity) and close(status["cash"], books.cash)
    assert close(status["today_pnl"], books.today)
    # One snapshot of prices: today is today's realized P&L plus the unrealized (positions opened today).
    assert close(books.today, books.today_realized + books.unrealized)
    shown = cards(page, "#summary")
    assert shown["Equity"] == money(status["equity"])
    assert shown["Today"] == signed(status["today_pnl"])
    assert shown["Cash"] == money(status["cash"])
    assert shown["Positions"] == str(len(books.positions)) == str(status["positions"])
    assert shown["Open orders"] == "1" == str(status["open_orders"])
    listed = {r["Symbol"]: r for r in rows(page, "#positions")}
    assert set(listed) == set(books.positions)
    for p in overview["positions"]:
        mine = books.positions[p["symbol"]]
        assert close(p["market_price"], books.prices[p["symbol"]])
        assert close(p["unrealized_pnl"], (books.prices[p["symbol"]] - mine.avg_price) * mine.qty)
        row = listed[p["symbol"]]
        assert row["Price"] == money(p["market_price"]) and row["Entry"] == money(p["avg_price"])
        assert row["P&L"] == signed(p["unrealized_pnl"]) and row["%"] == pct(p["unrealized_pct"])
    assert sum(p["unrealized_pnl"] for p in overview["positions"]) == pytest.approx(books.unrealized)

    # Equity: return, today, realized, unrealized, drawdown, win rate (a percentage, shown once).
    page = session.open("/equity", "#pnl .card")
    pnl = session.api("/pnl")
    for name, expected in [
        ("equity", books.equity),
        ("today_pnl", books.today),
        ("today_realized", books.today_realized),
        ("total_realized", books.realized),
        ("unrealized", books.unrealized),
        ("max_drawdown_pct", books.max_drawdown),
        ("win_rate", books.win_rate),
        ("return_pct", books.return_pct),
    ]:
        assert close(pnl[name], expected), name
    shown = cards(page, "#pnl")
    assert shown["Equity"] == money(pnl["equity"])
    assert shown["Today"] == signed(pnl["today_pnl"])
    assert shown["Realized today"] == signed(pnl["today_realized"])
    assert shown["Unrealized"] == signed(pnl["unrealized"])
    assert shown["Realized"] == signed(pnl["total_realized"])
    assert shown["Return"] == pct(pnl["return_pct"])
    assert shown["Max drawdown"] == pct(pnl["max_drawdown_pct"])
    assert shown["Win rate"] == pct(pnl["win_rate"], 0) == "63%"  # 5 of 8 trades won: not 6250%
    assert shown["Trades"] == str(len(books.trades))

    # Strategies: each one's P&L, trades and win rate.
    page = session.open("/strategies", ".strategy .card")
    listed = session.api("/strategies")
    assert {s["label"] for s in listed} == set(books.by_strategy)
    for strategy in listed:
        own = books.by_strategy[strategy["label"]]
        assert close(strategy["pnl"], sum(own)) and strategy["trades"] == len(own)
        assert close(strategy["win_rate"], 100 * sum(p > 0 for p in own) / len(own))
        index = [s["label"] for s in listed].index(strategy["label"]) + 1
        shown = cards(page, f".strategy:nth-of-type({index})")
        assert shown["P&L"] == signed(strategy["pnl"])
        assert shown["Trades"] == str(len(own))
        assert shown["Win rate"] == pct(strategy["win_rate"], 0)

    # Profit by day, week and month: each row is the trades that exited in it.
    for period in Period:
        page = session.open(f"/profit?period={period.value}", "#rows table")
        page.wait_for_function(
            "p => document.querySelector(`#periods [data-period=${p}]`).classList.contains('selected')",
            arg=period.value,
        )
        data = session.api(f"/profit?period={period.value}")
        grouped: dict[str, list[float]] = defaultdict(list)
        for t in books.trades:
            grouped[label(period_start(t.exit_time, period), period)].append(t.pnl)
        oldest = data["periods"][-1]["label"]
        assert {k for k in grouped if k >= oldest} == {r["label"] for r in data["periods"] if r["trades"]}
        shown = {r[next(iter(r))]: r for r in rows(page, "#rows")}
        assert len(shown) == len(data["periods"])
        for row in data["periods"]:
            own = grouped.get(row["label"], [])
            assert close(row["pnl"], sum(own)) and row["trades"] == len(own), (period, row)
            assert row["wins"] == sum(p > 0 for p in own)
            assert shown[row["label"]]["P&L"] == signed(row["pnl"])
            assert shown[row["label"]]["Trades"] == str(len(own))
            assert shown[row["label"]]["Return"] == pct(row["return_pct"])
        assert cards(page, "#profit-cards")["Trades"] == str(sum(r["trades"] for r in data["periods"]))
        assert page.evaluate("() => window.tradebotProfitChart.count") == len(data["periods"])
    monthly = session.api("/profit?period=month")["periods"]
    assert [r["label"] for r in monthly[:3]] == ["2026-03", "2026-02", "2026-01"]
    assert close(sum(r["pnl"] for r in monthly), books.realized)

    # Trades: every closed trade, with its P&L.
    page = session.open("/trades", "#rows table")
    shown = rows(page, "#rows")
    assert [r["P&L"] for r in shown] == [signed(t.pnl) for t in books.trades]

    # Risk: open trades and the daily loss against their limits.
    page = session.open("/risk", ".gauge")
    risk = session.api("/risk")
    assert risk["open_trades"] == len(books.positions)
    assert close(risk["day_loss_pct"], (books.day_start - books.equity) / books.day_start * 100)
    gauges = page.inner_text("#gauges")
    assert f"Open trades: {len(books.positions)}.00 of {risk['max_open_trades']:g}" in gauges
    assert (
        f"Daily loss %: {fixed(max(0.0, risk['day_loss_pct']))} of {risk['daily_loss_limit_pct']:g}" in gauges
    )
    session.close()


def test_the_symbol_page_shows_the_position_at_the_current_price(world, browser):
    scenario, server = world
    books = Books(scenario)
    session = Session(browser, server.url, "phone")
    page = session.open("/symbol/BTC/USD", "#symbol-position table")
    data = session.api("/bars/BTC/USD")
    assert close(data["position"]["market_price"], books.prices["BTC/USD"])
    row = rows(page, "#symbol-position")[0]
    assert row["Price"] == money(books.prices["BTC/USD"])
    assert cards(page, "#symbol-cards")["Close"] == money(data["close"][-1])
    session.close()
