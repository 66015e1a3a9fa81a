"""The deployment files agree with the code: Procfile commands parse, app.json names real variables."""

from __future__ import annotations

import json
import shlex
import tomllib
from pathlib import Path

from bot.cli import build_parser
from bot.config import Settings, all_variables

ROOT = Path(__file__).resolve().parents[1]


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(":", 1) for line in lines if line.strip())


def test_procfile_runs_one_web_process_and_migrates_on_release():
    processes = procfile()
    assert processes["web"].strip() == "tradebot run"  # engine, dashboard, API and Telegram webhook
    assert processes["release"].strip() == "tradebot db upgrade"
    assert set(processes) == {"web", "release"}  # a first push starts one web dyno: no ps:scale
    parser = build_parser()
    for command in processes.values():
        program, *args = shlex.split(command)
        assert program == "tradebot"
        assert parser.parse_args(args).func is not None


def test_app_json_declares_postgres_one_web_dyno_and_known_variables():
    app = json.loads((ROOT / "app.json").read_text())
    plans = [addon["plan"] for addon in app["addons"]]
    assert any(plan.startswith("heroku-postgresql") for plan in plans)
    assert app["formation"] == {"web": {"quantity": 1, "size": "basic"}}
    assert app["env"]["TRADEBOT_WEB_PASSWORD"]["generator"] == "secret"  # $PORT binds 0.0.0.0: needs one
    helps = {var.name: var.help for var in all_variables()}
    assert set(app["env"]) <= set(helps)
    for name, entry in app["env"].items():  # the description comes from the one definition
        assert entry["description"].startswith(helps[name]), f"{name}: copy its help from bot/config/model.py"
    Settings.from_mapping({k: v["value"] for k, v in app["env"].items() if "value" in v})  # all valid


def test_python_version_satisfies_the_package():
    version = (ROOT / ".python-version").read_text().strip()
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert requires == ">=3.11" and tuple(map(int, version.split(".")[:2])) >= (3, 11)
