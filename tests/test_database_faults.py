"""Issue 12 item 2: a database that misbehaves is bounded and reported, in one line.

Each test starts from the attack: a Postgres that accepts connections and never answers, a
read-only database, the SQLite file deleted under a running bot, a failing statement.
"""

from __future__ import annotations

import logging
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from bot.doctor import run_doctor
from storage import migrate
from storage import repository as repo
from storage.db import Database, DatabaseError
from tests import processes


@pytest.fixture(autouse=True)
def restore_logging():
    """The doctor installs tradebot's redacting handler on the root logger: put pytest's back, or a
    later test's caplog sees records whose traceback the filter already folded into the text."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP server on 127.0.0.1 that accepts every connection and never says a word."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(50)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for connection in held:
        connection.close()
    server.close()


def test_tick_gives_up_on_a_postgres_that_never_answers(tmp_path, silent_server):
    """It used to hang for ever. The hang guard below is generous; the bound itself is
    storage.db.CONNECT_TIMEOUT (5 s a try; libpq tries up to three times)."""
    env = processes.environment(
        f"postgresql://trader:hunter2hunter2@127.0.0.1:{silent_server}/books", LOG_LEVEL="WARNING"
    )
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, str(processes.ROOT / "tests" / "processes.py"), "tick"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    print(f"tick gave up after {time.monotonic() - started:.1f} s")
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "ConnectionTimeout" in lines[0] and "no answer within 5 s" in lines[0]
    assert "hunter2hunter2" not in result.stdout + result.stderr


def make_immutable(path: Path) -> bool:
    """``chattr +i``: read-only even for root (the tests may run as root, which ignores chmod)."""
    return subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode == 0


@pytest.fixture
def read_only_sqlite(tmp_path) -> Iterator[str]:
    path = tmp_path / "ro.db"
    db = Database(f"sqlite:///{path}")
    migrate.upgrade(db)
    with db.engine.connect() as connection:  # fold the WAL back into the file, then leave it alone
        connection.execute(text("PRAGMA journal_mode=DELETE"))
    db.dispose()
    if not make_immutable(path):
        pytest.skip("chattr +i is not available here")
    yield f"sqlite:///{path}"
    subprocess.run(["chattr", "-i", str(path)], check=True)


def test_the_doctor_finds_a_read_only_database(read_only_sqlite):
    """It used to say all is well (reads work) while `run` waited in standby for ever."""
    import io

    out = io.StringIO()
    status = run_doctor(env_file=None, environ={"DATABASE_URL": read_only_sqlite}, out=out, timeout=3)
    said = out.getvalue()
    assert status == 1, said
    assert "FAIL  database" in said and "read-only" in said


def test_run_stops_at_once_on_a_read_only_database(tmp_path, read_only_sqlite):
    env = processes.environment(read_only_sqlite, LOG_LEVEL="WARNING")
    result = subprocess.run(
        [sys.executable, str(processes.ROOT / "tests" / "processes.py"), "run"],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("tradebot: error: database sqlite:///") and "read-only" in lines[0]


def test_a_sqlite_file_deleted_under_a_running_bot_stops_it(tmp_path):
    """It used to keep trading into the unlinked file, with no alert, and lose every record at exit."""
    path = tmp_path / "bot.db"
    bot = processes.start(tmp_path, "bot", processes.environment(f"sqlite:///{path}"), "run")
    try:
        processes.wait_for(tmp_path, "bot", "tick: ", timeout=60, count=2)
        for leftover in tmp_path.glob("bot.db*"):
            leftover.unlink()
        status = bot.wait(timeout=60)
    finally:
        bot.kill()
    log = processes.log_of(tmp_path, "bot")
    assert status == 4, log[-2000:]
    assert "Trading stopped: database sqlite:///" in log and "the file was deleted while the bot ran" in log


def test_a_database_error_is_one_line_with_its_fix(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")  # no schema: every statement fails
    with pytest.raises(DatabaseError) as caught, db.session() as s:
        repo.set_setting(s, "paused", True)
    message = str(caught.value)
    assert "\n" not in message and "Background on this error" not in message
    assert "[SQL:" not in message and "parameters" not in message.lower()
    assert message.endswith("(the schema is missing: run `tradebot db upgrade`)")
    db.dispose()


def test_a_postgres_statement_that_runs_too_long_is_cut(storage_url):
    if not storage_url.startswith("postgresql"):
        pytest.skip("statement_timeout is a Postgres setting")
    import storage.db as storage_db

    db = Database(storage_url)
    with db.engine.connect() as connection:
        assert (
            connection.execute(text("SHOW statement_timeout")).scalar() == f"{storage_db.STATEMENT_TIMEOUT}s"
        )
    db.dispose()


def test_the_doctor_finds_a_postgres_that_refuses_writes(storage_url):
    """A read-only Postgres (a replica, a read-only user) answers reads: only a write shows it."""
    if not storage_url.startswith("postgresql"):
        pytest.skip("default_transaction_read_only is a Postgres setting")
    import io

    from sqlalchemy import make_url

    db = Database(storage_url)
    migrate.upgrade(db)
    db.dispose()
    url = make_url(storage_url)
    options = url.query["options"] + " -cdefault_transaction_read_only=on"
    read_only = url.update_query_dict({"options": options}).render_as_string(hide_password=False)
    out = io.StringIO()
    status = run_doctor(env_file=None, environ={"DATABASE_URL": read_only}, out=out, timeout=3)
    said = out.getvalue()
    assert status == 1, said
    assert "FAIL  database      refuses writes:" in said and "read-only replica or user" in said


def test_a_new_sqlite_file_waits_for_another_writer_before_turning_to_wal(tmp_path):
    """Turning a file to WAL needs an exclusive lock, and SQLite refuses at once (no busy timeout)
    while another connection holds the write lock: seen as "database is locked" when three
    processes migrated one new file together. The bot waits for the lock instead."""
    path = tmp_path / "new.db"
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("CREATE TABLE t (x INTEGER)")  # a file still in the default rollback journal mode
    holder.execute("BEGIN IMMEDIATE")  # another process's write lock
    holder.execute("INSERT INTO t VALUES (1)")
    release = threading.Timer(0.5, lambda: holder.execute("COMMIT"))
    release.start()
    db = Database(f"sqlite:///{path}")
    try:
        with db.engine.connect() as connection:
            mode = connection.exec_driver_sql("PRAGMA journal_mode").scalar()
            rows = connection.exec_driver_sql("SELECT count(*) FROM t").scalar()
    finally:
        release.join()
        db.dispose()
        holder.close()
    assert mode == "wal"
    assert rows == 1  # it waited for the other writer's commit
