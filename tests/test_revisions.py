"""The start-up check that skips Alembic when the schema is already the newest (issue 10, point 9).

It must agree with Alembic on every database state, or a start would run on a schema it does
not match: the newest revision read from the files equals Alembic's head, and only a database
whose one version row names that head counts as up to date.
"""

from __future__ import annotations

import subprocess
import sys

from sqlalchemy import text

from storage import migrate, revisions
from storage.db import Database
from tests.processes import ROOT


def test_the_newest_revision_from_the_files_is_alembics_head():
    assert revisions.newest() == migrate.head()


def test_only_a_database_at_the_head_counts_as_up_to_date(storage_url):
    db = Database(storage_url)
    try:
        assert not revisions.at_newest(db.engine)  # empty: no version table yet
        older = [r.revision for r in migrate.script().walk_revisions()][1]
        migrate.upgrade(db, older)
        assert not revisions.at_newest(db.engine)  # behind: Alembic upgrades it
        migrate.upgrade(db)
        assert revisions.at_newest(db.engine)
        with db.engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
        assert not revisions.at_newest(db.engine)  # ahead: Alembic refuses it
    finally:
        db.dispose()


def test_a_start_on_an_up_to_date_database_does_not_import_alembic(database_url):
    db = Database(database_url)
    migrate.upgrade(db)
    db.dispose()
    probe = (
        "import sys\n"
        "from storage.db import Database\n"
        f"db = Database({database_url!r})\n"
        "db.create_schema()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'alembic'))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
