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
from tests import processes


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


# What `tradebot tick` on the simulated market must not import (issue 10, point 9: import only
# what the simulated path uses): the schema tools once the schema is current, and every other
# front end, broker and tool.
NOT_ON_THE_SIMULATED_TICK = (
    "alembic",
    "mako",
    "pandas",
    "matplotlib",
    "pyarrow",
    "telegram",
    "apscheduler",
    "alpaca",
    "httpx",
    "tenacity",  # the retry policy imports it only to retry a call (and it imports tornado)
    "tornado",
)


def test_tradebot_tick_on_the_simulated_market_imports_only_what_it_uses(tmp_path):
    env = processes.environment(f"sqlite:///{tmp_path / 'tradebot.db'}")
    first = subprocess.run(
        [sys.executable, "-m", "bot", "tick"], cwd=tmp_path, env=env, capture_output=True, timeout=120
    )
    assert first.returncode == 0, first.stderr  # creates and migrates the database
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "bot", "tick"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    imported = {
        line.split("|")[-1].strip().split(".")[0]
        for line in result.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert "sqlmodel" in imported and "numpy" in imported  # the probe sees imports at all
    assert not imported & set(NOT_ON_THE_SIMULATED_TICK), sorted(imported & set(NOT_ON_THE_SIMULATED_TICK))
