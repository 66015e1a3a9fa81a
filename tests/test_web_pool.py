"""The web server's database pool (issue 19 section 6): web requests have their own connections,
so they never take the engine's; a request that cannot get one within WEB_POOL_WAIT answers 503
at once instead of queueing for seconds. Real web server, real SQLite file, connections really
held (checked out of the pool by the test)."""

from __future__ import annotations

import contextlib

import httpx
import pytest

from storage.db import ENGINE_POOL_SIZE, WEB_POOL_SIZE
from tests.helpers import make_app
from tests.webapp import WebThread

TOKEN = "script-token-0123456789abcdef"


@pytest.fixture
def web(tmp_path):
    app, clock = make_app(
        tmp_path / "bot.db", TRADEBOT_SYMBOLS="AAPL", TRADEBOT_WEB_PORT="0", TRADEBOT_WEB_TOKEN=TOKEN
    )
    with WebThread(app) as running:
        running.clock = clock
        yield running
    app.db.dispose()


def test_a_request_that_gets_no_connection_answers_503_and_the_engine_goes_on(web):
    app = web.app
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=web.url + "/api/v1", headers=headers, timeout=30) as client:
        assert client.get("/status").status_code == 200
        assert app.db.web_engine.pool.checkedin() >= 1  # the request used the web server's pool
        with contextlib.ExitStack() as held:
            for _ in range(WEB_POOL_SIZE):  # every web connection busy (a slow report, say)
                held.enter_context(app.db.web_engine.connect())
            busy = client.get("/pnl")
            assert busy.status_code == 503
            assert busy.headers["Retry-After"] == "1"
            assert busy.json() == {"detail": "the database is busy: try again in a moment"}
            web.clock.advance(minutes=1)
            app.engine.tick()  # the engine's own connections: untouched by the web's
            assert app.service.status().last_tick is not None
        assert client.get("/pnl").status_code == 200  # connections back: answers again


def test_the_pools_are_sized_for_the_engine_and_the_web_threads(tmp_path):
    from storage.db import Database

    db = Database(f"sqlite:///{tmp_path / 'sized.db'}")
    try:
        assert db.engine.pool.size() == ENGINE_POOL_SIZE and db.web_engine.pool.size() == WEB_POOL_SIZE
    finally:
        db.dispose()
