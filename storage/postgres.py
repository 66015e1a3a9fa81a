"""Postgres's client-side bounds: a dead network ends a wait, as a dead server does (issue 19 item 2).

A server that stops or refuses is noticed at once: the socket is reset or closed. A network that
stops forwarding on established connections is silent: the socket stays open, nothing is refused,
and the server, which never sees the statement, never sends its ``statement_timeout``. Without a
bound of its own the client waited as long as the network was dead (a cycle blocked 40 s during a
40 s blackhole, 100 s during a 100 s one). Three bounds end that wait:

- ``ANSWER_TIMEOUT`` (``storage.db``): psycopg gives up waiting for any answer (a statement, a
  commit) after that many seconds, closes the connection (its state is unknown, it cannot go back
  to the pool) and raises ``OperationalError`` naming the bound. Longer than the server's
  ``statement_timeout``, so a statement that is merely slow is still ended by the server, with its
  own message. The pool's ping before a checkout waits ``CONNECT_TIMEOUT`` at most;
- ``TCP_USER_TIMEOUT`` at the same value: the kernel drops a connection whose sent bytes stay
  unacknowledged that long;
- TCP keepalives: an idle pooled connection to a dead peer is noticed after
  ``KEEPALIVE_IDLE + KEEPALIVE_INTERVAL * KEEPALIVE_COUNT`` seconds (25 s).

The kernel bounds need a real network to fire (on loopback the kernel itself answers); the
deadline fires everywhere, and is what ``tests/test_database_blackhole.py`` sees through a proxy.

Imported only for a Postgres URL: SQLite users do not pay for importing psycopg.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

KEEPALIVE_IDLE = 10  # seconds of silence before the first probe
KEEPALIVE_INTERVAL = 5  # seconds between probes
KEEPALIVE_COUNT = 3  # unanswered probes before the kernel drops the connection


def connect_args(connect_timeout: int, answer_timeout: int) -> dict[str, Any]:
    """libpq's connection parameters for the bounds above."""
    return {
        "connect_timeout": connect_timeout,
        "keepalives": 1,
        "keepalives_idle": KEEPALIVE_IDLE,
        "keepalives_interval": KEEPALIVE_INTERVAL,
        "keepalives_count": KEEPALIVE_COUNT,
        "tcp_user_timeout": answer_timeout * 1000,  # milliseconds
    }


def bounded_connection_class(answer_timeout: float) -> type[psycopg.Connection[Any]]:
    """A ``psycopg.Connection`` whose every wait on the server ends after ``answer_timeout`` s
    (``bound`` seconds instead while the pool pings it)."""
    import psycopg
    from psycopg import errors

    # What Connection.wait raises when its timeout expires (psycopg 3.3.6 on, as pyproject.toml
    # requires). Looked up here, so a psycopg without it fails at start, not in the middle of an outage.
    wait_timeout = errors._WaitTimeout

    class BoundedConnection(psycopg.Connection[Any]):
        # Seconds; None waits for ever. Work that turns the server's statement_timeout off (a
        # migration building an index on a large table) must raise this one too, on its connection.
        bound: float | None = answer_timeout

        def wait(self, gen: Any, interval: float = 0.1, timeout: float | None = None) -> Any:
            bound = self.bound
            try:
                return super().wait(gen, interval, bound if timeout is None else timeout)
            except wait_timeout:
                # Half a statement may be on the wire and its answer may still come: the
                # connection can never be trusted again. Closed, SQLAlchemy sees a disconnect and
                # drops it (and the pool's other connections, which went the same way).
                self.close()
                raise psycopg.OperationalError(
                    f"no answer within {bound or 0:g} s (the network or the server stopped answering)"
                ) from None

    return BoundedConnection


def bound_waits(engine: Any, answer_timeout: float, ping_timeout: float) -> None:
    """Make every connection ``engine`` opens a ``BoundedConnection`` (the ``do_connect`` hook),
    and the pool's ping before each checkout wait ``ping_timeout`` seconds at most: a ``SELECT 1``
    has nothing to compute, and a pooled connection over a dead network would otherwise cost the
    whole ``answer_timeout`` before a new one is even tried."""
    from sqlalchemy import event

    connection_class = bounded_connection_class(answer_timeout)

    @event.listens_for(engine, "do_connect")
    def _connect(_dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        return connection_class.connect(*cargs, **cparams)

    dialect = engine.dialect
    ping = type(dialect).do_ping

    def do_ping(dbapi_connection: Any) -> bool:
        dbapi_connection.bound = ping_timeout
        try:
            return bool(ping(dialect, dbapi_connection))
        finally:
            dbapi_connection.bound = answer_timeout

    dialect.do_ping = do_ping  # this engine's dialect only (each engine has its own)
