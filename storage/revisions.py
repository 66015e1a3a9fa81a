"""Is the database at the newest schema revision? Answered without importing Alembic.

Every start asks this, and almost always the answer is yes: reading the revision ids from the
migration files and the database's ``alembic_version`` row takes a millisecond, where importing
Alembic takes a fifth of a second of every ``tradebot tick``. Any other answer (an empty
database, one behind or ahead, files this cannot read) goes to ``storage/migrate.py``.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

if TYPE_CHECKING:
    from storage.db import Database

VERSIONS = Path(__file__).with_name("migrations") / "versions"
_REVISION = re.compile(r"""^revision(?:\s*:[^=]*)?=\s*["'](\w+)["']""", re.MULTILINE)
_DOWN_REVISION = re.compile(r"^down_revision(?:\s*:[^=]*)?=\s*(.+)$", re.MULTILINE)


@functools.cache
def newest() -> str | None:
    """The head revision of the migration files; None if there is not exactly one."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in VERSIONS.glob("*.py"):
        source = path.read_text(encoding="utf-8")
        revision = _REVISION.search(source)
        if revision is None:
            continue
        revisions.add(revision.group(1))
        down = _DOWN_REVISION.search(source)
        if down is not None:
            parents.update(re.findall(r"""["'](\w+)["']""", down.group(1)))
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def at_newest(engine: Engine) -> bool:
    """True only when the database's one ``alembic_version`` row names the newest revision."""
    head = newest()
    if head is None:
        return False
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT version_num FROM alembic_version")).fetchall()
    except SQLAlchemyError:  # no such table yet, or the database is unreachable: migrate.py says which
        return False
    return len(rows) == 1 and rows[0][0] == head


def ensure_newest(db: Database, *, auto_migrate: bool = True) -> None:
    """At start: bring the schema to the newest revision, importing Alembic only when it is not.

    With ``auto_migrate=False`` a database that is behind raises ``DatabaseError`` instead,
    naming ``tradebot db upgrade`` (``storage.migrate.ensure_schema``).
    """
    if at_newest(db.engine):
        return  # the usual start, decided without importing Alembic
    from storage.migrate import ensure_schema

    ensure_schema(db, auto_migrate=auto_migrate)
