"""What ``tradebot --help`` and a backtest on a file import (issue 10: the backtest on a million
bars must start and finish within a second, so it loads only what it uses).

Structural, not timed: each command runs in a fresh interpreter and the test reads ``sys.modules``
afterwards. The backtest reads its few variables through ``bot.backtest.config`` instead of the
typed settings; the second half holds that reader equal to ``Settings`` on valid and invalid values.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from bot.backtest.config import BacktestConfig, BacktestConfigError, load_backtest_config
from bot.config import ConfigError, Settings

ENV = {k: v for k, v in os.environ.items() if not k.startswith(("ALPACA_", "TRADEBOT_", "POLYGON_"))}

# Libraries neither command uses: the typed settings, the database and its migrations, the front
# ends, the brokers' SDKs, the web server, the scheduler, pandas and plotting.
NOT_IMPORTED = (
    "pydantic",
    "pydantic_core",
    "sqlalchemy",
    "sqlmodel",
    "alembic",
    "psycopg",
    "telegram",
    "apscheduler",
    "alpaca",
    "httpx",
    "fastapi",
    "starlette",
    "uvicorn",
    "pandas",
    "matplotlib",
    "dask",
)

PROBE = (
    "import sys\n"
    "from bot.cli import main\n"
    "try:\n"
    "    code = main(sys.argv[1:])\n"
    "except SystemExit as exc:\n"
    "    code = exc.code\n"
    "print('MODULES ' + ' '.join(sorted({m.split('.')[0] for m in sys.modules})), file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def imported_by(tmp_path, *args: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        env=ENV,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith("MODULES ")
    return set(line.split()[1:])


def test_tradebot_help_imports_none_of_the_heavy_libraries(tmp_path):
    imported = imported_by(tmp_path, "--help")
    assert "bot" in imported  # the probe sees imports at all
    assert not imported & set(NOT_IMPORTED), sorted(imported & set(NOT_IMPORTED))


def test_a_backtest_on_a_file_with_json_imports_none_of_the_heavy_libraries(tmp_path):
    imported = imported_by(
        tmp_path, "backtest", "--strategy", "supertrend", "--sample", "msft-daily", "--json", "o.json"
    )
    assert {"numpy", "pyarrow", "pluggy"} <= imported  # the probe sees the libraries the work uses
    assert not imported & set(NOT_IMPORTED), sorted(imported & set(NOT_IMPORTED))
    assert json.loads((tmp_path / "o.json").read_text())["n_trades"] > 0


def test_a_bad_risk_variable_still_refuses_the_backtest_in_one_line(tmp_path):
    env = {**ENV, "STOP_LOSS_PCT": "abc", "MAX_OPEN_TRADES": "0"}
    done = subprocess.run(
        [sys.executable, "-m", "bot", "backtest", "--strategy", "supertrend", "--sample", "msft-daily"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 2
    assert "STOP_LOSS_PCT='abc' is invalid: allowed a number from 0.2 to 20" in done.stderr
    assert "MAX_OPEN_TRADES='0' is invalid: allowed a number from 1 to 50" in done.stderr


def test_a_risk_limit_in_env_file_reaches_the_backtest(tmp_path):
    (tmp_path / ".env").write_text("STOP_LOSS_PCT=3.5\nTRADEBOT_DASK_SCHEDULER=tcp://h:1\n")
    config = load_backtest_config(environ={}, env_file=tmp_path / ".env")
    assert config.stop_loss_pct == 3.5 and config.tradebot_dask_scheduler == "tcp://h:1"
    config = load_backtest_config(environ={"STOP_LOSS_PCT": "1.5"}, env_file=tmp_path / ".env")
    assert config.stop_loss_pct == 1.5  # the environment wins, as in Settings.load


# ---------------------------------------------------------------- the same rules as Settings

VARIABLES = [
    "RISK_PER_TRADE_PCT",
    "MAX_POSITION_PCT",
    "STOP_LOSS_PCT",
    "TAKE_PROFIT_PCT",
    "MAX_PORTFOLIO_RISK_PCT",
    "MAX_OPEN_TRADES",
    "DAILY_LOSS_LIMIT_PCT",
    "TRADEBOT_PURE_PYTHON",
    "TRADEBOT_DASK_SCHEDULER",
]
VALUES = [
    "2",
    " 2 ",
    "2.5",
    "5.0",
    "5.00",
    "5.",
    "05",
    "1e1",
    ".5",
    "5e-1",
    "+3",
    "-0",
    "0",
    "100",
    "50",
    "0.1",
    "0.09",
    "nan",
    "-nan",
    "inf",
    "Infinity",
    "abc",
    "",
    "0x2",
    "2_0",
    "1_",
    "_1",
    "1__0",
    "1 0",
    "5\n",
    "\u0665",
    "\uff15",
    "yes",
    "YES",
    "no",
    "1",
    "true",
    "True",
    " true ",
    "T",
    "on",
    "off",
    "f",
    "n",
    "tcp://10.0.0.5:8786",
    "10.0.0.5:8786",
    "TCP://sched.example:8786",
    "tcp://[::1]:8786",
    "http://10.0.0.5:8786",
    "garbage",
    "tcp://h:0",
    "tcp://h:65536",
    "tcp://h:8786/path",
    "999.1.1.1:8786",
    "x" * 80,
]


def _settings_outcome(name: str, value: str):
    try:
        return getattr(Settings.from_mapping({name: value}), name.lower())
    except ConfigError as exc:
        return ("error", exc.lines)


def _light_outcome(name: str, value: str):
    try:
        return getattr(load_backtest_config(environ={name: value}, env_file=None), name.lower())
    except BacktestConfigError as exc:
        return ("error", exc.lines)


@pytest.mark.parametrize("name", VARIABLES)
def test_the_backtest_reader_takes_and_refuses_what_settings_does(name):
    for value in VALUES:
        assert _light_outcome(name, value) == _settings_outcome(name, value), (name, value)


def test_the_backtest_reader_has_the_settings_defaults():
    defaults = Settings.from_mapping({})
    config = load_backtest_config(environ={}, env_file=None)
    assert isinstance(config, BacktestConfig)
    for name in VARIABLES:
        assert getattr(config, name.lower()) == getattr(defaults, name.lower()), name
