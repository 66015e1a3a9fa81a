"""Shared fixtures: a database URL for every backend under test.

``database_url``: a fresh SQLite file in the test's temporary folder.

``storage_url``: the same, and also a Postgres one when ``TEST_DATABASE_URL`` is set (``.ci/run``
sets it when a server answers on 127.0.0.1:5432). Every Postgres test gets a schema of its own,
created empty and dropped afterwards, reached through the URL's ``search_path``, so runs can
repeat on one server and several engineers can share it. Schemas left by a run that was killed
are dropped by the next run (their names carry the pid of the run that made them).
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url, text

PG_URL = os.environ.get("TEST_DATABASE_URL", "")
BACKENDS = ["sqlite", "postgres"] if PG_URL else ["sqlite"]
SCHEMA_PREFIX = "tbtest_"


def sqlite_url(folder: Path) -> str:
    return f"sqlite:///{folder / 'tradebot.db'}"


def _admin_url() -> str:
    from bot.config import database_url

    return database_url(PG_URL)


def _with_schema(url: str, schema: str) -> str:
    parsed = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
    return parsed.render_as_string(hide_password=False)


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A database URL whose tables live in a new, empty schema, dropped on exit."""
    schema = f"{SCHEMA_PREFIX}{os.getpid()}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(_admin_url(), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        yield _with_schema(_admin_url(), schema)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def _drop_orphan_schemas() -> None:
    admin = create_engine(_admin_url(), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            names = connection.execute(
                text("SELECT nspname FROM pg_namespace WHERE nspname LIKE :prefix"),
                {"prefix": SCHEMA_PREFIX + "%"},
            ).scalars()
            for name in list(names):
                found = re.match(rf"{SCHEMA_PREFIX}(\d+)_", name)
                if found and not _alive(int(found.group(1))):
                    connection.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
    finally:
        admin.dispose()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def pytest_sessionstart(session: pytest.Session) -> None:
    if PG_URL:
        _drop_orphan_schemas()


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return sqlite_url(tmp_path)


@pytest.fixture(params=BACKENDS)
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield sqlite_url(tmp_path)
        return
    with postgres_schema() as url:
        yield url


@pytest.fixture
def db(storage_url):
    """A migrated database at ``storage_url`` (SQLite, and Postgres when TEST_DATABASE_URL is set)."""
    from storage import migrate
    from storage.db import Database

    database = Database(storage_url)
    migrate.upgrade(database)
    yield database
    database.dispose()
