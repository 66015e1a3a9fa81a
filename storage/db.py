"""The database engine and sessions. ``DATABASE_URL`` picks SQLite (default, WAL mode) or Postgres.

The schema comes from the Alembic migrations in ``storage/migrations``: ``storage/migrate.py``
creates and upgrades it, ``storage/revisions.ensure_newest`` at start (both import this module;
this one imports neither).

A database that misbehaves is bounded and named (issue 12 item 2): Postgres connections give up
after ``CONNECT_TIMEOUT`` seconds and statements after ``STATEMENT_TIMEOUT`` on the server; the
client stops waiting for any answer after ``ANSWER_TIMEOUT``, which a dead network needs (issue 19
item 2, ``storage/postgres.py``); every error is one
line (the driver's first line, never SQLAlchemy's "Background on this error" or the statement's
parameters) with the fix where one is known; ``check_writable`` proves a write would succeed
(and rolls it back); ``check_file`` notices a SQLite file deleted or replaced under the bot.
"""

from __future__ import annotations

import contextvars
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlmodel import Session, create_engine

from storage import models  # noqa: F401  (registers every table on SQLModel.metadata)

log = logging.getLogger(__name__)


# Seconds for Postgres to answer one connection attempt (libpq's connect_timeout). libpq may try
# twice or three times (SSL, then plain; GSS), so a silent server is given up on within ~15 s.
CONNECT_TIMEOUT = 5
STATEMENT_TIMEOUT = 20  # seconds for any one statement (Postgres statement_timeout)
# Seconds the client waits for any answer from Postgres (a statement, a commit, a ping) before it
# closes the connection: a dead network never delivers the server's statement_timeout. Longer than
# STATEMENT_TIMEOUT, so a slow statement is still ended by the server (storage/postgres.py).
ANSWER_TIMEOUT = STATEMENT_TIMEOUT + 5
SQLITE_BUSY_TIMEOUT = 30  # seconds to wait for another process's write lock

# Two connection pools per database (issue 19 section 6), so web requests can never take the
# connections the engine needs, nor queue for seconds behind each other:
# - the engine's (cycles, scheduler jobs, lease heartbeat, Telegram's feed, the runner: at most
#   about five at once), waiting up to CONNECT_TIMEOUT for one;
# - the web server's (FastAPI's worker threads, the WebSocket hub, the webhook), waiting at most
#   WEB_POOL_WAIT: a request that gets none by then answers 503 at once (``DatabaseBusy``).
# On Postgres that is at most 10 connections per instance, as before (5 + 5 overflow), so two
# instances (trading and standby) stay within a 20-connection plan.
ENGINE_POOL_SIZE = 6
WEB_POOL_SIZE = 4
WEB_POOL_WAIT = 0.25  # seconds a web request waits for a connection before answering 503

# The driver's words -> what to do about it.
FIXES = (
    ("readonly database", "the database file or its folder is read-only: make both writable by this user"),
    (
        "read-only transaction",
        "the database refuses writes (a read-only replica or user): point DATABASE_URL at the primary",
    ),
    ("database is locked", "another process holds a write lock for too long: stop it or retry"),
    ("no such table", "the schema is missing: run `tradebot db upgrade`"),
    ("does not exist", "check the database name in DATABASE_URL"),
    ("password authentication failed", "check the user and password in DATABASE_URL"),
    (
        "statement timeout",
        f"a statement ran longer than {STATEMENT_TIMEOUT} s: the server is overloaded or stuck",
    ),
    ("timeout expired", f"no answer within {CONNECT_TIMEOUT} s: check the host, the port and the network"),
    ("canceling statement due to statement timeout", f"a statement ran longer than {STATEMENT_TIMEOUT} s"),
    ("connection refused", "nothing listens there: check the host and port in DATABASE_URL"),
    ("disk is full", "free disk space"),
    ("unable to open database file", "check that the folder of the SQLite file exists and is writable"),
)


class DatabaseError(RuntimeError):
    """The database is unreachable or refused a write; the message says which database (no password)."""


class DatabaseBusy(DatabaseError):
    """Every connection of the web server's pool stayed in use for WEB_POOL_WAIT: answer 503."""


_WEB = contextvars.ContextVar("tradebot_web_request", default=False)


@contextmanager
def web_request() -> Iterator[None]:
    """Mark what runs inside (and the threads it starts with the context copied, as FastAPI's
    worker threads are) as the web server's: its sessions use the web pool."""
    token = _WEB.set(True)
    try:
        yield
    finally:
        _WEB.reset(token)


def describe_error(url: str, exc: BaseException) -> str:
    """One line: which database, the driver's first line, the fix where one is known."""
    cause = getattr(exc, "orig", None) or exc
    first = (str(cause).strip().splitlines() or [""])[0].strip()
    first = first.replace(_password(url), "***") if _password(url) else first
    line = f"database {safe_url(url)} failed: {type(cause).__name__}: {first}".rstrip(": ")
    lowered = first.lower()
    for words, fix in FIXES:
        if words in lowered:
            return f"{line} ({fix})"
    return line


def _password(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).password or ""
    except Exception:
        return ""


def safe_url(url: str) -> str:
    """The URL with any password replaced, for logs and messages."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1]


def _enable_wal(cursor: Any) -> None:
    """Switch a SQLite file to WAL, waiting for a process that is creating it at the same moment.

    Turning a new file to WAL takes an exclusive lock and SQLite answers "database is locked" at once,
    without its busy timeout, while another connection holds a lock (seen with three processes
    migrating one new file together); once the file is in WAL the statement takes no lock at all.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def make_engine(
    url: str, *, pool_size: int = ENGINE_POOL_SIZE, pool_timeout: float = CONNECT_TIMEOUT
) -> Engine:
    """An engine whose pool holds at most ``pool_size`` connections (no overflow), a caller
    waiting up to ``pool_timeout`` seconds for one."""
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT},
            hide_parameters=True,
            **(
                {}
                if _in_memory(url)  # one connection, SQLAlchemy's own pool for it
                else {"pool_size": pool_size, "max_overflow": 0, "pool_timeout": pool_timeout}
            ),
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            _enable_wal(cursor)
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    from storage import postgres

    engine = create_engine(
        url,
        pool_pre_ping=True,
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=pool_timeout,
        hide_parameters=True,
        connect_args=postgres.connect_args(CONNECT_TIMEOUT, ANSWER_TIMEOUT),
    )
    postgres.bound_waits(engine, ANSWER_TIMEOUT, ping_timeout=CONNECT_TIMEOUT)

    @event.listens_for(engine, "connect")
    def _postgres_timeouts(dbapi_connection, _record):
        # Per connection rather than in the URL, whose own options (search_path) it would replace.
        with dbapi_connection.cursor() as cursor:
            cursor.execute(f"SET statement_timeout = {STATEMENT_TIMEOUT * 1000}")
        dbapi_connection.commit()

    return engine


def _in_memory(url: str) -> bool:
    return url.rstrip("/") in {"sqlite:", "sqlite:/"} or ":memory:" in url or "mode=memory" in url


class Database:
    """Owns the engines (the engine's pool, and the web server's, made at its first request);
    hands out sessions that commit on success and roll back on error."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.path = url.removeprefix("sqlite:///").split("?")[0] if url.startswith("sqlite:///") else None
        self._identity: tuple[int, int] | None = None
        self._web_engine: Engine | None = None
        self._web_lock = threading.Lock()

    @property
    def web_engine(self) -> Engine:
        """The web server's pool: WEB_POOL_SIZE connections, WEB_POOL_WAIT seconds' wait."""
        with self._web_lock:
            if self._web_engine is None:
                self._web_engine = (
                    self.engine
                    if _in_memory(self.url)  # another engine would be another database
                    else make_engine(self.url, pool_size=WEB_POOL_SIZE, pool_timeout=WEB_POOL_WAIT)
                )
            return self._web_engine

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session on the engine's pool, or, inside ``web_request``, the web server's."""
        web = _WEB.get()
        session = Session(self.web_engine if web else self.engine, expire_on_commit=False)
        try:
            yield session
            session.commit()
        except PoolTimeout as exc:
            session.rollback()
            if web:
                raise DatabaseBusy(
                    f"database {safe_url(self.url)} busy: all {WEB_POOL_SIZE} of the web server's "
                    f"connections stayed in use for {WEB_POOL_WAIT} s"
                ) from exc
            raise DatabaseError(describe_error(self.url, exc)) from exc
        except SQLAlchemyError as exc:
            session.rollback()
            raise DatabaseError(describe_error(self.url, exc)) from exc
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()
        with self._web_lock:
            if self._web_engine is not None and self._web_engine is not self.engine:
                self._web_engine.dispose()
            self._web_engine = None

    def check_writable(self) -> None:
        """Raise ``DatabaseError`` unless a write would succeed: one row written to the settings
        table and rolled back, so nothing changes (``tradebot doctor``, and ``tradebot run``
        before it trades: a read-only database must stop it, not leave it in standby)."""
        try:
            with self.engine.connect() as connection:
                transaction = connection.begin()
                try:
                    connection.execute(
                        text("INSERT INTO settings (key, value) VALUES ('tradebot.write_check', 'null')")
                    )
                finally:
                    transaction.rollback()
        except SQLAlchemyError as exc:
            raise DatabaseError(describe_error(self.url, exc)) from None
        self.remember_file()

    def remember_file(self) -> None:
        """Note which file the SQLite URL names now (device and inode), for ``check_file``."""
        if self.path is not None:
            try:
                stat = os.stat(self.path)
            except OSError:
                return
            self._identity = (stat.st_dev, stat.st_ino)

    def check_file(self) -> None:
        """Raise ``DatabaseError`` when the SQLite file under the open connections is no longer the
        file at its path (deleted or replaced while the bot runs): every later write would go to
        a file nobody can see, and be lost at exit."""
        if self.path is None or self._identity is None:
            return
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            raise DatabaseError(
                f"database {safe_url(self.url)} failed: the file was deleted while the bot ran; "
                "nothing written since can be trusted (restore it from a backup, then restart)"
            ) from None
        if (stat.st_dev, stat.st_ino) != self._identity:
            raise DatabaseError(
                f"database {safe_url(self.url)} failed: the file was replaced while the bot ran "
                "(a different file is at that path now): restart to use it"
            )
