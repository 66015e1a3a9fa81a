"""The Heroku shape: one `web: tradebot run` process with PORT set does everything.

Real `tradebot run` processes on one SQLite file: the first binds $PORT at once, serves the
dashboard and /healthz, and receives a Telegram webhook update on that same port (answered
through python-telegram-bot to the fake Bot API server); a second one on standby binds its own
$PORT too, answers /healthz as standby and refuses actions. A PORT without a password refuses to
start in one line.
"""

from __future__ import annotations

import json
import time

import httpx
import pytest

from bot.config import Settings
from bot.telegram.transport import TelegramConfig
from tests import processes
from tests.fakes.telegram_api import FakeTelegram
from tests.webapp import logged_in

TOKEN = "123456789:AAHfakeTokenForTests_0123456789abcdefXYZ"
PASSWORD = "heroku dyno password"
ME = 111


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(port: int, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).json()
        except httpx.HTTPError:
            time.sleep(0.05)
    raise AssertionError(f"nothing answered /healthz on port {port} within {timeout}s")


def update(text: str, update_id: int) -> dict:
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "date": int(time.time()),
            "chat": {"id": ME, "type": "private"},
            "from": {"id": ME, "is_bot": False, "first_name": "Ann"},
            "text": text,
            "entities": [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}],
        },
    }


@pytest.fixture
def telegram():
    with FakeTelegram(TOKEN) as fake:
        yield fake


def test_one_web_process_serves_health_dashboard_and_the_telegram_webhook(tmp_path, telegram):
    url = f"sqlite:///{tmp_path / 'tradebot.db'}"
    webhook = "https://my-tradebot.example.com/telegram"
    common = {
        "TRADEBOT_WEB_PORT": "auto",  # $PORT, as on Heroku
        "TRADEBOT_WEB_PASSWORD": PASSWORD,
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_BASE_URL": telegram.base_url,
        "TELEGRAM_ALLOWED_CHAT_IDS": str(ME),
        "TELEGRAM_WEBHOOK_URL": webhook,
        "DAILY_SUMMARY_TIME": "off",
        "TRADEBOT_LEASE_SECONDS": "30",  # a loaded machine must not make the holder look lapsed
    }
    first_port, second_port = free_port(), free_port()
    first = processes.start(
        tmp_path, "first", processes.environment(url, PORT=str(first_port), **common), "run"
    )
    second = None
    try:
        health = wait_healthy(first_port)
        assert health["ok"]
        processes.wait_for(tmp_path, "first", f"listening on 0.0.0.0:{first_port}")
        processes.wait_for(tmp_path, "first", "Telegram connected")
        assert wait_healthy(first_port)["role"] == "active"
        [registered] = telegram.calls_of("setWebhook")
        assert registered.params["url"] == webhook

        secret = TelegramConfig.from_settings(Settings.from_mapping(common)).webhook_secret
        post = f"http://127.0.0.1:{first_port}/telegram"
        body = json.dumps(update("/status", 1))
        forged = httpx.post(post, content=body, headers={"X-Telegram-Bot-Api-Secret-Token": "guess"})
        assert forged.status_code == 403
        mark = telegram.mark()
        answer = httpx.post(post, content=body, headers={"X-Telegram-Bot-Api-Secret-Token": secret})
        assert answer.status_code == 200
        telegram.wait_reply(ME, "Mode: SIMULATED", after=mark)

        # The same port serves the dashboard, behind the password.
        assert httpx.get(f"http://127.0.0.1:{first_port}/api/v1/status").status_code == 401
        client, _ = logged_in(f"http://127.0.0.1:{first_port}", PASSWORD)
        assert client.get("/api/v1/status").json()["state"] == "active"
        client.close()

        # A second dyno on the same database: binds at once, on standby.
        second = processes.start(
            tmp_path, "second", processes.environment(url, PORT=str(second_port), **common), "run"
        )
        assert wait_healthy(second_port)["role"] == "standby"
        processes.wait_for(tmp_path, "second", "standby: the trading lease is")
        standby, csrf = logged_in(f"http://127.0.0.1:{second_port}", PASSWORD)
        assert standby.get("/api/v1/status").json()["read_only"] is True
        assert standby.post("/api/v1/pause", headers={"X-CSRF-Token": csrf}).status_code == 409
        standby.close()
        # Telegram retries a webhook a standby instance cannot take yet.
        retried = httpx.post(
            f"http://127.0.0.1:{second_port}/telegram",
            content=body,
            headers={"X-Telegram-Bot-Api-Secret-Token": secret},
        )
        assert retried.status_code == 503 and retried.headers["retry-after"] == "5"
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.terminate()
        for process in (first, second):
            if process is not None:
                process.wait(30)
    assert PASSWORD not in processes.log_of(tmp_path, "first") + processes.output_of(tmp_path, "first")


def test_port_without_a_password_refuses_to_start_in_one_line(tmp_path):
    url = f"sqlite:///{tmp_path / 'tradebot.db'}"
    status = processes.run(
        tmp_path,
        "open",
        processes.environment(url, PORT=str(free_port()), TRADEBOT_WEB_PORT="auto"),
        "run",
        timeout=60,
    )
    assert status == 1
    err = processes.log_of(tmp_path, "open").strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("tradebot: error: web server: the dashboard would listen on 0.0.0.0:")
    assert "set TRADEBOT_WEB_PASSWORD" in err[0]
    assert not (tmp_path / "tradebot.db").exists()  # refused before touching anything


def test_bots_the_tests_start_serve_no_web_unless_asked(tmp_path):
    """tests/processes.py's environment turns the web off: parallel tests would fight over port 8000."""
    url = f"sqlite:///{tmp_path / 'tradebot.db'}"
    for name, env in (("quiet", {}), ("web", {"TRADEBOT_WEB_PORT": "0"})):  # 0: any free port
        # The console on, reading an empty input: the bot starts its front ends, then ends cleanly.
        status = processes.run(
            tmp_path, name, processes.environment(url, TRADEBOT_CONSOLE="on", **env), "run"
        )
        assert status == 0, processes.log_of(tmp_path, name)[-2000:]
    assert "Symbols: " in processes.log_of(tmp_path, "quiet")
    assert "dashboard and API listening on" not in processes.log_of(tmp_path, "quiet")
    assert "dashboard and API listening on 127.0.0.1:" in processes.log_of(tmp_path, "web")
