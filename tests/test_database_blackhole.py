"""Issue 19 item 2: a dead network is bounded, not only a dead server.

Postgres behind a real TCP proxy on 127.0.0.1 that stops forwarding (``tests/tcp_proxy.py``): the
sockets stay open, bytes go nowhere, nothing is refused or reset. The server never sees a slow
statement, so its ``statement_timeout`` never fires: only the client's own bounds
(``storage/postgres.py``) can end the wait. A cycle used to block for as long as the blackhole
lasted (40 s for 40 s, 100 s for 100 s), with no alert.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import make_url, text

from storage import postgres
from storage.db import ANSWER_TIMEOUT, CONNECT_TIMEOUT, Database, DatabaseError
from tests.tcp_proxy import BlackholeProxy
from tests.test_database_outage import (  # noqa: F401  (own_postgres_database is a fixture)
    assert_said_once,
    own_postgres_database,
    ride_out_an_outage,
)


@pytest.fixture
def proxied(own_postgres_database) -> Iterator[tuple[str, BlackholeProxy]]:  # noqa: F811
    """A database of its own, and its URL through a proxy that can stop forwarding."""
    url, _sql = own_postgres_database
    parsed = make_url(url)
    with BlackholeProxy((parsed.host or "127.0.0.1", parsed.port or 5432)) as proxy:
        yield parsed.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False), proxy


def within(seconds: float, work: Callable[[], object]) -> tuple[str, object]:
    """``work()``'s result or exception, or fail if it is still blocked after ``seconds`` (a hang
    guard well beyond the bound, so the test ends either way; the thread is left behind)."""
    outcome: list[tuple[str, object]] = []

    def run() -> None:
        try:
            outcome.append(("ok", work()))
        except BaseException as exc:
            outcome.append(("raised", exc))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if not outcome:
        pytest.fail(f"still blocked after {seconds:.0f} s on a blackholed network")
    return outcome[0]


def select_one(db: Database) -> int:
    with db.session() as session:
        return int(session.execute(text("SELECT 1")).scalar_one())


def test_a_statement_on_a_dead_network_gives_up_in_one_line(proxied):
    """The pooled connection's ping waits CONNECT_TIMEOUT, then a new connection is tried (which
    the dead network also holds): bounded either way, and said in one line."""
    url, proxy = proxied
    db = Database(url)
    try:
        assert select_one(db) == 1  # a pooled connection, established before the network dies
        proxy.blackhole()
        started = time.monotonic()
        kind, result = within(4 * ANSWER_TIMEOUT, lambda: select_one(db))
        took = time.monotonic() - started
        print(f"gave up after {took:.1f} s ({proxy.dropped} bytes dropped)")
        assert kind == "raised" and isinstance(result, DatabaseError), result
        message = str(result)
        assert "\n" not in message and "Background on this error" not in message
        assert "network" in message, message  # the fix names the cause: no answer, not a slow statement
        proxy.forward()
        assert select_one(db) == 1  # a new connection once the network forwards again
        # The ping's shorter bound is the ping's alone: a statement still has ANSWER_TIMEOUT.
        with db.session() as session:
            session.execute(text(f"SELECT pg_sleep({CONNECT_TIMEOUT + 1})"))
    finally:
        proxy.forward()
        db.dispose()


def test_a_statement_in_flight_when_the_network_dies_gives_up(proxied):
    """The connection is already checked out and mid-transaction: no ping, no reconnect, just the
    wait for the answer."""
    url, proxy = proxied
    db = Database(url)
    try:

        def work() -> None:
            with db.session() as session:
                session.execute(text("SELECT 1"))
                proxy.blackhole()
                session.execute(text("SELECT 2"))

        started = time.monotonic()
        kind, result = within(4 * ANSWER_TIMEOUT, work)
        took = time.monotonic() - started
        print(f"gave up after {took:.1f} s")
        assert kind == "raised" and isinstance(result, DatabaseError), result
        assert f"no answer within {ANSWER_TIMEOUT} s" in str(result), result
        proxy.forward()
        assert select_one(db) == 1
    finally:
        proxy.forward()
        db.dispose()


def test_the_kernel_is_told_to_notice_a_dead_peer(own_postgres_database):  # noqa: F811
    """Keepalives and TCP_USER_TIMEOUT reach the socket of every connection (on a real network they
    end a wait on a dead peer; on loopback the kernel always answers, so the tests above rely on
    the client's own deadline)."""
    url, _sql = own_postgres_database
    db = Database(url)
    try:
        with db.engine.connect() as connection:
            raw = connection.connection.dbapi_connection
            assert raw is not None
            fd = raw.pgconn.socket  # type: ignore[attr-defined]
            sock = socket.socket(fileno=socket.dup(fd))
            try:
                assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
                assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == postgres.KEEPALIVE_IDLE
                assert (
                    sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == postgres.KEEPALIVE_INTERVAL
                )
                assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == postgres.KEEPALIVE_COUNT
                assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 1000 * ANSWER_TIMEOUT
            finally:
                sock.close()
    finally:
        db.dispose()


def test_run_rides_out_a_dead_network(tmp_path, proxied):
    """A real ``tradebot run`` on Postgres through the proxy: the network dies while it trades. Said
    once, the console answers meanwhile, trading resumes when the network forwards again."""
    url, proxy = proxied
    cut_at: list[float] = []

    def cut() -> None:
        cut_at.append(time.monotonic())
        proxy.blackhole()

    log, out = ride_out_an_outage(tmp_path, url, cut, proxy.forward, patience=4 * ANSWER_TIMEOUT)
    assert_said_once(log, out)
    assert "no answer" in log, log[-3000:]
    print(f"bound: {ANSWER_TIMEOUT} s an answer, {CONNECT_TIMEOUT} s a connection try")
