"""The first run as a new user makes it (issue 18, point 3), with real processes.

- `.env.example` copied to `.env`, as its header says, must run as copied: it used to set
  PORT=8443, so `run` refused (the dashboard would listen on 0.0.0.0 without a password) and the
  refusal never named PORT; at a terminal its LOG_LEVEL=INFO also showed the full log.
- A refusal caused by a variable names it and where its value came from (.env, the environment).
- `tradebot doctor` fails what `run` refuses (the web address, port, password or token): it
  said "6 ok" for a configuration `run` would not start.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.processes import ISOLATED_PREFIXES
from tests.terminal import CTRL_C, Terminal

ROOT = Path(__file__).resolve().parents[1]
OLD_EXAMPLE_PORT = "PORT=8443\n"  # what the example set before this fix


def user_env(**env: str) -> dict[str, str]:
    """A user's shell: no tradebot setting inherited; only ``env`` and what .env says."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(ISOLATED_PREFIXES)}
    environ.update(PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", **env)
    return environ


def tradebot(cwd: Path, *args: str, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=cwd,
        env=user_env(**env),
        input=stdin,
        stdin=subprocess.DEVNULL if stdin is None else None,
        capture_output=True,
        text=True,
        timeout=90,
    )


def copied_example(folder: Path, extra: str = "") -> Path:
    shutil.copy(ROOT / ".env.example", folder / ".env")
    if extra:
        with (folder / ".env").open("a") as env:
            env.write(extra)
    return folder


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_example_copied_to_dot_env_runs_as_copied(tmp_path):
    folder = copied_example(tmp_path)
    doctor = tradebot(folder, "doctor", TRADEBOT_WEB_PORT=str(free_port()))
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert "FAIL" not in doctor.stdout
    # The example's own web settings (auto: loopback, port 8000 unless it is taken).
    run = tradebot(folder, "run", stdin="/status\n")
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Mode: SIMULATED market" in run.stdout
    assert "error" not in run.stderr.lower(), run.stderr[-3000:]


def test_at_a_terminal_the_copied_example_is_as_quiet_as_no_dot_env(tmp_path):
    """LOG_LEVEL is left commented out: set, even to INFO, it puts the full log on the screen."""
    folder = copied_example(tmp_path)
    term = Terminal(folder, user_env(TRADEBOT_WEB_PORT="off", TRADEBOT_SIM_SPEED="600"), "run")
    try:
        term.wait_for("Type /help")
        term.wait_for("ALERT tradebot started")
        term.type(CTRL_C)
        term.wait_exit(60)
    finally:
        term.close()
    screen = term.screen
    assert "Full log: " in screen, screen
    assert " INFO " not in screen, screen


@pytest.mark.parametrize(
    ("env_file", "env", "named"),
    [
        # The example as it was: PORT from .env makes the address 0.0.0.0.
        (OLD_EXAMPLE_PORT, {}, ["PORT='8443' (from .env)", "remove PORT from .env"]),
        # A platform sets PORT in the environment; no password.
        ("", {"PORT": "8443"}, ["PORT='8443' (from the environment)"]),
        ("", {"TRADEBOT_WEB_HOST": "0.0.0.0"}, ["TRADEBOT_WEB_HOST='0.0.0.0' (from the environment)"]),
        ("TRADEBOT_WEB_HOST=192.168.7.7\n", {}, ["TRADEBOT_WEB_HOST='192.168.7.7' (from .env)"]),
    ],
    ids=["port-in-dot-env", "port-in-environment", "host-in-environment", "host-in-dot-env"],
)
def test_doctor_fails_what_run_refuses_and_both_name_the_variable_and_its_source(
    tmp_path, env_file, env, named
):
    folder = copied_example(tmp_path, env_file)
    run = tradebot(folder, "run", stdin="/status\n", **env)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "tradebot: error: web server: the dashboard would listen on" in run.stderr
    doctor = tradebot(folder, "doctor", **env)
    assert doctor.returncode == 1, doctor.stdout
    [failed] = [line for line in doctor.stdout.splitlines() if line.startswith("FAIL")]
    assert failed.startswith(
        "FAIL  configuration tradebot run would refuse to start: the dashboard would listen on"
    )
    for text in named:
        assert text in run.stderr, run.stderr
        assert text in failed, failed


def test_doctor_fails_a_port_in_use_that_run_refuses(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = str(busy.getsockname()[1])
        run = tradebot(tmp_path, "run", stdin="/status\n", TRADEBOT_WEB_PORT=port)
        doctor = tradebot(tmp_path, "doctor", TRADEBOT_WEB_PORT=port)
    assert run.returncode == 1 and f"port {port} on 127.0.0.1 is in use" in run.stderr, run.stderr
    assert doctor.returncode == 1, doctor.stdout
    assert (
        f"FAIL  web           tradebot run would refuse to start: port {port} on 127.0.0.1 is in use"
        in doctor.stdout
    )


def test_an_invalid_value_says_where_it_was_set(tmp_path):
    (tmp_path / ".env").write_text("MAX_POSITION_PCT=100\n")
    from_file = tradebot(tmp_path, "run")
    assert from_file.returncode == 2
    assert from_file.stderr.strip() == (
        "tradebot: error: MAX_POSITION_PCT='100' is invalid: allowed a number from 1 to 50 "
        "(the bounds /risk set allows); set in .env"
    )
    from_environment = tradebot(tmp_path, "doctor", MAX_POSITION_PCT="99")
    assert from_environment.returncode == 2
    assert from_environment.stdout.rstrip().endswith("; set in the environment")
