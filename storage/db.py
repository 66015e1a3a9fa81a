"""The database engine and sessions. ``DATABASE_URL`` picks SQLite (default, WAL mode) or Postgres.

The schema comes from the Alembic migrations in ``storage/migrations`` (``storage/migrate.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, create_engine

from storage import models  # noqa: F401  (registers every table on SQLModel.metadata)

log = logging.getLogger(__name__)


class DatabaseError(RuntimeError):
    """The database is unreachable or refused a write; the message says which database (no password)."""


def safe_url(url: str) -> str:
    """The URL with any password replaced, for logs and messages."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1]


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # type: ignore[no-untyped-def]
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


class Database:
    """Owns the engine; hands out sessions that commit on success and roll back on error."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)

    def create_schema(self, *, auto_migrate: bool = True) -> None:
        """Bring the schema to the newest revision through the migrations (``storage/migrate.py``).

        With ``auto_migrate=False`` a database that is behind raises ``DatabaseError`` instead,
        naming ``tradebot db upgrade``.
        """
        from storage.revisions import at_newest

        if at_newest(self.engine):
            return  # the usual start, decided without importing Alembic
        from storage.migrate import ensure_schema

        ensure_schema(self, auto_migrate=auto_migrate)

    @contextmanager
    def session(self) -> Iterator[Session]:
        session = Session(self.engine, expire_on_commit=False)
        try:
            yield session
            session.commit()
        except SQLAlchemyError as exc:
            session.rollback()
            raise DatabaseError(
                f"database {safe_url(self.url)} failed: {exc.__class__.__name__}: {exc}"
            ) from exc
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()
