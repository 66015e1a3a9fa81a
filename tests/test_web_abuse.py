"""Issue 19 item 1: the web server under abuse, from the outside.

The trading process's memory is the bot's life, so the body and header tests run against a real
``tradebot run`` process (``tests/processes.py``) and read its resident memory from ``/proc``;
they speak HTTP over raw sockets, so nothing is read that a client would not send. The login and
connection tests run the real uvicorn server on a loopback socket in a thread (``tests/webapp.py``),
with the connection clocks shortened where a test would otherwise wait out the real 10 and 30 s.
"""

from __future__ import annotations

import contextlib
import json
import selectors
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from tests import processes
from tests.helpers import make_app
from tests.webapp import WebThread, login

PASSWORD = "correct horse battery staple"
TOKEN = "script-token-0123456789abcdef"
MB = 1024 * 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS (now) and VmHWM (the peak so far) of a process, in kB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0])
    return fields


def raw_post(
    port: int, path: str, size: int, headers: str = "", *, chunked: bool = False
) -> tuple[int, int, bytes]:
    """POST ``size`` bytes of body from a raw socket, reading while sending: returns the status of
    the answer, how many body bytes the server let us push before it answered, and the answer."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    length = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {size}"
    sock.sendall(
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"{headers}{length}\r\n\r\n".encode()
    )
    block = b"x" * (256 * 1024)
    piece = f"{len(block):x}\r\n".encode() + block + b"\r\n" if chunked else block
    sock.setblocking(False)
    sent, answer, deadline = 0, b"", time.monotonic() + 60
    try:
        while b"\r\n\r\n" not in answer and time.monotonic() < deadline:
            readable, writable = readiness(sock, write=sent < size, timeout=1)
            if readable:
                data = sock.recv(65536)
                if not data:
                    break
                answer += data
            elif writable:
                try:
                    sent += sock.send(piece if sent + len(block) <= size else block[: size - sent])
                except (BlockingIOError, InterruptedError):
                    pass
                except (BrokenPipeError, ConnectionResetError):
                    break
        sock.setblocking(True)
        sock.settimeout(5)
        while True:  # the rest of the answer, until the server closes
            try:
                data = sock.recv(65536)
            except (TimeoutError, ConnectionResetError):
                break
            if not data:
                break
            answer += data
    finally:
        sock.close()
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0
    return status, sent, answer


def raw_request(port: int, head: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(head)
        answer = b""
        while True:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                return answer
            answer += data


# ---------------------------------------------------------------------- a real process


def start_bot(workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    """A real ``tradebot run`` with the dashboard (password and token) on a free port, answering."""
    port = free_port()
    env = processes.environment(
        f"sqlite:///{workdir / 'bot.db'}",
        TRADEBOT_WEB_PORT=str(port),
        TRADEBOT_WEB_PASSWORD=PASSWORD,
        TRADEBOT_WEB_TOKEN=TOKEN,
        TRADEBOT_SYMBOLS="AAPL,BTC/USD",
        DAILY_SUMMARY_TIME="off",
        TRADEBOT_LEASE_SECONDS="30",
    )
    process = processes.start(workdir, "bot", env, "run")
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return process, port
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(
                "the web server did not answer:\n" + processes.log_of(workdir, "bot")[-3000:]
            )
        time.sleep(0.1)


@pytest.fixture(scope="module")
def bot(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("web_abuse")
    process, port = start_bot(workdir)
    try:
        yield process, port, workdir
    finally:
        process.terminate()
        process.wait(30)


def test_a_huge_body_without_credentials_is_refused_before_it_is_read(bot):
    """It answered 422 after reading all of it, and grew the process by 800 MB."""
    process, port, _ = bot
    before = memory_kb(process.pid)
    for chunked in (False, True):
        status, sent, answer = raw_post(port, "/api/v1/orders", 200 * MB, chunked=chunked)
        assert status == 401, answer[:300]
        assert b"login required" in answer
        assert sent < 32 * MB, f"the server read {sent / MB:.0f} MB before answering"
    after = memory_kb(process.pid)
    assert after["VmRSS"] - before["VmRSS"] < 8 * 1024, (before, after)
    assert after["VmHWM"] - before["VmHWM"] < 8 * 1024, (before, after)


def test_every_body_is_capped_even_with_a_valid_token(bot):
    """With the token it grew the process by 390 MB; the login form by 400 MB."""
    process, port, _ = bot
    before = memory_kb(process.pid)
    auth = f"Authorization: Bearer {TOKEN}\r\n"
    for path, headers, cap in (("/api/v1/orders", auth, "65,536"), ("/login", "", "4,096")):
        for chunked in (False, True):
            status, sent, answer = raw_post(port, path, 200 * MB, headers, chunked=chunked)
            assert status == 413, (path, chunked, answer[:300])
            assert f"at most {cap} bytes".encode() in answer
            assert sent < 32 * MB, f"{path}: the server read {sent / MB:.0f} MB before answering"
    after = memory_kb(process.pid)
    assert after["VmRSS"] - before["VmRSS"] < 8 * 1024, (before, after)
    assert after["VmHWM"] - before["VmHWM"] < 8 * 1024, (before, after)
    # A body within the cap still works.
    answer = httpx.post(
        f"http://127.0.0.1:{port}/api/v1/orders",
        json={"side": "buy", "symbol": "AAPL", "qty": "1"},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    # Read, validated and answered by the service (a bad body is 422): the question, or the reason
    # it cannot be asked (the running bot may meanwhile hold AAPL, or its market may be closed).
    assert answer.status_code == 200, answer.text
    reply = answer.json()
    assert reply["text"].strip() and "confirmation" in reply, reply


def test_headers_are_capped(bot):
    process, port, _ = bot
    before = memory_kb(process.pid)
    for size in (20 * 1024, 4 * MB):
        head = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Filler: " + b"a" * size + b"\r\n\r\n"
        answer = raw_request(port, head)
        assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
        assert b"at most 16,384 bytes" in answer
    many = (
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(5000)) + b"\r\n"
    )
    assert raw_request(port, many).startswith(b"HTTP/1.1 431 ")
    assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
    assert memory_kb(process.pid)["VmRSS"] - before["VmRSS"] < 8 * 1024


def test_a_timeframe_the_bot_cannot_draw_is_refused_in_one_sentence(bot):
    """It answered 500, with an OverflowError traceback in the log."""
    _, port, workdir = bot
    for timeframe in ("999999d", "8d", "0m", "\u0663m", "9" * 500 + "d"):
        answer = httpx.get(
            f"http://127.0.0.1:{port}/api/v1/bars/AAPL",
            params={"timeframe": timeframe},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        assert answer.status_code == 422, (timeframe, answer.text)
        detail = answer.json()["detail"]
        assert detail.startswith("invalid timeframe") and "from 1m to 7d" in detail and len(detail) < 200
    assert "Traceback" not in processes.log_of(workdir, "bot")
    good = httpx.get(
        f"http://127.0.0.1:{port}/api/v1/bars/AAPL",
        params={"timeframe": "7d"},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert good.status_code in (200, 404), good.text  # drawn, or no such bars from the source: never 500


# ---------------------------------------------------------------------- real uvicorn in a thread


def serve(tmp_path, **env):
    settings = {"TRADEBOT_SYMBOLS": "AAPL", "TRADEBOT_WEB_PORT": "0", **env}
    app, _ = make_app(tmp_path / "bot.db", **settings)
    return WebThread(app)


def login_status(url: str, password: str, **headers: str) -> int:
    with httpx.Client(base_url=url, headers=headers) as client:
        return login(client, password).status_code


def test_a_stranger_cannot_lock_out_the_owner_or_the_scripts(tmp_path):
    """Rotating X-Forwarded-For spread 30 wrong passwords over 'clients' and filled the overall
    cap; then the owner's password, a script's token and the WebSocket all got 429."""
    with serve(tmp_path, TRADEBOT_WEB_PASSWORD=PASSWORD, TRADEBOT_WEB_TOKEN=TOKEN) as web:
        owner = httpx.Client(base_url=web.url)
        assert login(owner, PASSWORD).status_code == 200  # the owner's browser, before the attack
        owner.cookies.delete("tradebot_session")
        statuses = [
            login_status(web.url, f"guess {n}", **{"X-Forwarded-For": f"203.0.113.{n}"}) for n in range(30)
        ]
        # No proxy in front: the header is the client's own words, and all 30 are one client.
        assert statuses[:5] == [401] * 5 and set(statuses[5:]) == {429}, statuses
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        assert httpx.get(f"{web.url}/api/v1/status", headers=bearer).status_code == 200
        with connect(web.url.replace("http", "ws") + "/api/v1/ws", additional_headers=bearer) as ws:
            assert json.loads(ws.recv(5))["type"] == "hello"
        # The owner's browser logged in before: its device cookie takes it past the strangers.
        assert login(owner, PASSWORD).status_code == 200
        assert httpx.get(f"{web.url}/api/v1/status", cookies=owner.cookies).status_code == 200
        owner.close()
        # A browser never seen before shares the strangers' address here, and waits (documented).
        assert login_status(web.url, PASSWORD) == 429
        # Wrong tokens still count, and are answered 429 once their client is over the limit.
        wrong = [
            httpx.get(f"{web.url}/api/v1/status", headers={"Authorization": "Bearer nope"}) for _ in range(3)
        ]
        assert {w.status_code for w in wrong} == {429}


def test_behind_the_platforms_router_the_last_forwarded_address_is_the_client(tmp_path):
    """With $PORT set (Heroku), the router appends the address it saw to X-Forwarded-For."""
    with serve(
        tmp_path, TRADEBOT_WEB_PASSWORD=PASSWORD, PORT=str(free_port()), TRADEBOT_WEB_PORT="auto"
    ) as web:
        url = f"http://127.0.0.1:{web.server.port}"
        attacker = [
            login_status(url, "guess", **{"X-Forwarded-For": f"198.51.100.{n}, 203.0.113.9"})
            for n in range(8)
        ]
        assert attacker[:5] == [401] * 5 and set(attacker[5:]) == {429}, attacker
        assert login_status(url, PASSWORD, **{"X-Forwarded-For": "192.0.2.7"}) == 200  # someone else
        # IPv6 clients count by their /64: rotating the low bits spreads nothing.
        rotating = [
            login_status(url, "guess", **{"X-Forwarded-For": f"2001:db8:1:2::{n:x}"}) for n in range(6)
        ]
        assert rotating[-1] == 429, rotating


def test_a_proxy_of_your_own_is_believed_and_nobody_else(tmp_path):
    with serve(tmp_path, TRADEBOT_WEB_PASSWORD=PASSWORD, TRADEBOT_WEB_PROXY="127.0.0.1") as web:
        forged = [
            login_status(web.url, "guess", **{"X-Forwarded-For": f"10.9.9.{n}, 203.0.113.5"})
            for n in range(6)
        ]
        assert forged[-1] == 429, forged
        assert login_status(web.url, PASSWORD, **{"X-Forwarded-For": "203.0.113.6"}) == 200
        # Two X-Forwarded-For headers: which one the proxy appended to is unknowable (Heroku's legacy
        # router chose the first). All such requests share one client.
        doubled = []
        for n in range(6):
            two = httpx.Headers([("X-Forwarded-For", f"10.0.0.{n}"), ("X-Forwarded-For", f"10.1.0.{n}")])
            with httpx.Client(base_url=web.url, headers=two) as client:
                doubled.append(login(client, "guess").status_code)
        assert doubled == [401] * 5 + [429], doubled
        assert login_status(web.url, "guess", **{"X-Forwarded-For": "10.2.0.1"}) == 401  # not that client


def test_the_one_time_link_cannot_be_locked_by_guesses(tmp_path):
    with serve(tmp_path) as web:
        for n in range(40):
            wrong = httpx.get(f"{web.url}/login", params={"token": f"guess-{n}"})
            assert wrong.status_code == 403, wrong.status_code
        with httpx.Client() as browser:
            page = browser.get(web.login_link(), follow_redirects=True)
            assert page.status_code == 200 and 'name="csrf-token"' in page.text


def readiness(sock: socket.socket, write: bool, timeout: float) -> tuple[bool, bool]:
    """Whether ``sock`` can be read, and written (if ``write``): epoll, as ``ready_to_read``."""
    with selectors.DefaultSelector() as selector:
        selector.register(sock, selectors.EVENT_READ | (selectors.EVENT_WRITE if write else 0))
        mask = next((events for _, events in selector.select(timeout)), 0)
    return bool(mask & selectors.EVENT_READ), bool(mask & selectors.EVENT_WRITE)


def ready_to_read(socks: list[socket.socket], timeout: float) -> list[socket.socket]:
    """The sockets with something to read; epoll, not select(), which refuses a descriptor over
    1,023 (a test process that has run the suite before this test holds hundreds)."""
    with selectors.DefaultSelector() as selector:
        for sock in socks:
            selector.register(sock, selectors.EVENT_READ)
        return [key.fileobj for key, _ in selector.select(timeout)]  # type: ignore[misc]


def test_trickling_clients_are_dropped(tmp_path, monkeypatch):
    """400 connections sending a header byte now and then stayed open for good."""
    from bot.web.connections import GuardedH11Protocol

    monkeypatch.setattr(GuardedH11Protocol, "header_seconds", 1.0)
    monkeypatch.setattr(GuardedH11Protocol, "body_seconds", 1.5)
    with serve(tmp_path, TRADEBOT_WEB_TOKEN=TOKEN) as web:
        port = web.server.port
        socks = []
        for _ in range(400):
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            socks.append(sock)
        started = time.monotonic()
        closed_at: dict[int, float] = {}
        busy = 0
        while len(closed_at) < len(socks) and time.monotonic() - started < 10:
            for sock in ready_to_read([s for s in socks if s.fileno() not in closed_at], 0.2):
                try:
                    data = sock.recv(4096)
                except ConnectionResetError:
                    data = b""
                busy += data.startswith(b"HTTP/1.1 503 ")
                if not data or b"\r\n\r\n" in data:
                    closed_at[sock.fileno()] = time.monotonic() - started
            for sock in socks:  # keep trickling
                if sock.fileno() not in closed_at:
                    try:
                        sock.send(b"a")
                    except OSError:
                        closed_at[sock.fileno()] = time.monotonic() - started
        for sock in socks:
            sock.close()
        assert len(closed_at) == 400, f"{400 - len(closed_at)} trickling connections still open after 10 s"
        assert busy == 400 - 64  # one address holds at most 64 connections; the others are told at once
        assert max(closed_at.values()) < 5
        # A request body that trickles is dropped too, and the server still answers.
        with socket.create_connection(("127.0.0.1", port)) as slow:
            slow.sendall(
                f"POST /api/v1/orders HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
                "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{".encode()
            )
            slow.settimeout(10)
            started = time.monotonic()
            answer = slow.recv(4096)
            assert time.monotonic() - started < 5 and (answer == b"" or answer.startswith(b"HTTP/1.1 408"))
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200


def test_a_webhook_checks_its_secret_before_the_body(tmp_path):
    received: list[bytes] = []

    async def handler(body: bytes, headers: dict[str, str]) -> int:
        received.append(body)
        return 200

    with serve(
        tmp_path, TRADEBOT_WEB_TOKEN=TOKEN, TELEGRAM_WEBHOOK_URL="https://bot.example.com/hook"
    ) as web:
        web.call(web.server.add_webhook, "hook", handler, "the-secret")
        port = web.server.port
        status, sent, _ = raw_post(port, "/hook", 200 * MB)
        assert status == 403 and sent < 32 * MB and received == []
        secret = "X-Telegram-Bot-Api-Secret-Token: the-secret\r\n"
        status, sent, answer = raw_post(port, "/hook", 200 * MB, secret)
        assert status == 413 and b"at most 1,048,576 bytes" in answer and received == []
        ok = httpx.post(
            f"{web.url}/hook",
            content=b'{"update_id": 1}',
            headers={"X-Telegram-Bot-Api-Secret-Token": "the-secret"},
        )
        assert ok.status_code == 200 and received == [b'{"update_id": 1}']


def test_a_live_websocket_outlasts_the_body_deadline(tmp_path, monkeypatch):
    """The upgrade request is still "sending its body" to h11 when the WebSocket takes the
    connection over: the body deadline must not be armed then (every live page was cut after
    BODY_SECONDS, 30 s, and lost the cycle and research messages until it reconnected)."""
    from bot.views import TickReport
    from bot.web.connections import GuardedH11Protocol

    monkeypatch.setattr(GuardedH11Protocol, "header_seconds", 1.0)
    monkeypatch.setattr(GuardedH11Protocol, "body_seconds", 1.0)
    with serve(tmp_path, TRADEBOT_WEB_TOKEN=TOKEN) as web:
        ws_url = web.url.replace("http://", "ws://") + "/api/v1/ws"
        with connect(ws_url, additional_headers={"Authorization": f"Bearer {TOKEN}"}) as socket_:
            assert json.loads(socket_.recv(5))["type"] == "hello"
            time.sleep(3)  # three times the body deadline
            now = web.app.clock.now()
            web.server.cycle_finished(TickReport(started=now, finished=now, signals=1))
            assert json.loads(socket_.recv(5))["type"] == "cycle"
