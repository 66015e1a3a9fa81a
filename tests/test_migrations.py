"""Migrations: an empty database and one at the previous revision both reach head, data intact,
with exactly the schema of storage/models.py; on SQLite and (with TEST_DATABASE_URL) Postgres."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import inspect, text
from sqlmodel import SQLModel

from bot.app import StartupError, build_app
from bot.clock import ManualClock
from bot.config import Settings
from bot.domain import Order, OrderStatus, Side
from bot.lease import Lease
from storage import migrate
from storage import repository as repo
from storage.db import Database, DatabaseError
from tests import processes

NOW = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)


@pytest.fixture
def db(storage_url):
    database = Database(storage_url)
    yield database
    database.dispose()


def revisions() -> list[str]:
    return [r.revision for r in reversed(list(migrate.script().walk_revisions()))]


def test_revisions_form_one_line_starting_at_the_baseline():
    names = revisions()
    assert names[0] == migrate.BASELINE and names[-1] == migrate.head()
    assert len(names) >= 2  # so "from the previous revision" means something
    assert (migrate.MIGRATIONS / "script.py.mako").is_file()  # shipped as package data


def test_an_empty_database_is_upgraded_to_exactly_the_models(db):
    assert migrate.current(db) is None
    result = migrate.upgrade(db)
    assert (result.before, result.after) == (None, migrate.head())
    assert migrate.check(db) == []
    assert set(SQLModel.metadata.tables) <= set(inspect(db.engine).get_table_names())
    again = migrate.upgrade(db)
    assert not again.changed


def test_a_database_at_the_previous_revision_is_upgraded_with_its_data(db):
    previous = revisions()[-2]
    migrate.upgrade(db, previous)
    assert migrate.current(db) == previous
    order = Order("tb-kept", "AAPL", Side.BUY, 3, OrderStatus.FILLED, created_at=NOW)
    with db.session() as s:
        repo.save_order(s, order, NOW)
        repo.set_setting(s, "paused", True)

    result = migrate.upgrade(db)
    assert (result.before, result.after) == (previous, migrate.head())
    assert migrate.check(db) == []
    with db.session() as s:
        kept = repo.get_order(s, "tb-kept")
        assert kept is not None and kept.qty == 3 and kept.created_at == NOW
        assert repo.get_setting(s, "paused") is True
    assert Lease(db, seconds=30).try_acquire()  # the new revision's table works


@pytest.mark.parametrize("earlier", revisions()[:-1])
def test_a_database_at_each_earlier_revision_reaches_head_with_its_data(db, earlier):
    migrate.upgrade(db, earlier)
    order = Order("tb-kept", "AAPL", Side.BUY, 3, OrderStatus.FILLED, created_at=NOW)
    with db.session() as s:
        repo.save_order(s, order, NOW)
    assert migrate.upgrade(db).after == migrate.head()
    assert migrate.check(db) == []
    with db.session() as s:
        assert [o.client_order_id for o in repo.list_orders(s, limit=5)] == ["tb-kept"]


def test_every_revision_downgrades_and_upgrades_again(db):
    from alembic import command

    migrate.upgrade(db)
    with db.engine.begin() as connection:
        command.downgrade(migrate.alembic_config(db.url, connection), "base")
    assert migrate.current(db) is None
    assert "orders" not in inspect(db.engine).get_table_names()
    migrate.upgrade(db)
    assert migrate.check(db) == []


def test_a_database_made_before_migrations_is_adopted(db):
    """The baseline's tables, no version table: stamped at the baseline, then upgraded.

    The baseline schema is the one revision 0001 makes (what ``create_all`` made then): today's
    models carry indexes of later revisions (0005), which a database that old cannot have."""
    migrate.upgrade(db, migrate.BASELINE)
    with db.engine.begin() as connection:
        connection.execute(text("DROP TABLE alembic_version"))
    assert migrate.current(db) is None
    with db.session() as s:
        repo.set_setting(s, "last_tick", NOW.isoformat())
    result = migrate.upgrade(db)
    assert (result.before, result.after) == (migrate.BASELINE, migrate.head())
    assert migrate.check(db) == []
    with db.session() as s:
        assert repo.get_setting(s, "last_tick") == NOW.isoformat()


def test_the_telegram_cursors_and_preferences_move_to_the_feed_tables_and_back(db):
    from alembic import command

    migrate.upgrade(db, "0002")
    with db.session() as s:
        repo.set_setting(s, "telegram.alert_cursors", {"111": 40, "-1001": 38})
        repo.set_setting(s, "telegram.alerts", {"fills": False})
        repo.set_setting(s, "telegram.daily_summary_last", "2026-03-01")
    migrate.upgrade(db, "0003")
    with db.session() as s:
        assert repo.list_cursors(s) == {"telegram:111": 40, "telegram:-1001": 38}
        assert repo.get_setting(s, "telegram.alert_cursors") is None
        assert repo.get_setting(s, "alerts") == {"fills": False}
        assert repo.get_setting(s, "daily_summary.last") == "2026-03-01"
    with db.engine.begin() as connection:
        command.downgrade(migrate.alembic_config(db.url, connection), "0002")
    with db.session() as s:
        assert repo.get_setting(s, "telegram.alert_cursors") == {"111": 40, "-1001": 38}
        assert repo.get_setting(s, "telegram.alerts") == {"fills": False}
        assert repo.get_setting(s, "daily_summary.last") is None


def test_processes_starting_together_migrate_once(storage_url):
    databases = [Database(storage_url) for _ in range(3)]
    barrier = threading.Barrier(len(databases))
    results, errors = [], []

    def start(database: Database) -> None:
        barrier.wait()
        try:
            results.append(migrate.upgrade(database))
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(d,)) for d in databases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sum(r.changed for r in results) == 1
    assert migrate.check(databases[0]) == []
    for d in databases:
        d.dispose()


def test_start_refuses_a_stale_schema_when_auto_migrate_is_off(storage_url):
    db = Database(storage_url)
    migrate.upgrade(db, revisions()[-2])
    settings = Settings.from_mapping({"DATABASE_URL": storage_url, "TRADEBOT_AUTO_MIGRATE": "false"})
    with pytest.raises(StartupError, match="tradebot db upgrade"):
        build_app(settings, accelerate=False, clock=ManualClock(NOW))
    assert migrate.current(db) == revisions()[-2]  # untouched
    app = build_app(
        settings.with_overrides(tradebot_auto_migrate=True), accelerate=False, clock=ManualClock(NOW)
    )
    assert migrate.current(app.db) == migrate.head()
    app.db.dispose()
    db.dispose()


def test_a_schema_from_a_newer_version_is_refused(db):
    migrate.upgrade(db)
    with db.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(DatabaseError, match="newer version"):
        migrate.ensure_schema(db, auto_migrate=True)


def test_tradebot_db_upgrade_works_from_any_directory(database_url, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = processes.environment(database_url)
    assert processes.run(elsewhere, "up1", env, "db", "upgrade") == 0
    assert "upgraded from none" in processes.output_of(elsewhere, "up1")
    assert processes.run(elsewhere, "up2", env, "db", "upgrade") == 0
    assert "already at" in processes.output_of(elsewhere, "up2")
    assert processes.run(elsewhere, "check", env, "db", "check") == 0
    assert "matches the models" in processes.output_of(elsewhere, "check")
