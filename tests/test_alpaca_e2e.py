"""The whole bot on Alpaca: build_app with keys, alpaca-py over HTTP to the fake Alpaca server.

Bars are served by the fake's data API; orders go to its trading API; nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from bot.app import StartupError, build_app
from bot.bars import NS, Bars
from bot.clock import ManualClock
from bot.config import Settings
from bot.domain import EventKind, OrderStatus
from bot.risk import RiskLimits, position_size, protective_levels
from tests.fakes.alpaca import FakeAlpaca
from tests.fakes.polygon_server import FakePolygon
from tests.helpers import take_lease

ROOT = Path(__file__).resolve().parent.parent
LAST_BAR = datetime(2026, 3, 2, 15, 59, tzinfo=UTC)  # start of the last closed 1m bar
NOW = LAST_BAR + timedelta(minutes=1, seconds=3)


def flip_up(n: int = 60, end: datetime = LAST_BAR) -> Bars:
    """A steady decline, then a last bar that closes far above Supertrend's band: a BUY flip."""
    close = 120 - 0.3 * np.arange(n)
    close[-1] = 115.0
    high, low = close + 0.5, close - 0.5
    high[-1], low[-1] = 115.5, close[-2] - 0.5
    start = int(end.timestamp()) - (n - 1) * 60
    times = np.array([(start + 60 * i) * NS for i in range(n)], dtype=np.int64)
    return Bars(times, close.copy(), high, low, close, np.full(n, 1000.0))


@pytest.fixture
def fake():
    with FakeAlpaca() as server:
        server.clock.set(NOW)  # Monday 2 March 2026, 11:00 in New York: the market is open
        yield server


def env_for(fake: FakeAlpaca, db: Path, **extra: str) -> dict[str, str]:
    env = {
        "ALPACA_API_KEY": "test-key",
        "ALPACA_API_SECRET": "test-secret",
        "ALPACA_TRADING_URL": fake.url,
        "ALPACA_DATA_URL": fake.url,
        "DATABASE_URL": f"sqlite:///{db}",
        "TRADEBOT_SYMBOLS": "AAPL",
        "TRADEBOT_TIMEFRAME": "1m",
        "TRADEBOT_HISTORY_BARS": "60",
        "LOG_LEVEL": "WARNING",
    }
    env.update(extra)
    return env


def app_for(fake: FakeAlpaca, db: Path, **extra: str):
    return take_lease(
        build_app(Settings.from_mapping(env_for(fake, db, **extra)), accelerate=False, clock=ManualClock(NOW))
    )


def events(app, kind: EventKind):
    return [e for e in app.service.recent_events(limit=200) if e.kind is kind]


def test_paper_account_banner(fake, tmp_path):
    app = app_for(fake, tmp_path / "t.db")
    assert app.mode == "paper" and app.broker.name == "alpaca"
    assert any("PAPER" in line for line in app.banner)


def test_supertrend_flip_places_exactly_one_bracket_sized_by_risk(fake, tmp_path):
    fake.set_bars("AAPL", flip_up())
    settings = Settings.from_mapping(env_for(fake, tmp_path / "t.db"))
    app = take_lease(build_app(settings, accelerate=False, clock=ManualClock(NOW)))
    report = app.engine.tick()
    assert report.signals == 1 and not report.data_problems
    posts = fake.requests_to("POST", "/v2/orders")
    assert len(posts) == 1
    body = posts[0].body
    limits = RiskLimits.from_settings(settings)
    stop, target = protective_levels(limits, 115.0)
    qty = position_size(limits, symbol="AAPL", equity=100_000, cash=100_000, entry=115.0, stop=stop)
    assert qty == 173  # 20 % of equity at 115, whole shares
    assert body["qty"] == qty and body["side"] == "buy" and body["order_class"] == "bracket"
    assert body["stop_loss"] == {"stop_price": stop} and body["take_profit"] == {"limit_price": target}
    assert body["client_order_id"].startswith("tb-supertrend")
    # a market order on a liquid symbol fills inside the POST; the cycle's sync records it
    order = app.service.order(body["client_order_id"])
    assert order.status is OrderStatus.FILLED and order.broker_order_id == fake.top_orders()[0].id

    # the same cycle again, and a fresh process on the same database: nothing new is sent
    app.engine.tick()
    app_for(fake, tmp_path / "t.db").engine.tick()
    assert len(fake.requests_to("POST", "/v2/orders")) == 1
    # even a fresh process on an empty database cannot double it (Alpaca has the client id)
    app_for(fake, tmp_path / "other.db").engine.tick()
    assert len(fake.top_orders()) == 1

    # the position carries its protection, on record and at Alpaca (the stop leg held)
    app.service.sync()
    (position,) = app.service.positions()
    assert (position.symbol, position.qty, position.stop_loss, position.take_profit) == (
        "AAPL",
        qty,
        stop,
        target,
    )
    assert len(events(app, EventKind.ORDER_FILLED)) == 1
    (cover,) = app.service.protection()
    assert cover.ok and cover.covered == qty and cover.stop == stop and "held stop leg" in cover.note


def test_500_after_the_server_accepted_leaves_one_order_recorded_as_placed(fake, tmp_path):
    fake.set_bars("AAPL", flip_up())
    fake.fail_after_accept = [500]
    app = app_for(fake, tmp_path / "t.db")
    report = app.engine.tick()
    assert [o.status for o in report.orders] == ["placed"]
    assert len(fake.top_orders()) == 1 and len(fake.requests_to("POST", "/v2/orders")) == 1
    app.engine.tick()
    assert len(fake.top_orders()) == 1


def test_stale_bars_block_trading_and_alert(fake, tmp_path):
    fake.set_bars("AAPL", flip_up(end=LAST_BAR - timedelta(minutes=30)))
    app = app_for(fake, tmp_path / "t.db", TRADEBOT_HISTORY_BARS="100")
    report = app.engine.tick()
    assert "AAPL" in report.data_problems and report.signals == 0
    assert fake.requests_to("POST", "/v2/orders") == []
    (alert,) = events(app, EventKind.DATA_OUTAGE)
    assert alert.symbol == "AAPL"


def test_nan_bars_block_trading_and_alert(fake, tmp_path):
    bars = flip_up()
    bars.close[-5] = np.nan
    fake.set_bars("AAPL", bars)
    app = app_for(fake, tmp_path / "t.db")
    report = app.engine.tick()
    assert "NaN" in report.data_problems["AAPL"] or "nan" in report.data_problems["AAPL"].lower()
    assert fake.requests_to("POST", "/v2/orders") == []
    assert len(events(app, EventKind.DATA_OUTAGE)) == 1


def test_polygon_serves_the_cycle_when_alpaca_data_is_down(fake, tmp_path):
    fake.data_outage = True
    with FakePolygon() as polygon:
        polygon.set_bars("AAPL", flip_up())
        app = app_for(fake, tmp_path / "t.db", POLYGON_API_KEY="poly-key", POLYGON_BASE_URL=polygon.url)
        report = app.engine.tick()
    assert report.signals == 1 and len(fake.requests_to("POST", "/v2/orders")) == 1
    assert app.source.served == {"AAPL": "polygon"}


def test_reconciliation_adopts_a_position_that_appeared_at_the_broker(fake, tmp_path):
    app = app_for(fake, tmp_path / "t.db")
    fake.add_position("MSFT", 5, 300.0, current=310.0)
    fake.add_position("BTC/USD", 0.25, 40_000.0)
    diffs = app.service.reconcile()
    assert any("adopted MSFT" in d for d in diffs) and any("adopted BTC/USD" in d for d in diffs)
    positions = {p.symbol: p for p in app.service.positions()}
    assert positions["MSFT"].qty == 5 and positions["MSFT"].avg_price == 300.0
    assert positions["BTC/USD"].qty == 0.25
    # adopted with no stop at Alpaca and none on record: the invariant is broken, and said so once
    assert len(events(app, EventKind.RECONCILE_DIFF)) == 4
    assert sum("NO stop" in d and "no stop level" in d for d in diffs) == 2
    assert app.service.reconcile() == []  # in line now: no repeated alert


def test_wrong_keys_stop_start_up_with_a_clear_message(fake, tmp_path):
    with pytest.raises(StartupError, match="ALPACA_API_KEY") as info:
        app_for(fake, tmp_path / "t.db", ALPACA_API_SECRET="wrong-secret")
    assert "wrong-secret" not in str(info.value)


def test_tradebot_tick_with_wrong_keys_exits_non_zero(fake, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALPACA_", "POLYGON_", "TELEGRAM_"))}
    env.update(env_for(fake, tmp_path / "t.db", ALPACA_API_SECRET="wrong-secret"))
    env["PYTHONPATH"] = str(ROOT)
    result = subprocess.run(
        [sys.executable, "-m", "bot", "tick"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "ALPACA_API_KEY" in result.stderr and "401" in result.stderr
    assert "wrong-secret" not in result.stderr + result.stdout
    assert fake.requests_to("POST", "/v2/orders") == []


def test_reconciliation_puts_back_a_positions_bracket_once_it_is_gone(fake, tmp_path):
    fake.set_bars("AAPL", flip_up())
    app = app_for(fake, tmp_path / "t.db")
    app.engine.tick()  # the entry fills inside the POST
    (entry,) = fake.top_orders()
    assert app.service.reconcile() == []  # protected by its bracket legs (the stop held)
    fake.cancel(entry.legs[0].client_order_id)  # someone cancels the legs in Alpaca's dashboard
    (diff,) = app.service.reconcile()
    assert diff.startswith("AAPL had no stop for 173 of 173 at Alpaca: put back")
    assert any("put back" in e.message for e in events(app, EventKind.RECONCILE_DIFF))
    working = [o for o in fake.all_orders() if o.is_live]
    assert sorted(o.type for o in working) == ["limit", "stop"] and all(
        o.order_class == "oco" for o in working
    )
    assert app.service.reconcile() == []  # protected again: no alert at every reconciliation
