"""`tradebot tick` after an accelerated `run` resumes the simulated clock where the run left it,
plus the real time since (issue 18, point 1).

It used to resume from the last cycle's time alone: every tick computed the same simulated minute
(plus the few seconds a process takes), for as long as the accelerated clock was ahead of real
time, hours of cron ticks on one stale minute. Real processes on one SQLite file.
"""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

from tests import processes

CYCLE = re.compile(r"^Cycle at (\S+ \S+) UTC \(simulated clock\)", re.MULTILINE)


def state(db: Path) -> dict[str, datetime]:
    with sqlite3.connect(db) as c:
        (value,) = c.execute("SELECT value FROM settings WHERE key = 'sim_clock'").fetchone()
    stored = json.loads(value)
    return {k: datetime.fromisoformat(v) for k, v in stored.items()}


def move_wall_back(db: Path, delta: timedelta) -> None:
    """As if ``delta`` of real time had passed since the run stopped."""
    stored = state(db)
    stored["wall"] -= delta
    with sqlite3.connect(db) as c:
        c.execute(
            "UPDATE settings SET value = ? WHERE key = 'sim_clock'",
            (json.dumps({k: v.isoformat() for k, v in stored.items()}),),
        )


def tick(tmp_path: Path, env: dict[str, str]) -> datetime:
    result = subprocess.run(
        [sys.executable, "-m", "bot", "tick"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    match = CYCLE.search(result.stdout)
    assert match, result.stdout
    return datetime.fromisoformat(match.group(1) + "+00:00")


def test_tick_after_an_accelerated_run_computes_a_new_minute_each_real_minute(tmp_path):
    db = tmp_path / "tradebot.db"
    env = processes.environment(f"sqlite:///{db}", TRADEBOT_SIM_SPEED="600", TRADEBOT_SYMBOLS="AAPL")
    run = processes.start(tmp_path, "run", env, "run")
    try:
        processes.wait_for(tmp_path, "run", "bot.engine: tick:", count=3)
        run.send_signal(signal.SIGTERM)
        assert run.wait(timeout=60) == 0, processes.log_of(tmp_path, "run")[-3000:]
    finally:
        if run.poll() is None:
            run.kill()
    stopped = state(db)
    ahead = stopped["simulated"] - stopped["wall"]
    assert ahead > timedelta(minutes=1)  # the accelerated run left the clock ahead of real time

    # An hour of real time later, cron runs `tradebot tick`: it is an hour later on that clock too.
    move_wall_back(db, timedelta(hours=1))
    first = tick(tmp_path, env)
    # The cycle's line gives whole seconds; the stored clock has microseconds.
    assert first >= stopped["simulated"].replace(microsecond=0) + timedelta(hours=1), (first, stopped)
    assert first <= stopped["simulated"] + timedelta(hours=1, minutes=2)

    # And the next tick, a few real seconds later, is a few seconds later on the simulated clock:
    # the clock moves at real speed between processes, never stuck on one minute.
    before = time.monotonic()
    time.sleep(3)
    second = tick(tmp_path, env)
    assert second - first >= timedelta(seconds=3), (first, second)
    assert second - first <= timedelta(seconds=time.monotonic() - before + 60)
