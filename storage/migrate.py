"""Schema migrations (Alembic), configured in code so they work from any directory and ship with the package.

``tradebot db upgrade`` and the automatic upgrade at start (``TRADEBOT_AUTO_MIGRATE``) both call
``upgrade``. It runs every pending revision inside one transaction that holds a lock, so two
processes starting at once (Heroku overlaps the old and the new dyno) migrate once, and a failed
revision leaves the database as it was: on Postgres a transaction-scoped advisory lock, on SQLite
``BEGIN IMMEDIATE`` (SQLite's DDL is transactional too).

Databases created before migrations existed (by ``create_all``) hold exactly the tables of the
first revision: ``upgrade`` recognises them, stamps them at that revision and upgrades from there.

Adding a revision (developers): change ``storage/models.py``, then
``tradebot db revision -m "what changed"`` writes ``storage/migrations/versions/NNNN_*.py`` from
the difference; read it, fix what autogenerate cannot know (renames, data moves), and commit it.
"""

from __future__ import annotations

import functools
import logging
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event, inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import SQLModel

from storage.db import Database, DatabaseError, describe_error, make_engine, safe_url

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")
BASELINE = "0001"  # the schema create_all made before migrations existed
LEGACY_MARKER = "orders"  # a table every pre-migration database has


@dataclass(frozen=True, slots=True)
class Upgrade:
    before: str | None  # None: an empty database
    after: str | None

    @property
    def changed(self) -> bool:
        return self.before != self.after


def alembic_config(url: str = "", connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # configparser interpolates '%': a URL-encoded password must be escaped.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@functools.cache
def script() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head() -> str:
    """The newest revision this version of tradebot knows."""
    heads = script().get_heads()
    if len(heads) != 1:  # pragma: no cover - a developer merged two branches without a merge revision
        raise RuntimeError(f"migrations have {len(heads)} heads: {heads}")
    return heads[0]


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def current(db: Database) -> str | None:
    """The database's revision; None for an empty database (or one from before migrations)."""
    try:
        with db.engine.connect() as connection:
            return _current(connection)
    except SQLAlchemyError as exc:
        raise DatabaseError(describe_error(db.url, exc)) from exc


def describe(revision: str | None) -> str:
    if revision is None:
        return "none (empty database)"
    try:
        found = script().get_revision(revision)
    except Exception:
        found = None
    return f"{revision} ({found.doc})" if found is not None and found.doc else revision


def is_known(revision: str | None) -> bool:
    if revision is None:
        return True
    try:
        return script().get_revision(revision) is not None
    except Exception:
        return False


@contextmanager
def _locked(db: Database) -> Iterator[Connection]:
    """A connection in a transaction that no other migrating process can enter at the same time."""
    if db.engine.dialect.name == "sqlite":
        if db.engine.url.database in (None, "", ":memory:"):
            with db.engine.begin() as connection:  # private to this process: nothing to lock out
                yield connection
            return
        engine = make_engine(db.url)

        @event.listens_for(engine, "connect")
        def _manual_transactions(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # pysqlite must not BEGIN on its own

        @event.listens_for(engine, "begin")
        def _begin_immediate(connection: Connection) -> None:
            connection.exec_driver_sql("BEGIN IMMEDIATE")  # the write lock, taken before reading

        try:
            with engine.begin() as connection:
                yield connection
        finally:
            engine.dispose()
        return
    with db.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(
                text("SELECT pg_advisory_xact_lock(hashtext('tradebot-migrate:' || current_schema()))")
            )
        yield connection


def upgrade(db: Database, revision: str = "head") -> Upgrade:
    """Apply every pending revision up to ``revision``, all or nothing."""
    try:
        with _locked(db) as connection:
            before = _current(connection)
            if before is None and LEGACY_MARKER in inspect(connection).get_table_names():
                log.warning(
                    "database %s was created before migrations: recording it at revision %s",
                    safe_url(db.url),
                    BASELINE,
                )
                command.stamp(alembic_config(db.url, connection), BASELINE)
                before = BASELINE
            if not is_known(before):
                raise DatabaseError(_unknown_message(db, before))
            command.upgrade(alembic_config(db.url, connection), revision)
            after = _current(connection)
    except SQLAlchemyError as exc:
        raise DatabaseError(describe_error(db.url, exc)) from exc
    if before != after:
        log.info("database %s migrated from %s to %s", safe_url(db.url), before or "empty", after)
    return Upgrade(before, after)


def ensure_schema(db: Database, *, auto_migrate: bool = True) -> Upgrade:
    """At start: upgrade when allowed; otherwise refuse to run on a schema this code does not match."""
    now, newest = current(db), head()
    if now == newest:
        return Upgrade(now, now)
    if not is_known(now):
        raise DatabaseError(_unknown_message(db, now))
    if auto_migrate:
        return upgrade(db)
    raise DatabaseError(
        f"database {safe_url(db.url)} is at schema revision {now or 'none'}, this tradebot needs {newest}: "
        "run `tradebot db upgrade` (or set TRADEBOT_AUTO_MIGRATE=true)"
    )


def _unknown_message(db: Database, revision: str | None) -> str:
    return (
        f"database {safe_url(db.url)} is at schema revision {revision}, which this version of tradebot "
        "does not know: it was migrated by a newer version. Run that version, or restore a backup."
    )


def check(db: Database) -> list[str]:
    """Differences between ``storage/models.py`` and the database; empty when they agree."""
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return [str(diff) for diff in compare_metadata(context, SQLModel.metadata)]


def revision(message: str) -> str:
    """Autogenerate the next revision from the models (developers; writes into the source tree)."""
    numbers = [int(r.revision) for r in script().walk_revisions() if r.revision.isdigit()]
    rev_id = f"{max(numbers, default=0) + 1:04d}"
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite:///{Path(tmp) / 'head.db'}")
        try:
            upgrade(db)
            with db.engine.begin() as connection:
                made = command.revision(
                    alembic_config(db.url, connection), message=message, autogenerate=True, rev_id=rev_id
                )
        finally:
            db.dispose()
    scripts = made if isinstance(made, list) else [made]
    return ", ".join(s.path for s in scripts if s is not None)
