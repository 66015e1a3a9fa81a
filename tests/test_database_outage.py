"""Issue 12: the database goes away under a running bot, and comes back.

A real ``tradebot run`` with its console on; the database is cut from outside while it trades:
on SQLite another process holds the write lock, on Postgres the bot's database stops accepting
connections and its connections are killed (``ALLOW CONNECTIONS false``, ``pg_terminate_backend``).
The bot must survive, say so once (not a line per cycle or per heartbeat), answer the console
meanwhile, and trade again once the database is back.
"""

from __future__ import annotations

import re
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url, text

from tests import processes
from tests.conftest import PG_URL, _admin_url

SUSPENDED = "Trading suspended: database "
BACK = "database_back: The database answers again after "


def wait_for_reply(workdir: Path, name: str, pattern: str, timeout: float = 60) -> str:
    """Like ``processes.wait_for``, on what the bot printed (its console): the line matching."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(pattern, processes.output_of(workdir, name), re.M)
        if found:
            return found.group(0)
        time.sleep(0.1)
    raise AssertionError(
        f"{pattern!r} not printed within {timeout}s:\n{processes.output_of(workdir, name)[-3000:]}"
    )


def ride_out_an_outage(
    workdir: Path,
    url: str,
    cut: Callable[[], None],
    restore: Callable[[], None],
    *,
    patience: float = 30,
    **env: str,
) -> tuple[str, str]:
    """Run the bot, cut the database once it trades, type /status, restore; (log, console output).
    ``patience``: how long to wait for the bot to notice the cut (a hang guard, not the bound)."""
    bot = processes.start(
        workdir,
        "bot",
        processes.environment(url, TRADEBOT_CONSOLE="on", TRADEBOT_WEB_PORT="off", **env),
        "run",
        stdin=subprocess.PIPE,
    )
    assert bot.stdin is not None
    try:
        processes.wait_for(workdir, "bot", "tick: ", count=2)
        cut()
        try:
            processes.wait_for(workdir, "bot", SUSPENDED, timeout=patience)
            # The lease can no longer be renewed: by now every cycle and heartbeat has failed a while.
            processes.wait_for(
                workdir,
                "bot",
                "cycles skipped: this instance does not hold the trading lease",
                timeout=patience,
            )
            bot.stdin.write(b"/status\n")
            bot.stdin.flush()
            # Answered, from the books or with the database's one line: never silence, never a traceback.
            reply = wait_for_reply(
                workdir, "bot", r"^(Mode: .*|/status failed: database .*)$", timeout=max(60, patience)
            )
            print("/status during the outage:", reply)
            assert bot.poll() is None, processes.log_of(workdir, "bot")[-3000:]
        finally:
            restore()
        log = processes.wait_for(workdir, "bot", BACK, timeout=max(30, patience))
        back = log.index(BACK)
        ticks = log.count("tick: ")
        log = processes.wait_for(workdir, "bot", "tick: ", count=ticks + 2)
        assert "tick: " in log[back:]
        processes.wait_for(workdir, "bot", "order_placed: ", count=log[:back].count("order_placed: ") + 1)
        bot.stdin.close()
        assert bot.wait(timeout=60) == 0
    finally:
        bot.kill()
        bot.wait()
    return processes.log_of(workdir, "bot"), processes.output_of(workdir, "bot")


def assert_said_once(log: str, out: str) -> None:
    assert log.count(SUSPENDED) == 1, log[-5000:]
    assert out.count("ALERT") >= 2 and out.count(SUSPENDED) == 1, out[-3000:]
    assert out.count("The database answers again after ") == 1, out[-3000:]
    assert log.count("cycles skipped:") == 1, log[-5000:]
    assert "cannot renew the trading lease" not in log
    assert "engine cycle failed" not in log and "Traceback" not in log, log[-5000:]


def test_a_sqlite_write_lock_held_by_another_process(tmp_path):
    path = tmp_path / "bot.db"
    holder: list[sqlite3.Connection] = []

    def cut() -> None:
        connection = sqlite3.connect(path, isolation_level=None, timeout=30)
        connection.execute("BEGIN IMMEDIATE")  # the write lock: the bot's writes wait, then fail
        holder.append(connection)

    def restore() -> None:
        for connection in holder:
            connection.execute("ROLLBACK")
            connection.close()

    # A write waits a second for the lock rather than 30 s, so the test need not hold it that long.
    log, out = ride_out_an_outage(tmp_path, f"sqlite:///{path}", cut, restore, TEST_SQLITE_BUSY_TIMEOUT="1")
    assert_said_once(log, out)
    assert "database is locked (another process holds a write lock" in log


@pytest.fixture
def own_postgres_database() -> Iterator[tuple[str, Callable[[str], None]]]:
    """A database of its own (the outage is cut per database), and a way to run admin SQL."""
    if not PG_URL:
        pytest.skip("TEST_DATABASE_URL is not set")
    name = f"tbtest_outage_{uuid.uuid4().hex[:10]}"
    admin = create_engine(_admin_url(), isolation_level="AUTOCOMMIT")

    def sql(statement: str) -> None:
        with admin.connect() as connection:
            connection.execute(text(statement))

    sql(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(_admin_url()).set(database=name).render_as_string(hide_password=False), sql
    finally:
        sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        sql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
        sql(f'DROP DATABASE IF EXISTS "{name}"')
        admin.dispose()


def test_postgres_refusing_connections_and_killing_them(tmp_path, own_postgres_database):
    url, sql = own_postgres_database
    name = make_url(url).database

    def cut() -> None:
        sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        sql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")

    def restore() -> None:
        sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')

    log, out = ride_out_an_outage(tmp_path, url, cut, restore)
    assert_said_once(log, out)


def test_an_attempt_begun_before_the_database_came_back_does_not_start_a_new_outage():
    """A statement sent into a dead network is answered by nothing, ever: it failed at its 25 s
    deadline after the lease had already seen the database back, and the bot said the outage a
    second time (CI, tests/test_database_blackhole.py)."""
    from bot.outage import DatabaseOutage

    said: list[str] = []
    now = [100.0]
    outage = DatabaseOutage(lambda event: said.append(event.message), monotonic=lambda: now[0])
    cycle_began = now[0]
    outage.failed(RuntimeError("no answer within 5 s"), "renewing the trading lease", backoff=False)
    now[0] = 108.0
    assert outage.recovered() is not None
    now[0] = 125.0
    outage.failed(RuntimeError("no answer within 25 s"), "a cycle", began=cycle_began)
    assert len(said) == 1 and not outage.down
    outage.failed(RuntimeError("gone again"), "a cycle", began=now[0])  # a new attempt: a new outage
    assert len(said) == 2 and outage.down and "gone again" in said[1]
