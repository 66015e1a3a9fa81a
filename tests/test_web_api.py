"""The web server over real HTTP (httpx) and a real WebSocket: reads, actions, and every refusal.

Each test runs ``bot.web.server.start_web`` on a free loopback port in a background thread around
an app on a temporary SQLite file (simulated market, hand-moved clock), holding the trading lease
as ``tradebot run`` would.
"""

from __future__ import annotations

import json
import logging

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from bot.domain import EventKind
from bot.views import TickReport
from tests.helpers import make_app
from tests.webapp import WebThread, csrf_of, logged_in, login

PASSWORD = "correct horse battery staple"
TOKEN = "script-token-0123456789abcdef"


def build(tmp_path, *, hold_lease=True, cycles=0, **env):
    settings = {
        "TRADEBOT_SYMBOLS": "AAPL,BTC/USD",
        "TRADEBOT_WEB_PORT": "0",
        "TRADEBOT_WEB_PASSWORD": PASSWORD,
        "TRADEBOT_WEB_TOKEN": TOKEN,
        "TRADEBOT_WEB_USER": "ann",
        **env,
    }
    app, clock = make_app(tmp_path / "bot.db", **settings)
    if not hold_lease:  # another instance takes over: this one is on standby
        from bot.lease import Lease

        app.lease.release()
        assert Lease(app.db, seconds=600).try_acquire()
    for _ in range(cycles):  # bars, an equity curve, perhaps trades
        clock.advance(minutes=1)
        app.engine.tick()
    return app, clock


@pytest.fixture
def web(tmp_path):
    app, clock = build(tmp_path)
    with WebThread(app) as running:
        running.clock = clock
        yield running
    app.db.dispose()


@pytest.fixture
def session(web):
    client, csrf = logged_in(web.url, PASSWORD)
    yield client, csrf
    client.close()


def bearer():
    return {"Authorization": f"Bearer {TOKEN}"}


# ---------------------------------------------------------------------- refusals


def test_nothing_without_credentials(web):
    with httpx.Client(base_url=web.url) as anonymous:
        for path in ("/api/v1/status", "/api/v1/positions", "/api/v1/trades.csv", "/api/openapi.json"):
            answer = anonymous.get(path)
            assert answer.status_code == 401, path
            assert answer.json()["detail"].startswith("login required")
        page = anonymous.get("/", follow_redirects=False)
        assert page.status_code == 303 and page.headers["location"].startswith("/login")
        assert anonymous.post("/api/v1/pause").status_code == 401
        assert anonymous.get("/api/v1/status", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert not web.app.service.paused()


def test_wrong_password_and_missing_login_nonce_are_refused(web):
    with httpx.Client(base_url=web.url) as client:
        answer = login(client, "not the password")
        assert answer.status_code == 401 and "Wrong password" in answer.text
        assert "tradebot_session" not in client.cookies
        # A form posted without the nonce cookie the login page set (a cross-site login attempt):
        bare = httpx.post(f"{web.url}/login", data={"nonce": "x", "password": PASSWORD})
        assert bare.status_code == 403 and "expired" in bare.text


def test_logins_are_rate_limited(web):
    with httpx.Client(base_url=web.url) as client:
        for _ in range(5):
            assert login(client, "guess").status_code == 401
        blocked = login(client, PASSWORD)  # even the right password waits now
        assert blocked.status_code == 429 and "too many failed logins" in blocked.text
        assert int(blocked.headers["retry-after"]) >= 1


def test_session_cookie_is_httponly_samesite_and_secure_behind_https(web):
    with httpx.Client(base_url=web.url) as client:
        login(client, PASSWORD)
        plain = next(c for c in client.cookies.jar if c.name == "tradebot_session")
        assert plain.has_nonstandard_attr("HttpOnly") and not plain.secure
    with httpx.Client(base_url=web.url, headers={"X-Forwarded-Proto": "https"}) as client:
        form = client.get("/login")
        nonce = form.text.split('name="nonce" value="')[1].split('"')[0]
        answer = client.post(
            "/login", data={"nonce": nonce, "password": PASSWORD, "next": "/"}, follow_redirects=False
        )
        cookie = answer.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "secure" in cookie


def test_state_changes_need_the_csrf_token(web, session):
    client, csrf = session
    assert client.post("/api/v1/pause").status_code == 403
    assert client.post("/api/v1/pause", headers={"X-CSRF-Token": "forged"}).status_code == 403
    assert not web.app.service.paused()
    answer = client.post("/api/v1/pause", headers={"X-CSRF-Token": csrf})
    assert answer.status_code == 200 and answer.json()["text"].startswith("Paused")
    assert web.app.service.paused()
    # A script's bearer token carries no ambient credential: no CSRF token needed.
    assert httpx.post(f"{web.url}/api/v1/resume", headers=bearer()).json()["text"].startswith("Resumed")


def test_every_state_changing_route_refuses_without_csrf(web, session):
    client, _ = session

    def walk(routes):  # FastAPI keeps included routers as one entry each
        for route in routes:
            if hasattr(route, "original_router"):
                yield from walk(route.original_router.routes)
            else:
                yield route

    routes = [
        (method, route.path)
        for route in walk(web.server.asgi.routes)
        for method in getattr(route, "methods", None) or ()
        if method in {"POST", "PUT", "PATCH", "DELETE"}
        and route.path != "/login"  # its own double-submit nonce
    ]
    assert len(routes) >= 8
    for method, path in routes:
        url = path.replace("{confirmation_id}", "0123abcd")
        answer = client.request(method, url, json={"name": "max_open_trades", "value": 3})
        assert answer.status_code == 403, (method, path, answer.text)
        assert "CSRF" in answer.text


def test_websocket_needs_a_session(web, session):
    ws_url = web.url.replace("http://", "ws://") + "/api/v1/ws"
    with pytest.raises(InvalidStatus) as refused:
        connect(ws_url, open_timeout=5).close()
    assert refused.value.response.status_code == 403
    client, _ = session
    cookie = f"tradebot_session={client.cookies['tradebot_session']}"
    with pytest.raises(InvalidStatus):  # a page on another site using the trader's cookie
        connect(ws_url, additional_headers={"Cookie": cookie, "Origin": "https://evil.example"}).close()
    with connect(ws_url, additional_headers={"Cookie": cookie, "Origin": web.url}) as socket:
        assert json.loads(socket.recv(5))["type"] == "hello"


def test_non_loopback_bind_without_credentials_refuses_to_start(tmp_path):
    from bot.config import Settings
    from bot.web.config import WebConfig, WebConfigError

    with pytest.raises(WebConfigError, match="TRADEBOT_WEB_PASSWORD"):
        WebConfig.from_settings(Settings.from_mapping({"TRADEBOT_WEB_HOST": "0.0.0.0"}))
    with pytest.raises(WebConfigError):  # Heroku's $PORT means every interface
        WebConfig.from_settings(Settings.from_mapping({"PORT": "5000"}))
    assert WebConfig.from_settings(Settings.from_mapping({"PORT": "5000", "TRADEBOT_WEB_PASSWORD": PASSWORD}))
    local = WebConfig.from_settings(Settings.from_mapping({}))
    assert (
        local is not None and local.host == "127.0.0.1" and local.port == 8000 and not local.has_credentials
    )


def test_standby_instance_is_read_only(tmp_path):
    app, _ = build(tmp_path, hold_lease=False)  # another instance trades: this one is on standby
    with WebThread(app) as running:
        client, csrf = logged_in(running.url, PASSWORD)
        try:
            assert client.get("/healthz").json()["role"] == "standby"
            status = client.get("/api/v1/status").json()
            assert status["read_only"] and status["state"] == "standby"
            refused = client.post("/api/v1/pause", headers={"X-CSRF-Token": csrf})
            assert refused.status_code == 409 and "read-only" in refused.json()["detail"]
            assert not app.service.paused()
            assert client.get("/api/v1/positions").status_code == 200
        finally:
            client.close()
    app.db.dispose()


# ---------------------------------------------------------------------- one-time login link


def test_one_time_login_link_without_credentials(tmp_path):
    app, _ = build(tmp_path, TRADEBOT_WEB_PASSWORD="", TRADEBOT_WEB_TOKEN="")
    with WebThread(app) as running:
        assert running.server.config.host == "127.0.0.1"
        link = running.login_link()
        with httpx.Client() as browser:
            first = browser.get(link, follow_redirects=True)
            assert first.status_code == 200 and 'data-page="overview"' in first.text
            assert browser.get(link.replace("/login", "/api/v1/status").split("?")[0]).status_code == 200
        with httpx.Client() as second:
            reused = second.get(link)
            assert reused.status_code == 403 and "already used" in reused.text
        assert running.login_link() != link  # a fresh one was printed for another browser
        assert httpx.get(f"{running.url}/login").text.count('type="password"') == 0
    app.db.dispose()


# ---------------------------------------------------------------------- reads


def test_reads_answer_json_for_every_page(web, session):
    client, _ = session
    for _ in range(30):
        web.clock.advance(minutes=1)
        web.app.engine.tick()
    status = client.get("/api/v1/status").json()
    assert (
        status["mode"] == "sim" and status["state"] == "active" and status["symbols"] == ["AAPL", "BTC/USD"]
    )
    overview = client.get("/api/v1/overview").json()
    assert set(overview) == {"status", "positions", "orders", "events"}
    assert any(e["kind"] == "started" or e["kind"] for e in overview["events"])
    bars = client.get("/api/v1/bars/BTC/USD").json()
    assert bars["symbol"] == "BTC/USD" and len(bars["time"]) == len(bars["close"]) > 20
    [(label, line)] = bars["lines"].items()
    assert label.startswith("supertrend") and len(line) == len(bars["time"])
    assert any(v is not None for v in line)
    assert client.get("/api/v1/bars/NOPE").status_code == 404
    assert client.get("/api/v1/equity").json()["points"]
    [strategy] = client.get("/api/v1/strategies").json()
    assert strategy["name"] == "supertrend" and {p["name"] for p in strategy["params"]} == {
        "period",
        "multiplier",
    }
    risk = client.get("/api/v1/risk").json()
    assert {limit["source"] for limit in risk["limits"]} == {"built-in default"}
    assert client.get("/api/v1/pnl").json()["equity"] > 0
    assert client.get("/api/v1/events", params={"kind": "nonsense"}).status_code == 404
    kinds = client.get("/api/v1/events/kinds").json()
    assert kinds == [kind.value for kind in EventKind] and "database_down" in kinds
    assert all(client.get("/api/v1/events", params={"kind": k}).status_code == 200 for k in kinds)
    assert all(
        e["kind"] == "started" for e in client.get("/api/v1/events", params={"kind": "started"}).json()
    )


def test_buy_confirm_fill_and_export(web, session):
    client, csrf = session
    headers = {"X-CSRF-Token": csrf}
    asked = client.post("/api/v1/orders", json={"side": "buy", "symbol": "AAPL", "qty": "3"}, headers=headers)
    confirmation = asked.json()["confirmation"]
    assert confirmation["prompt"] == "Confirm: buy 3 AAPL at market?"
    assert not web.app.service.positions()  # nothing happens before the confirmation
    done = client.post(f"/api/v1/confirmations/{confirmation['id']}", headers=headers).json()
    assert done["text"].startswith("Done: Bought 3 AAPL at") and done["confirmation"] is None
    again = client.post(f"/api/v1/confirmations/{confirmation['id']}", headers=headers).json()
    assert again["text"].startswith("Nothing to confirm")  # one order, however often it is clicked
    [position] = client.get("/api/v1/positions").json()
    assert (
        position["symbol"] == "AAPL"
        and position["qty"] == 3
        and position["stop_loss"] < position["avg_price"]
    )
    [order] = client.get("/api/v1/orders", params={"symbol": "aapl", "side": "buy"}).json()
    assert order["reason"] == "manual by ann (web)" and order["status"] == "filled"
    assert client.get("/api/v1/orders", params={"side": "sell"}).json() == []
    csv_text = client.get("/api/v1/orders.csv").text.splitlines()
    assert (
        csv_text[0].startswith("client_order_id,symbol,side,qty,status")
        and "AAPL,buy,3.0,filled" in csv_text[1]
    )
    sold = client.post(
        "/api/v1/orders", json={"side": "sell", "symbol": "AAPL", "qty": "all"}, headers=headers
    )
    client.post(f"/api/v1/confirmations/{sold.json()['confirmation']['id']}", headers=headers)
    [trade] = client.get("/api/v1/trades").json()
    assert trade["exit_reason"] == "manual"
    exported = client.get("/api/v1/trades.csv", params={"symbol": "AAPL"})
    assert exported.headers["content-disposition"] == 'attachment; filename="trades.csv"'
    assert exported.text.splitlines()[1].startswith("AAPL,manual,3.0,")
    assert client.get("/api/v1/trades", params={"symbol": "MSFT"}).json() == []
    day = trade["exit_time"][:10]  # a date picker's value: no time, no zone (read as UTC)
    assert len(client.get("/api/v1/trades", params={"since": day}).json()) == 1
    assert client.get("/api/v1/trades", params={"until": day}).json() == []
    assert client.get("/api/v1/trades", params={"result": "maybe"}).status_code == 422


def test_a_confirmation_belongs_to_the_session_that_asked(web, session):
    client, csrf = session
    asked = client.post("/api/v1/flatten", headers={"X-CSRF-Token": csrf}).json()
    assert asked["text"].startswith("No open positions") or asked["confirmation"]
    buy = client.post(
        "/api/v1/orders", json={"side": "buy", "symbol": "AAPL", "qty": "1"}, headers={"X-CSRF-Token": csrf}
    ).json()["confirmation"]["id"]
    other, other_csrf = logged_in(web.url, PASSWORD)
    stolen = other.post(f"/api/v1/confirmations/{buy}", headers={"X-CSRF-Token": other_csrf}).json()
    other.close()
    assert stolen["text"] == "This confirmation belongs to another chat."
    assert not web.app.service.positions()


def test_cancel_order_goes_through_the_command_and_explains_a_refusal(web, session):
    client, csrf = session
    headers = {"X-CSRF-Token": csrf}
    asked = client.post("/api/v1/orders", json={"side": "buy", "symbol": "AAPL", "qty": "1"}, headers=headers)
    client.post(f"/api/v1/confirmations/{asked.json()['confirmation']['id']}", headers=headers)
    [order] = client.get("/api/v1/orders", params={"symbol": "AAPL"}).json()
    cid = order["client_order_id"]
    answer = client.delete(f"/api/v1/orders/{cid}", headers=headers).json()
    # The simulated exchange filled it at once: nothing is left to cancel, and no question asked.
    assert answer == {
        "text": f"Not canceled: order {cid} is filled already: nothing left to cancel.",
        "confirmation": None,
    }
    assert client.delete("/api/v1/orders/no%20such", headers=headers).status_code == 422


def test_risk_set_is_confirmed_and_its_source_shown(web, session):
    client, csrf = session
    headers = {"X-CSRF-Token": csrf}
    out_of_bounds = client.post(
        "/api/v1/risk", json={"name": "max_open_trades", "value": 500}, headers=headers
    )
    assert out_of_bounds.json()["text"].startswith("Not changed: max_open_trades must be between 1 and 50")
    asked = client.post("/api/v1/risk", json={"name": "max_open_trades", "value": 3}, headers=headers).json()
    client.post(f"/api/v1/confirmations/{asked['confirmation']['id']}", headers=headers)
    limits = {limit["name"]: limit for limit in client.get("/api/v1/risk").json()["limits"]}
    assert limits["max_open_trades"]["value"] == 3
    assert (
        limits["max_open_trades"]["source"] == "/risk set (Risk limit max_open_trades set to 3 by ann (web))"
    )


def test_risk_source_names_the_environment(tmp_path):
    app, _ = build(tmp_path, RISK_PER_TRADE_PCT="1")
    with WebThread(app) as running, httpx.Client(base_url=running.url, headers=bearer()) as script:
        limits = {limit["name"]: limit for limit in script.get("/api/v1/risk").json()["limits"]}
    assert limits["risk_per_trade_pct"]["source"] == "environment (RISK_PER_TRADE_PCT)"
    assert limits["stop_loss_pct"]["source"] == "built-in default"
    app.db.dispose()


def test_pause_from_the_api_is_recorded_with_the_web_user(web, session):
    client, csrf = session
    client.post("/api/v1/pause", headers={"X-CSRF-Token": csrf})
    [event] = web.app.service.recent_events(1, EventKind.PAUSED)
    assert event.message.startswith("Trading paused by ann (web)")
    from bot.commands import Caller

    reply = web.app.router.handle("/status", Caller(transport="console", chat_id=0))
    assert "State: PAUSED since" in reply.text and "by ann (web)" in reply.text


# ---------------------------------------------------------------------- live events


def test_events_stream_live_and_resume_after_a_reconnection(web, session):
    client, _ = session
    ws_url = web.url.replace("http://", "ws://") + "/api/v1/ws"
    headers = {"Cookie": f"tradebot_session={client.cookies['tradebot_session']}"}
    with connect(ws_url, additional_headers=headers) as socket:
        hello = json.loads(socket.recv(5))
        web.app.service.emit(EventKind.INFO, "first live event")
        message = json.loads(socket.recv(5))
        assert message["type"] == "event" and message["event"]["message"] == "first live event"
        seen = message["event"]["id"]
        assert seen > hello["last_id"]
    web.app.service.emit(EventKind.INFO, "missed while away")
    with connect(f"{ws_url}?after={seen}", additional_headers=headers) as socket:
        assert json.loads(socket.recv(5))["type"] == "hello"
        replayed = json.loads(socket.recv(5))
        assert replayed["event"]["message"] == "missed while away"
        web.call(web.server.cycle_finished, None)  # nothing to say without a report
        web.app.service.emit(EventKind.INFO, "and then live again")
        assert json.loads(socket.recv(5))["event"]["message"] == "and then live again"
        now = web.clock.now()
        web.server.cycle_finished(
            TickReport(started=now, finished=now, signals=2)
        )  # from the engine's thread
        cycle = json.loads(socket.recv(5))
        assert cycle["type"] == "cycle" and cycle["cycle"]["signals"] == 2
        web.call(web.server.ctx.hub.close)  # shutting down: the stream says so and ends
        assert json.loads(socket.recv(5)) == {"type": "closing"}


# ---------------------------------------------------------------------- pages, docs, secrets


def test_pages_docs_and_assets_are_served_without_a_cdn(web, session):
    client, _ = session
    for path in ("/", "/equity", "/trades", "/orders", "/strategies", "/risk", "/events", "/symbol/BTC/USD"):
        page = client.get(path)
        assert page.status_code == 200 and csrf_of(page.text), path
        assert "https://" not in page.text and "http://" not in page.text
    docs = client.get("/api/docs")
    assert "/static/vendor/swagger-ui-bundle.js" in docs.text and "cdn" not in docs.text
    spec = client.get("/api/openapi.json").json()
    assert {"/api/v1/status", "/api/v1/bars/{symbol}", "/api/v1/confirmations/{confirmation_id}"} <= set(
        spec["paths"]
    )
    for name in ("lightweight-charts.js", "swagger-ui-bundle.js", "swagger-ui.css"):
        assert client.get(f"/static/vendor/{name}").status_code == 200
    for name in ("core.js", "pages.js", "chart.js", "style.css"):
        assert client.get(f"/static/{name}").status_code == 200
    assert client.get("/static/%2e%2e%2fconfig.py").status_code in {404, 405}  # never a file outside
    assert client.get("/static/vendor/evil.js").status_code == 404
    assert client.get("/favicon.ico").status_code == 404
    assert client.post("/telegram").status_code == 404  # no webhook configured: no such route
    headers = client.get("/").headers
    assert "script-src 'self'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY" and headers["referrer-policy"] == "no-referrer"


def test_logout_ends_the_session(web, session):
    client, csrf = session
    assert client.post("/logout").status_code == 403
    assert client.post("/logout", headers={"X-CSRF-Token": csrf}).status_code == 200
    with httpx.Client(base_url=web.url) as again:
        again.cookies.set("tradebot_session", client.cookies.get("tradebot_session") or "gone")
        assert again.get("/api/v1/status").status_code == 401


def test_no_secret_in_pages_answers_or_logs(web, session, caplog):
    client, _ = session
    caplog.set_level(logging.DEBUG)
    bodies = [client.get(path).text for path in ("/", "/risk", "/api/v1/status", "/api/v1/risk", "/api/docs")]
    bodies.append(httpx.get(f"{web.url}/login").text)
    bodies.append(client.get("/api/openapi.json").text)
    for text in [*bodies, caplog.text, repr(web.server.config)]:
        assert PASSWORD not in text and TOKEN not in text


def test_a_taken_port_is_refused_when_asked_for_and_skipped_when_default(tmp_path, monkeypatch):
    import asyncio
    import socket

    from bot.web import config as web_config
    from bot.web.server import WebStartError, start_web

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    try:
        app, _ = build(tmp_path, TRADEBOT_WEB_PORT=str(port))
        with pytest.raises(WebStartError, match=f"port {port} on 127.0.0.1 is in use: set TRADEBOT_WEB_PORT"):
            asyncio.run(start_web(app, print))
        monkeypatch.setattr(web_config, "DEFAULT_PORT", port)
        said: list[str] = []
        default = app.settings.with_overrides(tradebot_web_port="auto")
        app.settings = default
        assert asyncio.run(start_web(app, said.append)) is None
        assert said == [
            f"Dashboard off: port {port} on 127.0.0.1 is in use: set TRADEBOT_WEB_PORT to another port (or off)"
        ]
        app.db.dispose()
    finally:
        taken.close()


def test_connections_are_served_without_nagle_delay(web):
    """Every accepted connection has TCP_NODELAY: uvicorn writes a response's headers and body
    apart, and with Nagle's algorithm on, the body of each request after a kept-alive
    connection's first waited for the client's delayed ACK (40 ms a request, issue 13)."""
    import socket

    def nodelay_flags() -> list[int]:
        flags = []
        for connection in web.server.server.server_state.connections:
            sock = connection.transport.get_extra_info("socket")
            flags.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        return flags

    with httpx.Client(base_url=web.url, headers=bearer()) as client:
        for _ in range(2):  # the same kept-alive connection twice
            assert client.get("/api/v1/version").status_code == 200
        flags = web.call(nodelay_flags)
    assert flags and all(flags), flags


def test_a_confirmation_refused_after_a_change_answers_with_the_new_question(web, session):
    """Issue 18, point 2, over the API: /flatten asked with one position, a second opens, the
    POST of the first confirmation does nothing and answers with the new question."""
    client, csrf = session
    headers = {"X-CSRF-Token": csrf}
    bought = client.post(
        "/api/v1/orders", json={"side": "buy", "symbol": "AAPL", "qty": "2"}, headers=headers
    )
    client.post(f"/api/v1/confirmations/{bought.json()['confirmation']['id']}", headers=headers)
    asked = client.post("/api/v1/flatten", headers=headers).json()
    assert asked["text"] == "Confirm: close the 1 position (2 AAPL) at market?"  # no console hint
    bought = client.post(
        "/api/v1/orders", json={"side": "buy", "symbol": "BTC/USD", "qty": "0.01"}, headers=headers
    )
    client.post(f"/api/v1/confirmations/{bought.json()['confirmation']['id']}", headers=headers)

    refused = client.post(f"/api/v1/confirmations/{asked['confirmation']['id']}", headers=headers).json()
    new = refused["confirmation"]
    assert new["prompt"] == "Confirm: close all 2 positions (2 AAPL, 0.01 BTC/USD) at market?"
    assert new["replaces"] == (
        "Not done: things changed since you were asked to close the 1 position (2 AAPL) at market."
    )
    assert refused["text"] == f"{new['replaces']}\n{new['prompt']}"
    assert sorted(p["symbol"] for p in client.get("/api/v1/positions").json()) == ["AAPL", "BTC/USD"]
    done = client.post(f"/api/v1/confirmations/{new['id']}", headers=headers).json()
    assert done["text"].count("Done: Sold") == 2 and done["confirmation"] is None
    assert client.get("/api/v1/positions").json() == []


def test_risk_reset_over_the_api_asks_and_refuses_after_a_change(web, session):
    client, csrf = session
    headers = {"X-CSRF-Token": csrf}
    web.app.service.set_risk("max_open_trades", 3, by="bob")
    asked = client.delete("/api/v1/risk/all", headers=headers).json()
    assert asked["confirmation"]["prompt"] == "Confirm: reset max_open_trades from 3 to 5?"
    web.app.service.set_risk("max_open_trades", 4, by="bob")
    refused = client.post(f"/api/v1/confirmations/{asked['confirmation']['id']}", headers=headers).json()
    assert refused["confirmation"]["prompt"] == "Confirm: reset max_open_trades from 4 to 5?"
    assert web.app.service.limits().max_open_trades == 4
    client.post(f"/api/v1/confirmations/{refused['confirmation']['id']}", headers=headers)
    assert web.app.service.limits().max_open_trades == 5
    assert client.delete("/api/v1/risk/DROP%20TABLE", headers=headers).status_code == 422
