"""Issue 19 item 4: values that were accepted without a word. Each is refused by the settings
loader in one line naming the variable, or has one documented meaning; one value per class goes
through the real ``config``, ``doctor``, ``tick`` and ``run`` (``test_config_attacks``' helper).
The web server's own rules (a password too short for a public address) are ``run``'s, and
``doctor`` reports them.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest

from bot.config import Settings
from bot.doctor import FAIL, OK, check_web, run_doctor
from tests.test_config_attacks import OWN_PREFIXES, ROOT, refused_by_every_command, refused_in_process
from tests.test_doctor import restore_logging  # noqa: F401  (autouse: the doctor installs its log handlers)

ARABIC_3000 = "\u0663\u0660\u0660\u0660"  # ٣٠٠٠
FULL_WIDTH_8000 = "\uff18\uff10\uff10\uff10"  # ８０００


def test_web_host_is_an_address_or_localhost(tmp_path):
    for value in ("nan", "\U0001f680", "x" * 10_000, "my-host.example.com", "127.0.0.1:80", "0.0.0.0/0"):
        line = refused_in_process("TRADEBOT_WEB_HOST", value)
        assert "allowed auto, localhost, or an IP address" in line and len(line) < 300, line
    assert Settings.from_mapping({"TRADEBOT_WEB_HOST": " ::1 "}).tradebot_web_host == "::1"
    assert Settings.from_mapping({"TRADEBOT_WEB_HOST": "LocalHost"}).tradebot_web_host == "localhost"
    refused_by_every_command(tmp_path, "TRADEBOT_WEB_HOST", "nan", "'nan'", "IP address")


def test_only_ascii_digits_are_numbers():
    assert "is not an id" in refused_in_process("TELEGRAM_ALLOWED_CHAT_IDS", "\u0663")  # ٣
    assert "is not an id" in refused_in_process("TELEGRAM_ALLOWED_CHAT_IDS", "111,\uff11\uff11\uff11")
    assert "is not an id" in refused_in_process("TELEGRAM_ALLOWED_USER_IDS", "\u0664\u0662")
    assert "is not an id" in refused_in_process("TELEGRAM_ALLOWED_CHAT_IDS", "9" * 5000)
    for name, value in [
        ("TRADEBOT_WEB_PORT", FULL_WIDTH_8000),
        ("TRADEBOT_WEB_PORT", "\u00b2"),  # ² passes str.isdigit() and then crashed int()
        ("PORT", ARABIC_3000),
        ("TRADEBOT_WEB_HOST", "\u0661\u0662\u0667.0.0.1"),  # ١٢٧.0.0.1
        ("DAILY_SUMMARY_TIME", "\u0662\u0661:\u0660\u0660"),  # ٢١:٠٠
    ]:
        assert "allowed" in refused_in_process(name, value), (name, value)
    assert Settings.from_mapping({"TELEGRAM_ALLOWED_CHAT_IDS": "111, -1001"}).telegram_allowed_chat_ids == (
        111,
        -1001,
    )


def test_summary_time_off_is_spelt_off():
    for value in ("None", "FALSE", "no", "null", "0"):
        line = refused_in_process("DAILY_SUMMARY_TIME", value)
        assert "or off" in line, line
    assert Settings.from_mapping({"DAILY_SUMMARY_TIME": "off"}).daily_summary_time is None
    assert Settings.from_mapping({"DAILY_SUMMARY_TIME": ""}).daily_summary_time is None


def test_ports_are_in_the_unprivileged_range(tmp_path):
    for value in ("1", "80", "1023", "0", "65536", "-1", "5000.0"):
        assert "allowed a port number from 1024 to 65535" in refused_in_process("PORT", value), value
    for value in ("1", "443", "70000"):
        line = refused_in_process("TRADEBOT_WEB_PORT", value)
        assert "0 (any free port) or a port number from 1024 to 65535" in line, value
    assert Settings.from_mapping({"PORT": "1024"}).port == 1024
    assert Settings.from_mapping({"TRADEBOT_WEB_PORT": "0"}).tradebot_web_port == "0"
    refused_by_every_command(tmp_path, "PORT", "1", "'1'", "from 1024 to 65535")


def test_web_user_is_one_printable_line():
    for value in ("ann\tbob", "ann\nPaused by admin", "\x1b[31mred", " ann", "", "x" * 41):
        assert "printable characters" in refused_in_process("TRADEBOT_WEB_USER", value), repr(value)
    assert Settings.from_mapping({"TRADEBOT_WEB_USER": "Ann Smith"}).tradebot_web_user == "Ann Smith"


def test_proxy_addresses_are_checked():
    for value in ("heroku", "10.0.0.0/33", "::1/200,", "1.2.3.4:80"):
        assert "allowed auto ($PORT set" in refused_in_process("TRADEBOT_WEB_PROXY", value), value
    parsed = Settings.from_mapping({"TRADEBOT_WEB_PROXY": "127.0.0.1, 10.0.0.0/8"}).tradebot_web_proxy
    assert parsed == "127.0.0.1/32,10.0.0.0/8"


def _doctor(tmp_path, **env: str) -> tuple[int, str]:
    out = io.StringIO()
    environ = {"DATABASE_URL": f"sqlite:///{tmp_path / 'bot.db'}", **env}
    status = run_doctor(env_file=None, environ=environ, out=out, timeout=2)
    return status, out.getvalue()


@pytest.mark.parametrize("password", [" ", "1", "hunter2", "eleven-char"])
def test_a_weak_password_on_a_public_address_is_refused_by_run_and_reported_by_doctor(tmp_path, password):
    settings = Settings.from_mapping({"PORT": "5000", "TRADEBOT_WEB_PASSWORD": password})
    [check] = check_web(settings)
    assert check.level == FAIL and "TRADEBOT_WEB_PASSWORD has" in check.message
    assert "allowed at least 12" in check.message
    assert len(password) < 4 or password not in check.message + check.fix  # never the password itself
    # On loopback a short password is the owner's own business.
    local = Settings.from_mapping({"TRADEBOT_WEB_PASSWORD": password})
    assert check_web(local)[0].level == OK


def test_doctor_reports_the_web_rules(tmp_path):
    status, report = _doctor(tmp_path, PORT="5000", TRADEBOT_WEB_PASSWORD="1")
    assert status == 1
    assert (
        "FAIL  configuration tradebot run would refuse to start: TRADEBOT_WEB_PASSWORD has 1 characters"
        in report
    )
    status, report = _doctor(tmp_path, PORT="5000", TRADEBOT_WEB_PASSWORD="a long enough password")
    assert (
        "dashboard on 0.0.0.0:5000: password or token; believes X-Forwarded-For from the platform's router"
        in report
    )
    # $PORT set, but the dashboard is on another port: not behind the platform's router.
    status, report = _doctor(
        tmp_path, PORT="5000", TRADEBOT_WEB_PORT="6000", TRADEBOT_WEB_PASSWORD="a long enough password"
    )
    assert "dashboard on 0.0.0.0:6000: password or token; believes no X-Forwarded-For" in report
    status, report = _doctor(tmp_path, TRADEBOT_WEB_PROXY="127.0.0.1")
    assert "believes X-Forwarded-For from 127.0.0.1/32" in report
    status, report = _doctor(tmp_path)
    assert "one-time link, loopback only; believes no X-Forwarded-For" in report


def test_run_refuses_a_weak_public_password_in_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(OWN_PREFIXES)}
    env.update(PYTHONPATH=str(ROOT), PORT="5000", TRADEBOT_WEB_PASSWORD="1", TRADEBOT_CONSOLE="off")
    result = subprocess.run(
        [sys.executable, "-m", "bot", "run"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    said = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert result.returncode == 1 and len(said) == 1, said  # as for no password at all
    assert "TRADEBOT_WEB_PASSWORD has 1 characters" in said[0] and "allowed at least 12" in said[0]
    assert not list(tmp_path.glob("*.db*"))
