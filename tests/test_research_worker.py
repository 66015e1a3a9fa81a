"""The research worker as processes: below the bot, within its memory, and never left behind.

Jobs are started through the real web server (as the page starts them) and their processes are
read from /proc: the worker and every process of its sweep run at nice 19 with RLIMIT_AS at the
cap; a job beyond its cap fails with one line while the bot trades on; cancel, the bot's shutdown
and the bot's death (SIGKILL) each leave no process of the job behind.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from bot.bars import Bars, Timeframe
from bot.data.store import BarStore, Span, to_ns
from bot.research import supervisor
from bot.research.supervisor import group_members
from bot.research.worker import NICE
from tests.test_research_api import SWEEP, bearer, build, wait_for
from tests.webapp import WebThread

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/stat").exists(), reason="reads processes from /proc (Linux)"
)

LONG = {**SWEEP, "params": {"period": "5..404", "multiplier": "1..5"}}  # 2,000 backtests: seconds


def nice_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_bytes()
    return int(stat[stat.rindex(b")") + 2 :].split()[16])  # field 19: nice


def address_cap_of(pid: int) -> str:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max address space"):
            return line.split()[3]  # the soft limit, in bytes
    raise AssertionError("no address space line")


def worker_pid(folder: Path, seconds: float = 30) -> int:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = list(folder.glob("*/worker.pid"))
        if found:
            return int(found[0].read_text())
        time.sleep(0.05)
    raise AssertionError("no worker started")


def gone(pgid: int, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not group_members(pgid):
            return True
        time.sleep(0.05)
    return False


def test_the_worker_and_its_pool_run_at_the_lowest_priority_within_the_cap_and_cancel_leaves_nothing(
    tmp_path,
):
    app = build(tmp_path, TRADEBOT_RESEARCH_WORKERS="2", TRADEBOT_RESEARCH_MEMORY_MB="1536")
    with WebThread(app) as web, bearer(web) as client:
        job = client.post("/api/v1/research/jobs", json=LONG).json()
        pgid = worker_pid(tmp_path / "research")
        deadline = time.monotonic() + 60
        while len(group_members(pgid)) < 3 and time.monotonic() < deadline:  # the worker and its two
            time.sleep(0.05)
        members = group_members(pgid)
        assert len(members) >= 3, members
        for pid in members:
            assert nice_of(pid) == NICE, pid
            assert address_cap_of(pid) == str(1536 * 2**20), pid
            names = {
                item.split(b"=", 1)[0] for item in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            }
            assert b"ALPACA_API_SECRET" not in names and b"OPENBLAS_NUM_THREADS" in names, pid
        assert nice_of(os.getpid()) == 0  # the bot's own process is untouched
        assert resource.getrlimit(resource.RLIMIT_AS)[0] == resource.RLIM_INFINITY
        canceled = client.delete(f"/api/v1/research/jobs/{job['id']}").json()
        assert canceled["state"] == "canceled"
        assert gone(pgid, 5), f"left behind: {group_members(pgid)}"
    app.db.dispose()


def store_of_bars(folder: Path, count: int) -> None:
    """``count`` one-minute bars of BTC/USD in the local store (a random walk; written in one go)."""
    rng = np.random.default_rng(7)
    start = datetime(2020, 1, 1, tzinfo=UTC)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.001, count)))
    open_ = np.r_[close[0], close[:-1]]
    times = to_ns(start) + np.arange(count, dtype=np.int64) * 60 * 10**9
    bars = Bars(
        times,
        open_,
        np.maximum(open_, close) * 1.001,
        np.minimum(open_, close) * 0.999,
        close,
        np.ones(count),
    )
    end = int(times[-1]) + 60 * 10**9
    BarStore(folder).write("BTC/USD", Timeframe.parse("1m"), bars, [Span(to_ns(start), end, "alpaca")])


def test_a_job_beyond_its_memory_cap_fails_in_one_line_and_the_bot_trades_on(tmp_path, caplog, monkeypatch):
    # Out of address space, a library may fail (MemoryError) or hang (pyarrow waiting for a thread
    # it could not start): the supervisor stops a job stuck at its cap, here after 1 s, not 10.
    monkeypatch.setattr(supervisor, "STALL_SECONDS", 1.0)
    app = build(tmp_path, TRADEBOT_RESEARCH_MEMORY_MB="384")
    store_of_bars(tmp_path / "store", 2_000_000)
    body = {"strategy": "supertrend", "data": "store", "symbols": ["BTC/USD"], "timeframe": "1m"}
    body |= {"start": "2020-01-01", "end": "2023-10-20"}
    with WebThread(app) as web, bearer(web) as client:
        started = client.post("/api/v1/research/jobs", json=body)
        assert started.status_code == 202, started.text
        pgid = worker_pid(tmp_path / "research")
        job = wait_for(client, started.json()["id"])["job"]
        assert job["state"] == "failed"
        assert job["error"].startswith("out of memory: ") and "TRADEBOT_RESEARCH_MEMORY_MB" in job["error"]
        assert "\n" not in job["error"]
        assert gone(pgid)
        report = app.engine.tick()  # the bot trades on, in its own process, without the cap
        assert report.finished >= report.started and not report.strategy_errors
        assert resource.getrlimit(resource.RLIMIT_AS)[0] == resource.RLIM_INFINITY
        assert client.get("/api/v1/status").json()["state"] == "active"
    failures = [
        r.getMessage()
        for r in caplog.records
        if "research job" in r.getMessage() and "failed" in r.getMessage()
    ]
    assert len(failures) == 1 and "out of memory" in failures[0], failures
    app.db.dispose()


def test_the_bots_shutdown_kills_a_running_job(tmp_path):
    app = build(tmp_path)
    with WebThread(app) as web, bearer(web) as client:
        client.post("/api/v1/research/jobs", json=LONG)
        pgid = worker_pid(tmp_path / "research")
        assert group_members(pgid)
    # WebThread's exit is the bot's shutdown of its web server: the job dies with it.
    assert gone(pgid, 5), f"left behind: {group_members(pgid)}"
    state = json.loads(next((tmp_path / "research").glob("*/state.json")).read_text())
    assert state["state"] == "canceled" and state["error"] == "canceled by shutdown"
    app.db.dispose()


BOT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from bot.config import Settings
    from bot.research.jobs import JobRequest
    from bot.research.supervisor import Research, ResearchSettings
    folder = Path(sys.argv[1])
    settings = Settings.from_mapping({"TRADEBOT_RESEARCH_DIR": str(folder)})
    lab = Research(ResearchSettings.from_settings(settings), settings)
    lab.start(JobRequest.model_validate_json(sys.argv[2]), "test")
    print("started", flush=True)
    time.sleep(600)
    """
)


def test_a_job_dies_with_the_bot_even_after_sigkill(tmp_path):
    bot = subprocess.Popen(
        [sys.executable, "-c", BOT, str(tmp_path / "research"), json.dumps(LONG)],
        stdout=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("TRADEBOT_")},
    )
    try:
        assert bot.stdout is not None and bot.stdout.readline().strip() == "started"
        pgid = worker_pid(tmp_path / "research")
        assert group_members(pgid)
        bot.send_signal(signal.SIGKILL)  # no clean-up code runs in the bot
        bot.wait(10)
        assert gone(pgid, 10), f"left behind: {group_members(pgid)}"
    finally:
        bot.kill()
        bot.wait(10)
