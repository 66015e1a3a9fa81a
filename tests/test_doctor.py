"""`tradebot doctor` says what is wrong and how to fix it, and never prints a secret; JSON logs redact too."""

from __future__ import annotations

import io
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bot.doctor import run_doctor
from bot.lease import Lease
from bot.logs import setup_logging
from storage import migrate
from storage.db import Database

TOKEN = "123456789:AAdoctorTestTokenNotReal_0123456789abc"
ALPACA_SECRET = "s3cr3t-alpaca-value-0123456789"


@pytest.fixture(autouse=True)
def restore_logging():
    """The doctor and these tests install tradebot's handlers on the root logger: put pytest's back."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def doctor(**env: str) -> tuple[int, str]:
    out = io.StringIO()
    status = run_doctor(env_file=None, environ=env, out=out, timeout=3)
    return status, out.getvalue()


@pytest.fixture
def telegram_says_unauthorized():
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"ok": False, "error_code": 401, "description": "Unauthorized"}).encode()
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/bot"
    server.shutdown()


def test_the_default_setup_is_healthy(database_url):
    status, said = doctor(DATABASE_URL=database_url)
    assert status == 0, said
    # configuration: summary, dashboard; web: port 8000 free (a warning if something else holds it
    # on this machine); database, broker, telegram
    assert said.count("\nok ") + said.startswith("ok ") >= 5
    assert "simulated" in said and "does not exist yet" in said
    assert "dashboard on 127.0.0.1:8000: one-time link, loopback only" in said


def test_it_names_who_holds_the_trading_lease(database_url):
    db = Database(database_url)
    migrate.upgrade(db)
    lease = Lease(db, seconds=30, holder="worker.1/42/abc123")
    assert lease.try_acquire()
    status, said = doctor(DATABASE_URL=database_url)
    assert status == 0
    assert "trading lease: held by worker.1/42/abc123" in said
    db.dispose()


def test_problems_come_with_fixes_and_no_secret_is_printed(telegram_says_unauthorized):
    status, said = doctor(
        DATABASE_URL="postgresql://tradebot:hunter2hunter2@127.0.0.1:5432/no_such_database_here",
        ALPACA_API_KEY="PKTESTKEY0123456789",
        ALPACA_API_SECRET="",
        TELEGRAM_BOT_TOKEN=TOKEN,
        TELEGRAM_BASE_URL=telegram_says_unauthorized,
    )
    assert status == 1
    assert "FAIL  configuration only one of ALPACA_API_KEY and ALPACA_API_SECRET is set" in said
    assert "FAIL  database      cannot connect" in said
    assert "FAIL  telegram      Telegram rejected the token" in said
    assert said.count("fix: ") >= 3
    for secret in (TOKEN, "hunter2hunter2", "PKTESTKEY0123456789"):
        assert secret not in said


def test_sqlite_on_heroku_is_a_failure(tmp_path):
    status, said = doctor(DATABASE_URL=f"sqlite:///{tmp_path / 'x.db'}", DYNO="worker.1")
    assert status == 1
    assert "heroku addons:create heroku-postgresql" in said
    assert "console" not in said.split("FAIL", 1)[1].split("\n")[0]  # auto: trades on without stdin


def test_a_console_asked_for_on_heroku_is_a_failure(tmp_path):
    """A dyno has no standard input: with TRADEBOT_CONSOLE=on the end of it stops the run."""
    status, said = doctor(
        DATABASE_URL="postgresql://u@127.0.0.1:1/db",
        DYNO="web.1",
        TRADEBOT_CONSOLE="on",
        TRADEBOT_WEB_PORT="off",
    )
    assert status == 1
    assert "TRADEBOT_CONSOLE='on' (from the environment) turns the console on, but a dyno" in said
    assert "heroku config:unset TRADEBOT_CONSOLE" in said


def test_a_bad_variable_is_one_line_and_exit_status_2():
    status, said = doctor(TRADEBOT_LEASE_SECONDS="1")
    assert status == 2
    assert said.splitlines() == [
        "FAIL  configuration TRADEBOT_LEASE_SECONDS='1' is invalid: allowed a number from 3 to 600 seconds; "
        "set in the environment"
    ]


def test_risk_limits_from_the_environment_are_held_to_the_bounds_of_risk_set():
    status, said = doctor(MAX_POSITION_PCT="100")
    assert status == 2
    assert said.splitlines() == [
        "FAIL  configuration MAX_POSITION_PCT='100' is invalid: "
        "allowed a number from 1 to 50 (the bounds /risk set allows); set in the environment"
    ]


def test_a_misspelt_variable_is_pointed_out(tmp_path, database_url):
    env_file = tmp_path / ".env"
    env_file.write_text("MAX_POSITON_PCT=10\n")
    out = io.StringIO()
    status = run_doctor(
        env_file=env_file,
        environ={"DATABASE_URL": database_url, "TRADEBOT_SYMBOL": "TSLA"},
        out=out,
        timeout=3,
    )
    said = out.getvalue()
    assert status == 0, said
    assert "MAX_POSITON_PCT in .env is not a tradebot variable (did you mean MAX_POSITION_PCT?)" in said
    assert (
        "TRADEBOT_SYMBOL in the environment is not a tradebot variable (did you mean TRADEBOT_SYMBOLS?)"
        in said
    )


def test_json_logs_are_one_redacted_object_per_line(capsys):
    setup_logging("INFO", "json", [ALPACA_SECRET])
    log = logging.getLogger("tradebot.test")
    log.info("key %s and token %s", ALPACA_SECRET, TOKEN)
    try:
        raise ValueError(f"boom {ALPACA_SECRET}")
    except ValueError:
        log.exception("failed")
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["level"] == "info" and first["logger"] == "tradebot.test"
    assert first["message"] == "key *** and token ***"
    assert "Traceback" in second["message"] and ALPACA_SECRET not in second["message"]
