"""The whole bot on Alpaca (``build_app``, alpaca-py over HTTP to the strict fake): the stop that fires
while an exit's cancel is in flight, for the exits nobody types (a strategy's, in the cycle
``tradebot tick`` runs) and the web dashboard's; the invariant shown by /status, the web status
and ``tradebot doctor``.
"""

from __future__ import annotations

import io
from datetime import timedelta

import httpx
import numpy as np
import pytest

from bot.bars import NS, Bars
from bot.commands import Caller
from bot.doctor import run_doctor
from tests.fakes.alpaca import FakeAlpaca
from tests.test_alpaca_e2e import LAST_BAR, NOW, app_for, env_for, flip_up
from tests.test_doctor import restore_logging  # noqa: F401  (autouse: the doctor installs its log handlers)
from tests.webapp import WebThread

TOKEN = "script-token-0123456789abcdef"


def flip_down(n: int = 60, end=LAST_BAR) -> Bars:
    """A steady rise, then a last bar that closes far below Supertrend's band: a SELL flip."""
    close = 100 + 0.3 * np.arange(n)
    close[-1] = 100.0
    high, low = close + 0.5, close - 0.5
    high[-1] = close[-2] + 0.5
    start = int(end.timestamp()) - (n - 1) * 60
    times = np.array([(start + 60 * i) * NS for i in range(n)], dtype=np.int64)
    return Bars(times, close.copy(), high, low, close, np.full(n, 1000.0))


@pytest.fixture
def fake():
    with FakeAlpaca() as server:
        server.clock.set(NOW)
        yield server


def sell_executions(fake: FakeAlpaca) -> list[str]:
    return [a["qty"] for a in fake.activities if a["side"] == "sell"]


def entered(fake: FakeAlpaca, tmp_path, **env: str):
    """A Supertrend entry that filled inside its POST: 173 AAPL under a bracket (stop leg held)."""
    fake.set_bars("AAPL", flip_up())
    app = app_for(fake, tmp_path / "t.db", **env)
    report = app.engine.tick()
    assert [o.status for o in report.orders] == ["filled"] or fake.positions["AAPL"].qty == 173
    return app


def test_a_strategy_exit_in_the_cycle_never_sells_what_its_stop_sold_while_being_canceled(fake, tmp_path):
    """Before: the unattended exit sold 173 a second time: a naked short of about $18.7k."""
    entered(fake, tmp_path)
    later = NOW + timedelta(minutes=1)
    fake.set_bars("AAPL", flip_down(end=LAST_BAR + timedelta(minutes=1)))
    fake.clock.set(later)
    fake.stop_fires_on_cancel = True
    app = app_for(fake, tmp_path / "t.db")  # the next `tradebot tick`: a new process on the same books
    app.clock.set(later)  # type: ignore[attr-defined]
    report = app.engine.tick()
    assert report.signals == 1
    (outcome,) = report.orders
    assert outcome.status == "rejected" and "its stop-loss sold 173 first" in outcome.message
    assert "AAPL" not in fake.positions and sell_executions(fake) == ["173"]
    app.service.sync()
    assert app.service.positions() == []
    assert [t.exit_reason for t in app.service.trades()] == ["stop_loss"]


def test_a_web_sell_never_sells_what_its_stop_sold_while_being_canceled(fake, tmp_path):
    env = {"TRADEBOT_WEB_PORT": "0", "TRADEBOT_WEB_PASSWORD": "pw-0123456789", "TRADEBOT_WEB_TOKEN": TOKEN}
    app = entered(fake, tmp_path, **env)
    fake.stop_fires_on_cancel = True
    with WebThread(app) as web, httpx.Client(base_url=web.url, timeout=30) as client:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        asked = client.post(
            "/api/v1/orders", json={"side": "sell", "symbol": "AAPL", "qty": "all"}, headers=headers
        )
        assert asked.status_code == 200, asked.text
        token = asked.json()["confirmation"]["id"]
        done = client.post(f"/api/v1/confirmations/{token}", headers=headers)
        assert "its stop-loss sold 173 first" in done.json()["text"], done.text
        assert "AAPL" not in fake.positions and sell_executions(fake) == ["173"]
        status = client.get("/api/v1/status", headers=headers).json()
        assert status["protection"] == [] and status["protection_error"] == ""
    app.db.dispose()


def test_status_the_web_status_and_doctor_show_each_positions_stop_at_alpaca(fake, tmp_path):
    env = {"TRADEBOT_WEB_PORT": "0", "TRADEBOT_WEB_PASSWORD": "pw-0123456789", "TRADEBOT_WEB_TOKEN": TOKEN}
    app = entered(fake, tmp_path, **env)
    fake.add_position("MSFT", 5, 300.0)  # placed by hand, no stop anywhere
    fake.shorting_enabled = True
    assert (
        "Alpaca account: orders allowed; shorting enabled (a sell beyond the position would open a short)."
        in app.banner
    )
    caller = Caller("console", chat_id=1, user_id=7, name="ann")
    text = app.router.handle("/status", caller).text
    assert "Stops at the broker:" in text
    assert "AAPL 173: ok at 112.70 (held stop leg)" in text, text
    assert "MSFT 5: UNPROTECTED (NO stop for 5 of 5 at Alpaca)" in text, text

    with WebThread(app) as web, httpx.Client(base_url=web.url, timeout=30) as client:
        status = client.get("/api/v1/status", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    stops = {c["symbol"]: c for c in status["protection"]}
    assert stops["AAPL"]["ok"] and stops["AAPL"]["covered"] == 173 and stops["AAPL"]["state"] == "protected"
    assert not stops["MSFT"]["ok"] and stops["MSFT"]["state"] == "unprotected"

    out = io.StringIO()
    code = run_doctor(env_file=None, environ=env_for(fake, tmp_path / "t.db"), out=out, timeout=5)
    report = out.getvalue()
    assert code == 1, report
    assert "ok    broker        Alpaca account: orders allowed; shorting enabled" in report, report
    assert "ok    broker        AAPL 173: stop protected at 112.70 (held stop leg)" in report, report
    assert "FAIL  broker        MSFT 5: stop unprotected (NO stop for 5 of 5 at Alpaca)" in report, report
    app.db.dispose()
