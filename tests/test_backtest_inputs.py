"""Attacks on ``tradebot backtest``'s input and output, each refused before the work starts.

Every test starts from an attack of the hardening issue (#12, item 5) and runs the real command
as a subprocess: impossible prices, epochs that are no time, input that is not CSV text (a 3 GB
file of NUL bytes, ``/dev/zero``), outputs that cannot be written, fixed quantities too large
to count with, and leverage that must be said in the report's heading.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ENV = {k: v for k, v in os.environ.items() if not k.startswith(("ALPACA_", "TRADEBOT_", "POLYGON_"))}
HEADER = "timestamp,open,high,low,close,volume\n"
T0 = 1_704_067_200  # 2024-01-01T00:00:00Z


def rows(n: int = 300, **changes: tuple[int, str]) -> str:
    """``n`` one-minute bars of a gentle zigzag; ``changes`` replaces a whole row: line=(i, text)."""
    out = []
    for i in range(n):
        close = 100 + (i % 20 - 10) * 0.3
        out.append(f"{T0 + 60 * i},{close - 0.1:.2f},{close + 0.5:.2f},{close - 0.5:.2f},{close:.2f},10\n")
    for index, text in changes.values():
        out[index] = text + "\n"
    return HEADER + "".join(out)


def run_all(commands: dict[str, list[str]], cwd: Path) -> dict[str, subprocess.CompletedProcess]:
    """Start every command together (each is a whole ``tradebot backtest`` process); wait for all."""
    running = {}
    for key, args in commands.items():
        running[key] = subprocess.Popen(
            [sys.executable, "-m", "bot", "backtest", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=cwd,
            env=ENV,
        )
    results = {}
    for key, process in running.items():
        out, err = process.communicate(timeout=120)  # a hang guard, not a timing assertion
        results[key] = subprocess.CompletedProcess(process.args, process.returncode, out, err)
    return results


def refused(result: subprocess.CompletedProcess, *parts: str) -> str:
    """Exit 2, nothing on stdout, one line on stderr containing every part."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("tradebot backtest: error: ")
    for part in parts:
        assert part in lines[0], lines[0]
    return lines[0]


# --- impossible prices and times -----------------------------------------------------------------------

PRICE_ATTACKS = {
    # name: (csv text, what the one line must say)
    "high below low, one row": (
        rows(changes=(57, f"{T0 + 60 * 57},100,99,101,100,10")),
        ["line 59:", "high 99 is below low 101"],
    ),
    "zero price, one row": (
        rows(changes=(9, f"{T0 + 60 * 9},100,101,0,100,10")),
        ["line 11:", "low is 0; prices must be above zero"],
    ),
    "negative prices, every row": (
        HEADER + "".join(f"{T0 + 60 * i},-5,-4,-6,-5,10\n" for i in range(50)),
        ["line 2:", "open is -5; prices must be above zero (50 of 50 rows)"],
    ),
    "zero prices, every row": (
        HEADER + "".join(f"{T0 + 60 * i},0,0,0,0,0\n" for i in range(50)),
        ["line 2:", "open is 0; prices must be above zero (50 of 50 rows)"],
    ),
    "close above high": (
        rows(changes=(3, f"{T0 + 60 * 3},100,101,99,102,10")),
        ["line 5:", "close 102 is above high 101"],
    ),
    "epoch 1e30": (
        rows(changes=(0, "1e30,100,101,99,100,10")),
        ["line 2:", "timestamp 1e+30 is outside the times this program handles"],
    ),
    "epoch inf": (
        rows(changes=(4, "inf,100,101,99,100,10")),
        ["line 6:", "timestamp inf is not a time"],
    ),
    "epoch -inf": (
        rows(changes=(0, "-inf,100,101,99,100,10")),
        ["line 2:", "timestamp -inf is not a time"],
    ),
    "an integer epoch past int64 nanoseconds": (
        rows(changes=(0, "9223372036854775807,100,101,99,100,10")),
        ["line 2:", "timestamp 9223372036854775807 is outside the times"],
    ),
    "a date past 2261": (
        "date,open,high,low,close\n2024-01-01,1,2,0.5,1\n9999-12-31,1,2,0.5,1\n",
        ["line 3:", "date 9999-12-31 is outside the times this program handles"],
    ),
}


@pytest.fixture(scope="module")
def price_runs(tmp_path_factory) -> dict[str, subprocess.CompletedProcess]:
    tmp = tmp_path_factory.mktemp("prices")
    commands = {}
    for i, (name, (text, _)) in enumerate(PRICE_ATTACKS.items()):
        path = tmp / f"attack{i}.csv"
        path.write_text(text)
        commands[name] = ["--strategy", "supertrend", "--csv", str(path), "--param", "period=3"]
    return run_all(commands, tmp)


@pytest.mark.parametrize("name", list(PRICE_ATTACKS))
def test_impossible_prices_and_times_are_refused_with_file_and_line(price_runs, name):
    result = price_runs[name]
    index = list(PRICE_ATTACKS).index(name)
    refused(result, f"attack{index}.csv", *PRICE_ATTACKS[name][1])
    assert "RuntimeWarning" not in result.stderr and "1677" not in result.stderr


# --- input that is not CSV text --------------------------------------------------------------------------


# Peak memory is read with wait4 in a small launcher process: a child forked straight from pytest
# (hundreds of MB by the end of a run) reports pytest's size as its own high-water mark.
LAUNCHER = (
    "import os, sys\n"
    "pid = os.fork()\n"
    "if pid == 0:\n"
    "    os.execv(sys.argv[1], sys.argv[1:])\n"
    "_, status, usage = os.wait4(pid, 0)\n"
    "sys.stderr.write(f'PEAK_KIB {usage.ru_maxrss}\\n')\n"
    "sys.exit(os.waitstatus_to_exitcode(status))\n"
)


def run_measured(args: list[str], cwd: Path) -> tuple[subprocess.CompletedProcess, int]:
    """One ``tradebot backtest``, with its own peak resident memory in KiB."""
    done = subprocess.run(
        [sys.executable, "-c", LAUNCHER, sys.executable, "-m", "bot", "backtest", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=ENV,
        timeout=120,  # a hang guard, not a timing assertion
    )
    *lines, peak = done.stderr.splitlines()
    assert peak.startswith("PEAK_KIB "), done.stderr
    stderr = "".join(f"{line}\n" for line in lines)
    return subprocess.CompletedProcess(done.args, done.returncode, done.stdout, stderr), int(peak.split()[1])


def sparse(path: Path, head: bytes, size: int = 3 * 2**30) -> Path:
    """A file of ``size`` bytes: ``head``, then NUL bytes (sparse: it takes no disk)."""
    with path.open("wb") as handle:
        handle.write(head)
        handle.truncate(size)
    return path


@pytest.mark.parametrize("kind", ["3 GB of NUL bytes", "/dev/zero", "a header, then 3 GB of NUL bytes"])
def test_input_that_is_not_csv_text_is_refused_in_bounded_memory(tmp_path, kind):
    if kind == "/dev/zero":
        target = "/dev/zero"
    elif kind == "3 GB of NUL bytes":
        target = str(sparse(tmp_path / "zeros.csv", b""))
    else:
        target = str(sparse(tmp_path / "zeros.csv", HEADER.encode()))
    result, peak = run_measured(["--strategy", "supertrend", "--csv", target], tmp_path)
    refused(result, target, "not CSV text (it contains NUL bytes)")
    assert peak < 300 * 1024, f"peak resident memory {peak / 1024:.0f} MiB"  # it was 6.4 GB


def test_good_rows_then_3_gb_of_nul_bytes_is_refused_in_bounded_memory(tmp_path):
    target = sparse(tmp_path / "tail.csv", rows(3000).encode())
    result, peak = run_measured(["--strategy", "supertrend", "--csv", str(target)], tmp_path)
    refused(result, str(target), "not CSV text")
    assert peak < 300 * 1024, f"peak resident memory {peak / 1024:.0f} MiB"


# --- outputs that cannot be written ----------------------------------------------------------------------

OUTPUT_ATTACKS = {
    "--json in a missing directory": (
        ["--json", "nowhere/out.json"],
        "--json nowhere/out.json: the directory",
    ),
    "--plot in a missing directory": (["--plot", "nowhere/out.png"], "--plot nowhere/out.png: the directory"),
    "--json naming a directory": (["--json", "outdir"], "--json outdir: is a directory"),
    "--plot naming a directory": (["--plot", "outdir"], "--plot outdir: is a directory"),
    "--sweep-csv in a missing directory": (
        ["--param", "period=3,4", "--sweep-csv", "nowhere/s.csv"],
        "--sweep-csv nowhere/s.csv: the directory",
    ),
    "--json over the input": (["--json", "bars.csv"], "that is the input CSV file"),
    "--json and --plot on one file": (["--json", "both", "--plot", "both"], "the same file as --json both"),
}


@pytest.fixture(scope="module")
def output_runs(tmp_path_factory) -> tuple[Path, dict[str, subprocess.CompletedProcess]]:
    tmp = tmp_path_factory.mktemp("outputs")
    (tmp / "bars.csv").write_text(rows(2000))
    (tmp / "outdir").mkdir()
    commands = {
        name: ["--strategy", "supertrend", "--csv", "bars.csv", *args]
        for name, (args, _) in OUTPUT_ATTACKS.items()
    }
    # Checked before the history is read: a missing CSV is not what is reported.
    commands["before reading"] = ["--strategy", "supertrend", "--csv", "missing.csv", "--json", "outdir"]
    return tmp, run_all(commands, tmp)


@pytest.mark.parametrize("name", list(OUTPUT_ATTACKS))
def test_outputs_that_cannot_be_written_are_refused_before_the_run(output_runs, name):
    tmp, results = output_runs
    result = results[name]
    refused(result, OUTPUT_ATTACKS[name][1])
    assert "Traceback" not in result.stderr
    assert (tmp / "bars.csv").read_text() == rows(2000)  # the input is untouched
    assert sorted(p.name for p in tmp.iterdir()) == ["bars.csv", "outdir"]  # nothing half-written


def test_outputs_are_checked_before_the_history_is_read(output_runs):
    _, results = output_runs
    refused(results["before reading"], "--json outdir: is a directory")


# --- fixed quantities and leverage ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sizing_runs(tmp_path_factory) -> tuple[Path, dict[str, subprocess.CompletedProcess]]:
    tmp = tmp_path_factory.mktemp("sizing")
    (tmp / "bars.csv").write_text(rows(300))
    base = ["--strategy", "supertrend", "--csv", "bars.csv", "--param", "period=5", "--param", "multiplier=1"]
    commands = {
        "1e308": [*base, "--fixed-qty", "1e308"],
        "inf": [*base, "--fixed-qty", "inf"],
        "nan": [*base, "--fixed-qty", "nan"],
        "1e400": [*base, "--fixed-qty", "1e400"],
        "leveraged": [*base, "--fixed-qty", "150", "--commission", "0.001", "--json", "lev.json"],
        "bankrupt": [*base, "--fixed-qty", "300", "--commission", "0.001", "--json", "broke.json"],
        "within cash": [*base, "--fixed-qty", "10", "--json", "cash.json"],
        "risk sizing": [*base],
    }
    return tmp, run_all(commands, tmp)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("1e308", "--fixed-qty 1e+308: positions at prices up to 103.2 are too large to compute with"),
        ("inf", "fixed-qty=inf is out of range"),
        ("nan", "fixed-qty=nan is out of range"),
        ("1e400", "fixed-qty=inf is out of range"),
    ],
)
def test_fixed_quantities_that_cannot_be_counted_are_refused(sizing_runs, name, message):
    _, results = sizing_runs
    line = refused(results[name], message)
    assert "nan" not in line.replace("fixed-qty=nan", "")


def expected_leverage(path: Path) -> tuple[float, float]:
    """Worked out from the JSON trades: each entry's cost (commission 0.001 included) over the
    cash before it (the account is all cash between trades), and the lowest the cash went."""
    cash, most, lowest = 10_000.0, 0.0, 10_000.0
    for trade in json.loads(path.read_text())["trades"]:
        cost = trade["qty"] * trade["entry_price"] * 1.001
        most = max(most, cost / cash if cash > 0 else math.inf)
        lowest = min(lowest, cash - cost)
        cash += trade["pnl"]
    return most, lowest


HEADING = re.compile(
    r"LEVERAGE USED: positions cost (up to ([\d,.]+)x|more than all) the cash at entry; "
    r"cash went down to (-?[\d,.]+)"
)


def test_leverage_is_said_in_the_report_heading(sizing_runs):
    tmp, results = sizing_runs
    result = results["leveraged"]
    assert result.returncode == 0, result.stderr
    match = HEADING.fullmatch(result.stdout.splitlines()[2])
    assert match, result.stdout
    most, lowest = expected_leverage(tmp / "lev.json")
    assert 1.5 < most < 10  # 150 units at ~100 against 10,000 of cash, less after losses
    assert float(match.group(2).replace(",", "")) == pytest.approx(most, abs=0.005)
    assert float(match.group(3).replace(",", "")) == pytest.approx(lowest, abs=0.005)


def test_buying_with_no_cash_left_is_said_too(sizing_runs):
    tmp, results = sizing_runs
    result = results["bankrupt"]
    assert result.returncode == 0, result.stderr
    match = HEADING.fullmatch(result.stdout.splitlines()[2])
    assert match and match.group(1) == "more than all", result.stdout
    most, lowest = expected_leverage(tmp / "broke.json")
    assert math.isinf(most)
    assert float(match.group(3).replace(",", "")) == pytest.approx(lowest, abs=0.005)


@pytest.mark.parametrize("name", ["within cash", "risk sizing"])
def test_no_leverage_no_warning(sizing_runs, name):
    _, results = sizing_runs
    result = results[name]
    assert result.returncode == 0, result.stderr
    assert "LEVERAGE" not in result.stdout
    assert result.stdout.splitlines()[2] == ""


def test_absurd_spans_and_grids_are_refused_and_the_store_alone_needs_no_network(tmp_path):
    """`--start 1900-01-01 --end 2100-01-01` in minutes ran for minutes before doing anything, and a
    grid of 1,990,000 combinations would have built them all in memory (issue 20: the research page
    takes the same checks)."""
    results = run_all(
        {
            "span": [
                "--strategy",
                "supertrend",
                "--symbol",
                "AAPL",
                "--timeframe",
                "1m",
                "--source",
                "synthetic",
                "--start",
                "1900-01-01",
                "--end",
                "2100-01-01",
            ],
            "grid": [
                "--strategy",
                "supertrend",
                "--sample",
                "msft-daily",
                "--param",
                "period=1..10000",
                "--param",
                "multiplier=1..100:0.5",
            ],
            "store": [
                "--strategy",
                "supertrend",
                "--symbol",
                "AAPL",
                "--timeframe",
                "1h",
                "--source",
                "store",
                "--data-dir",
                str(tmp_path / "empty"),
                "--start",
                "2024-01-01",
                "--end",
                "2024-02-01",
            ],
        },
        tmp_path,
    )
    refused(results["span"], "spans 105,190,560 bars of 1m", "at most 20,000,000 in one backtest")
    refused(results["grid"], "10,000 period x 199 multiplier is 1,990,000 combinations", "at most 100,000")
    store = results["store"]
    assert store.returncode == 1 and store.stdout == ""
    assert store.stderr.strip() == (
        f"tradebot backtest: error: market data: the local store ({tmp_path / 'empty'}) has no 1h bars of AAPL; "
        "`tradebot data download --symbols AAPL --timeframe 1h --start ...` fetches them"
    )


@pytest.mark.parametrize("workers", ["10000", "0", "-3", "٣", "two"])
def test_a_number_of_sweep_processes_out_of_bounds_is_one_line(tmp_path, workers):
    """`--workers 10000` would have started a process per task, each loading the whole history."""
    sweep = ["--strategy", "supertrend", "--sample", "msft-daily", "--param", "period=7,8"]
    result = run_all({"w": [*sweep, f"--workers={workers}"]}, tmp_path)["w"]
    line = result.stderr.strip().splitlines()[-1]
    assert result.returncode == 2 and result.stdout == ""
    assert (
        line
        == f"tradebot backtest: error: argument --workers: {workers!r} is not a number of processes from 1 to 64"
    )
