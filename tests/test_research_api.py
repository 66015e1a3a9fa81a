"""``/api/v1/research`` over real HTTP and the real WebSocket: research jobs from the dashboard.

A real web server (``tests/webapp.py``) around an app on a temporary SQLite file; each job is a
real worker process running ``tradebot backtest``. The figures the API gives are checked against
what ``tradebot backtest --json`` writes for the same command line, run as its own process; every
refusal is the command's own line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from bot.bars import Timeframe
from bot.data.store import BarStore, Span, to_ns
from bot.data.synthetic import SyntheticMarket
from tests.helpers import make_app
from tests.webapp import WebThread, logged_in

PASSWORD = "research password"
TOKEN = "research-token-0123456789abcdef"
ROOT = Path(__file__).resolve().parents[1]
SWEEP = {
    "strategy": "supertrend",
    "data": "sample",
    "sample": "msft-daily",
    "params": {"period": "7..10", "multiplier": "2,3"},
}
STORE_START, STORE_END = datetime(2025, 1, 6, tzinfo=UTC), datetime(2025, 2, 3, tzinfo=UTC)


def build(tmp_path: Path, *, hold_lease: bool = True, **env: str):
    csv_dir = tmp_path / "csv"
    csv_dir.mkdir()
    settings = {
        "TRADEBOT_SYMBOLS": "AAPL,BTC/USD",
        "TRADEBOT_WEB_PORT": "0",
        "TRADEBOT_WEB_PASSWORD": PASSWORD,
        "TRADEBOT_WEB_TOKEN": TOKEN,
        "TRADEBOT_RESEARCH_DIR": str(tmp_path / "research"),
        "TRADEBOT_RESEARCH_CSV_DIR": str(csv_dir),
        "TRADEBOT_DATA_DIR": str(tmp_path / "store"),
        **env,
    }
    app, _ = make_app(tmp_path / "bot.db", **settings)
    if not hold_lease:
        from bot.lease import Lease

        app.lease.release()
        assert Lease(app.db, seconds=600).try_acquire()
    return app


def fill_store(folder: Path, symbols=("AAPL", "BTC/USD")) -> None:
    """An hour bars' history in the local store, as `tradebot data download` leaves it."""
    timeframe = Timeframe.parse("1h")
    bars = SyntheticMarket().fetch(list(symbols), timeframe, STORE_START, STORE_END)
    store = BarStore(folder)
    for symbol in symbols:
        store.write(
            symbol, timeframe, bars[symbol], [Span(to_ns(STORE_START), to_ns(STORE_END), "synthetic")]
        )


@pytest.fixture
def web(tmp_path):
    app = build(tmp_path)
    with WebThread(app) as running:
        running.tmp = tmp_path
        yield running
    app.db.dispose()


def bearer(web) -> httpx.Client:
    return httpx.Client(base_url=web.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)


def wait_for(client: httpx.Client, job_id: str, seconds: float = 120) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        answer = client.get(f"/api/v1/research/jobs/{job_id}").json()
        if answer["job"]["state"] != "running":
            return answer
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} still running after {seconds} s")


def cli_json(argv: list[str], folder: Path, **env: str) -> dict:
    """``tradebot backtest`` run as its own process on the job's command line (with ``env``), its
    JSON read back."""
    out = folder / "cli.json"
    args, skip = [], False
    for item in argv:  # the job's outputs go elsewhere; the rest is the same command
        if skip:
            skip = False
            continue
        if item in ("--json", "--html", "--sweep-csv"):
            skip = True
            continue
        args.append(item)
    done = subprocess.run(
        [sys.executable, "-m", "bot", *args, "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=folder,
        env={k: v for k, v in os.environ.items() if not k.startswith("TRADEBOT_")}
        | {"PYTHONPATH": str(ROOT), **env},
    )
    assert done.returncode == 0, done.stderr
    return json.loads(out.read_text())


# ---------------------------------------------------------------------- a sweep, watched live


def test_a_sweep_runs_with_live_progress_and_gives_the_commands_own_figures(web):
    client, csrf = logged_in(web.url, PASSWORD)
    ws_url = web.url.replace("http://", "ws://") + "/api/v1/ws"
    cookie = {"Cookie": f"tradebot_session={client.cookies['tradebot_session']}"}
    options = client.get("/api/v1/research").json()
    assert options["available"] and options["why_not"] is None
    supertrend = next(s for s in options["strategies"] if s["name"] == "supertrend")
    assert {p["name"] for p in supertrend["params"]} == {"period", "multiplier"}
    assert [s["name"] for s in options["samples"]] == ["msft-daily"]
    assert client.post("/api/v1/research/jobs", json=SWEEP).status_code == 403  # the cookie needs CSRF
    with connect(ws_url, additional_headers=cookie) as socket:
        assert json.loads(socket.recv(5))["type"] == "hello"
        started = client.post("/api/v1/research/jobs", json=SWEEP, headers={"X-CSRF-Token": csrf})
        assert started.status_code == 202, started.text
        job = started.json()
        assert job["state"] == "running" and job["kind"] == "sweep" and job["total"] == 8
        assert job["by"] == "trader (web)" and "sweep of 8 combinations" in job["title"]
        heard = []
        while not heard or heard[-1]["state"] == "running":
            message = json.loads(socket.recv(60))
            if message["type"] == "research":
                heard.append(message["job"])
    assert all(h["id"] == job["id"] for h in heard)
    assert heard[-1]["state"] == "done" and heard[-1]["done"] == 8 and heard[-1]["error"] is None
    stages = [h["stage"] for h in heard]
    assert "sweeping" in stages or any(0 < h["done"] < 8 for h in heard), stages
    result = client.get(f"/api/v1/research/jobs/{job['id']}").json()
    figures = result["figures"]
    assert result["job"]["files"] == ["result.json", "report.html", "sweep.csv", "report.txt", "figures.json"]
    # The same command line, run by hand, gives the same figures.
    argv = json.loads((web.tmp / "research" / job["id"] / "job.json").read_text())["argv"]
    reference = cli_json(argv, web.tmp)
    assert figures["overfitting"] == reference["overfitting"]
    assert 0 <= figures["overfitting"]["deflated_sharpe"]["dsr"] <= 1
    assert 0 <= figures["overfitting"]["pbo"]["pbo"] <= 1
    assert figures["overfitting"]["deflated_sharpe"]["trials"] == 8
    for key in ("return_pct", "sharpe", "max_drawdown_pct", "n_trades", "final_equity"):
        assert figures["stats"][key] == reference[key], key
    rows = figures["sweep"]["rows"]
    assert len(rows) == 8 and figures["sweep"]["rank_by"] == "sharpe"
    assert [r["stats"]["sharpe"] for r in rows] == sorted((r["stats"]["sharpe"] for r in rows), reverse=True)
    assert rows[0]["stats"]["return_pct"] == reference["return_pct"]  # the best is the one reported
    # The files: the JSON the command wrote, the report behind the login with its own policy.
    saved = client.get(f"/api/v1/research/jobs/{job['id']}/result.json")
    assert saved.json()["overfitting"] == reference["overfitting"]
    report = client.get(f"/api/v1/research/jobs/{job['id']}/report.html")
    policy = report.headers["content-security-policy"]
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/html")
    assert (
        "sandbox allow-scripts" in policy and "connect-src 'none'" in policy and policy.count("'sha256-") == 3
    )
    assert "'unsafe-inline'" not in policy.split("script-src")[1].split(";")[0]
    assert "Probability of backtest overfitting" in report.text
    with httpx.Client(base_url=web.url) as anonymous:
        assert anonymous.get(f"/api/v1/research/jobs/{job['id']}/report.html").status_code == 401
        assert anonymous.get("/api/v1/research").status_code == 401
    for name in ("job.json", "worker.log", "..%2F..%2Fbot.db", "state.json", "nothing.html"):
        assert client.get(f"/api/v1/research/jobs/{job['id']}/{name}").status_code == 404, name
    assert client.get("/api/v1/research/jobs/..%2F..%2Fetc").status_code == 404
    listed = client.get("/api/v1/research/jobs").json()
    assert [j["id"] for j in listed] == [job["id"]] and listed[0]["state"] == "done"
    client.close()


def test_a_job_trades_with_the_running_bots_risk_limits(tmp_path):
    limits = {"STOP_LOSS_PCT": "1.5", "TAKE_PROFIT_PCT": "2.5", "RISK_PER_TRADE_PCT": "0.5"}
    app = build(tmp_path, **limits)
    with WebThread(app) as web, bearer(web) as client:
        body = {"strategy": "supertrend", "data": "sample", "sample": "msft-daily"}
        started = client.post("/api/v1/research/jobs", json=body)
        assert started.status_code == 202 and started.json()["kind"] == "backtest", started.text
        figures = wait_for(client, started.json()["id"])["figures"]
        argv = json.loads((tmp_path / "research" / started.json()["id"] / "job.json").read_text())["argv"]
    app.db.dispose()
    assert figures["stats"] == {
        k: v for k, v in cli_json(argv, tmp_path, **limits).items() if k in figures["stats"]
    }
    default = cli_json(argv, tmp_path)
    assert figures["stats"]["return_pct"] != default["return_pct"]  # the limits made a difference


# ---------------------------------------------------------------------- refusals, in one line


def refusal(client: httpx.Client, body: dict) -> str:
    answer = client.post("/api/v1/research/jobs", json=body)
    assert answer.status_code == 422, (body, answer.text)
    detail = answer.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail, detail
    return detail


def test_bad_jobs_are_refused_with_the_commands_own_line(web):
    outside = web.tmp / "secret.csv"
    outside.write_text("timestamp,open,high,low,close\n2024-01-01,1,1,1,1\n")
    (web.tmp / "csv" / "escape.csv").symlink_to(outside)
    (web.tmp / "csv" / "notes.txt").write_text("not a csv")
    fill_store(web.tmp / "store", ("AAPL",))
    with bearer(web) as client:
        unknown = refusal(client, {**SWEEP, "strategy": "nope"})
        cli = subprocess.run(
            [sys.executable, "-m", "bot", "backtest", "--strategy", "nope", "--sample", "msft-daily"],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            timeout=60,
        )
        assert cli.stderr.strip() == f"tradebot backtest: error: {unknown}"
        assert "below its minimum" in refusal(client, {**SWEEP, "params": {"period": "0"}})
        assert "write name=value" in refusal(client, {**SWEEP, "params": {"period": ""}})
        assert "is not a number" in refusal(client, {**SWEEP, "params": {"period": "seven"}})
        assert "at most 100,000 in one sweep" in refusal(
            client, {**SWEEP, "params": {"period": "1..1000", "multiplier": "0.1..100:0.1"}}
        )
        assert "TRAIN 'x' is not a length" in refusal(client, {**SWEEP, "walk_forward": "x/1M"})
        assert "--rank-by 'luck'" in refusal(client, {**SWEEP, "rank_by": "luck"})
        assert "no such sample" in refusal(client, {**SWEEP, "sample": "gold"})
        # The local store: an absurd span, dates that cannot be, a span it does not hold.
        store = {"strategy": "supertrend", "data": "store", "symbols": ["AAPL"], "timeframe": "1m"}
        assert "at most 20,000,000 in one backtest" in refusal(
            client, {**store, "start": "1900-01-01", "end": "2100-01-01"}
        )
        assert "is not a date" in refusal(client, {**store, "start": "soon", "end": "2025-02-01"})
        assert "is not after" in refusal(client, {**store, "start": "2025-02-01", "end": "2025-01-01"})
        # CSV files: only under TRADEBOT_RESEARCH_CSV_DIR, never a way out of it, not even a probe.
        for name in (
            "../secret.csv",
            str(outside),
            "escape.csv",
            "notes.txt",
            "missing.csv",
            "/etc/passwd",
            "",
        ):
            line = refusal(client, {"strategy": "supertrend", "data": "csv", "file": name})
            assert line == f"{name!r} is not a CSV file in TRADEBOT_RESEARCH_CSV_DIR ({web.tmp / 'csv'})", (
                line
            )
        assert client.post("/api/v1/research/jobs", json={**SWEEP, "extra": 1}).status_code == 422
        assert client.get("/api/v1/research/jobs").json() == []  # nothing was started
        assert not list((web.tmp / "research").glob("*/")), "a refused job leaves no folder"
        listed = client.get("/api/v1/research").json()
        assert listed["csv_files"] == []  # the link out and the .txt are never offered
        assert [(s["symbol"], s["timeframe"]) for s in listed["store"]] == [("AAPL", "1h")]


def test_the_local_store_feeds_a_job_with_no_network_and_a_span_it_lacks_is_named(web):
    fill_store(web.tmp / "store")
    with bearer(web) as client:
        base = {
            "strategy": "sma_cross",
            "data": "store",
            "timeframe": "1h",
            "params": {"fast": "5", "slow": "20"},
        }
        lacking = refusal_or_failure(
            client, {**base, "symbols": ["AAPL"], "start": "2024-12-01", "end": "2025-01-20"}
        )
        assert "the local store lacks AAPL 1h bars from 2024-12-01 00:00 to 2025-01-06 00:00" in lacking
        window = {"start": "2025-01-06", "end": "2025-02-03"}
        one = client.post("/api/v1/research/jobs", json={**base, "symbols": ["BTC/USD"], **window})
        assert one.status_code == 202, one.text
        done = wait_for(client, one.json()["id"])
        assert done["job"]["state"] == "done", done["job"]
        assert done["figures"]["kind"] == "backtest" and done["figures"]["bars"] == 28 * 24  # crypto: all day
        stock = client.post("/api/v1/research/jobs", json={**base, "symbols": ["AAPL"], **window})
        done = wait_for(client, stock.json()["id"])
        # A stock's regular hours only, as the live bot sees them (TRADEBOT_EXTENDED_HOURS_BARS=false).
        assert done["job"]["state"] == "done" and 0 < done["figures"]["bars"] < 28 * 24 / 3, done["job"]
        both = client.post(
            "/api/v1/research/jobs",
            json={**base, "symbols": ["AAPL", "BTC/USD"], "start": "2025-01-06", "end": "2025-02-03"},
        )
        assert both.status_code == 202, both.text
        assert both.json()["kind"] == "portfolio"
        done = wait_for(client, both.json()["id"])
        assert done["job"]["state"] == "done", done["job"]
        assert set(done["figures"]["portfolio"]["symbols"]) == {"AAPL", "BTC/USD"}
        assert "report.html" not in done["job"]["files"]  # a portfolio has no one-symbol chart


def refusal_or_failure(client: httpx.Client, body: dict) -> str:
    """The store's coverage is read when the job reads its history: a failed job, in one line."""
    answer = client.post("/api/v1/research/jobs", json=body)
    if answer.status_code == 422:
        return answer.json()["detail"]
    assert answer.status_code == 202, answer.text
    job = wait_for(client, answer.json()["id"])["job"]
    assert job["state"] == "failed" and "\n" not in job["error"]
    return job["error"]


def test_a_walk_forward_from_a_csv_file_reports_each_window(web):
    source = Path(__file__).resolve().parents[1] / "bot" / "samples" / "msft_daily.csv"
    (web.tmp / "csv" / "daily").mkdir()
    (web.tmp / "csv" / "daily" / "msft.csv").write_bytes(source.read_bytes())
    with bearer(web) as client:
        assert client.get("/api/v1/research").json()["csv_files"][0]["path"] == "daily/msft.csv"
        body = {
            "strategy": "sma_cross",
            "data": "csv",
            "file": "daily/msft.csv",
            "params": {"fast": "5,10", "slow": "30,50"},
            "walk_forward": "8y/6y",
        }
        started = client.post("/api/v1/research/jobs", json=body)
        assert started.status_code == 202, started.text
        assert started.json()["kind"] == "walk_forward"
        done = wait_for(client, started.json()["id"])
    assert done["job"]["state"] == "done", done["job"]
    wf = done["figures"]["walk_forward"]
    assert wf["train"] == "8y" and wf["test"] == "6y" and wf["combinations"] == 4
    assert len(wf["windows"]) == 4
    for window in wf["windows"]:
        assert 0 <= window["overfitting"]["deflated_sharpe"]["dsr"] <= 1
        assert window["params"]["fast"] in (5, 10)
    assert "mean_dsr" in wf["summary"] and "mean_pbo" in wf["summary"]


# ---------------------------------------------------------------------- one at a time, standby


def test_one_job_at_a_time_and_cancel_stops_it(web):
    long = {**SWEEP, "params": {"period": "5..404", "multiplier": "1..5"}}
    with bearer(web) as client:
        first = client.post("/api/v1/research/jobs", json=long)
        assert first.status_code == 202, first.text
        second = client.post("/api/v1/research/jobs", json=SWEEP)
        assert second.status_code == 409 and "is still running" in second.json()["detail"]
        assert client.get("/api/v1/research").json()["running"]["id"] == first.json()["id"]
        canceled = client.delete(f"/api/v1/research/jobs/{first.json()['id']}")
        assert canceled.status_code == 200
        assert (
            canceled.json()["state"] == "canceled" and canceled.json()["error"] == "canceled by trader (api)"
        )
        again = client.post("/api/v1/research/jobs", json=SWEEP)
        assert again.status_code == 202, again.text
        assert wait_for(client, again.json()["id"])["job"]["state"] == "done"
        assert client.delete("/api/v1/research/jobs/20990101-000000-abcdef").status_code == 404


def test_a_standby_instance_refuses_research(tmp_path):
    app = build(tmp_path, hold_lease=False)
    with WebThread(app) as web, bearer(web) as client:
        options = client.get("/api/v1/research").json()
        assert not options["available"] and "read-only" in options["why_not"]
        refused = client.post("/api/v1/research/jobs", json=SWEEP)
        assert refused.status_code == 409 and "read-only" in refused.json()["detail"]
        assert not (tmp_path / "research").exists() or not any((tmp_path / "research").iterdir())
    app.db.dispose()


def test_research_can_be_switched_off(tmp_path):
    app = build(tmp_path, TRADEBOT_RESEARCH="false")
    with WebThread(app) as web, bearer(web) as client:
        refused = client.post("/api/v1/research/jobs", json=SWEEP)
        assert refused.status_code == 409 and "TRADEBOT_RESEARCH=false" in refused.json()["detail"]
    app.db.dispose()
