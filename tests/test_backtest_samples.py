"""The sample dataset: real bars that pass every check, shipped in the wheel (``pip install .``
carries them), and ``tradebot backtest --sample`` from an installed, non-editable copy."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from bot.backtest import data
from bot.backtest.report import iso_times
from bot.backtest.samples import SAMPLES, sample_path

ROOT = Path(__file__).resolve().parents[1]
ENV = {k: v for k, v in os.environ.items() if not k.startswith(("ALPACA_", "TRADEBOT_", "POLYGON_"))}


def test_the_msft_sample_is_the_documented_real_data():
    path = sample_path("msft-daily")
    assert path == ROOT / "bot" / "samples" / "msft_daily.csv"
    bars = data.read_csv(path)  # every check the command makes: prices, order, finiteness
    assert len(bars) == 7_983
    assert iso_times(bars.time[[0, -1]]) == ["1986-03-13T00:00:00Z", "2017-11-10T00:00:00Z"]
    assert (bars.close[0], bars.close[-1]) == (0.07533, 83.87)
    assert data.infer_timeframe(bars).label == "1d"
    assert (np.diff(bars.time) >= 86_400 * 10**9).all()  # one bar per trading day
    readme = (ROOT / "bot" / "samples" / "README.md").read_text()
    assert "`msft-daily` | `msft_daily.csv`" in readme and "7,983" in readme
    assert "CC0" in readme and "pmdarima" in readme  # the source and the licence are named
    assert SAMPLES["msft-daily"].file == path.name


def repository_copy(target: Path) -> Path:
    """The files a fresh clone has (tracked, plus new files not ignored)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def test_the_wheel_carries_the_sample_and_an_installed_copy_backtests_on_it(tmp_path):
    """Builds the wheel with the setuptools backend in this environment (offline), installs it
    into a folder and runs the installed package, not this checkout."""
    source = repository_copy(tmp_path / "src")
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    build = subprocess.run(
        [sys.executable, "-c", f"import setuptools.build_meta as b; print(b.build_wheel({str(wheels)!r}))"],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    wheel = wheels / build.stdout.strip().splitlines()[-1]
    names = zipfile.ZipFile(wheel).namelist()
    assert "bot/samples/msft_daily.csv" in names and "bot/samples/README.md" in names
    assert zipfile.ZipFile(wheel).read("bot/samples/msft_daily.csv") == sample_path("msft-daily").read_bytes()

    installed = tmp_path / "site"
    pip = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-index",
            "--target",
            str(installed),
            str(wheel),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert pip.returncode == 0, pip.stderr[-3000:]
    probe = (
        "import sys, bot.backtest.samples as s\n"
        "print(s.sample_path('msft-daily'))\n"
        "from bot.cli import main\n"
        "sys.exit(main(['backtest', '--strategy', 'supertrend', '--sample', 'msft-daily']))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**ENV, "PYTHONPATH": str(installed)},
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    first, *report = run.stdout.splitlines()
    assert Path(first) == installed / "bot" / "samples" / "msft_daily.csv"
    assert re.match(r"supertrend\(period=10,multiplier=3\) on msft-daily sample: 7,983 bars of 1d", report[0])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sample", "sp500"], "--sample 'sp500': no such sample (there are: msft-daily)"),
        (
            ["--sample", "msft-daily", "--csv", "x.csv"],
            "--sample replaces --csv and --symbol: give one of them",
        ),
        (
            ["--sample", "msft-daily", "--symbol", "MSFT"],
            "--sample replaces --csv and --symbol: give one of them",
        ),
    ],
)
def test_a_wrong_sample_is_one_line(tmp_path, args, message):
    done = subprocess.run(
        [sys.executable, "-m", "bot", "backtest", "--strategy", "supertrend", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=ENV,
        timeout=60,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [f"tradebot backtest: error: {message}"]
