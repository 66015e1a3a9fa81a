"""The backtest's reading and writing at scale: the streamed CSV reader against Python's csv
module, line numbers deep in a file, the ISO times against numpy's, and the JSON equity curve
read back bit for bit from the real ``tradebot backtest --json``."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bot import kernels
from bot.backtest import csvread, data, report
from bot.backtest.engine import FillSettings
from bot.backtest.runner import run_backtest
from bot.bars import NS
from plugins.supertrend import SupertrendStrategy

ENV = {k: v for k, v in os.environ.items() if not k.startswith(("ALPACA_", "TRADEBOT_", "POLYGON_"))}
T0 = 1_704_067_200


def write_rows(path: Path, n: int, note: int = 0, bad: dict[int, str] | None = None) -> Path:
    """``n`` one-minute bars over many read blocks; the first ``note`` rows carry a long extra
    column (so the row estimate from the first 64 KiB is far too small); ``bad`` replaces rows."""
    rng = np.random.default_rng(7)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    lines = ["time,open,high,low,close,volume,note\n"]
    for i in range(n):
        c = close[i]
        row = f"{T0 + 60 * i},{c * 0.999:.6f},{c * 1.002:.6f},{c * 0.997:.6f},{c:.6f},{i % 97},"
        lines.append(row + ("x" * 2000 if i < note else "") + "\n")
    for i, text in (bad or {}).items():
        lines[i + 1] = text + "\n"
    path.write_text("".join(lines))
    return path


def reference(path: Path) -> dict[str, np.ndarray]:
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    out = {k: np.array([float(r[k]) for r in rows]) for k in ("open", "high", "low", "close", "volume")}
    out["time"] = np.array([int(r["time"]) * NS for r in rows], dtype=np.int64)
    return out


@pytest.mark.parametrize("note", [0, 100])
def test_the_streamed_reader_reads_every_row_of_a_many_block_file(tmp_path, note):
    path = write_rows(tmp_path / "bars.csv", 60_000, note=note)
    assert path.stat().st_size > 8 * csvread.BLOCK_SIZE
    bars = data.read_csv(path)
    want = reference(path)
    assert len(bars) == 60_000
    for name in ("time", "open", "high", "low", "close", "volume"):
        assert np.array_equal(getattr(bars, name), want[name]), name
        assert getattr(bars, name).flags.c_contiguous


@pytest.mark.parametrize(
    ("row", "text", "message"),
    [
        (51_234, f"{T0 + 60 * 51_234},1,2,0.5,abc,1,", "line 51236: close has 'abc', which is not a number"),
        (48_000, f"{T0 + 60 * 48_000},1,2,,1,1,", "line 48002: low is empty or NaN"),
        (59_999, f"{T0 + 60 * 59_999},1,2,0.5,1,-3,", "line 60001: volume is -3; it cannot be negative"),
        (30_000, f"{T0 + 60 * 29_000},1,2,0.5,1,1,", "line 30002: timestamp 2024-01-21T03:20:00Z is earlier"),
    ],
)
def test_problems_deep_in_a_file_name_their_line(tmp_path, row, text, message):
    path = write_rows(tmp_path / "bars.csv", 60_000, bad={row: text})
    with pytest.raises(data.DataInputError) as caught:
        data.read_csv(path)
    assert message in str(caught.value)


def test_iso_times_equal_numpy_for_any_second_in_range():
    rng = np.random.default_rng(0)
    seconds = np.r_[
        rng.integers(-9_200_000_000, 9_200_000_000, 100_000),  # 1678 .. 2261
        np.arange(-3 * 86_400, 3 * 86_400, 3_571),  # around the epoch, before it too
        951_782_400,  # 2000-02-29: a leap day in a century year
        4_107_542_400,  # 2100-03-01: 2100 is no leap year
        0,
    ]
    ns = seconds * NS + rng.integers(0, NS, len(seconds))  # parts of a second are dropped
    want = np.datetime_as_string(ns.astype("datetime64[ns]").astype("datetime64[s]"), unit="s")
    assert report.iso_times(ns) == [f"{s}Z" for s in want.tolist()]
    assert report.iso_times(np.empty(0, dtype=np.int64)) == []


def test_equity_numbers_read_back_as_the_same_floats():
    equity = np.array(
        [
            10_000.0,
            10_000.0,
            1e10,
            123456789012.0,
            -5.0,
            -0.0,
            0.0,
            0.0,
            -0.0,
            0.1,
            0.1,
            1e-7,
            1 / 3,
            1e300,
            5e-324,
        ]
    )
    times = T0 * NS + np.arange(len(equity), dtype=np.int64) * 60 * NS
    text = bytes(report._curve_points(times, equity))[2:] + b"}"
    points = json.loads(b"[" + text + b"]")
    assert [p["time"] for p in points] == report.iso_times(times)
    got = [p["equity"] for p in points]
    assert all(type(x) is float for x in got)  # "10000" would read back as an int
    assert [repr(x) for x in got] == [repr(x) for x in equity.tolist()]


@pytest.mark.skipif(kernels.C is None, reason="bot._speedups is not built")
def test_the_c_curve_writer_gives_the_arrow_writers_bytes():
    """``json_curve`` (bot/_speedups.c) puts the points together; the pyarrow path is its
    definition: the same bytes for times across the whole int64 range (before 1970 too, parts of
    a second dropped), runs of equal values and numbers of every kind."""
    rng = np.random.default_rng(5)
    values = rng.normal(1e4, 100, 6_000) * 10.0 ** rng.integers(-8, 12, 6_000)
    values[::7] = np.round(values[::7])  # whole numbers, which pyarrow writes without ".0"
    times = np.sort(rng.integers(-9_200_000_000 * NS, 9_200_000_000 * NS, 6_000))
    cases = [
        (times, values),
        (T0 * NS + np.arange(50_000, dtype=np.int64) * 60 * NS, np.repeat(values[:500], 100)),
        (np.array([-1, 0, 1, 86_399 * NS + NS - 1], dtype=np.int64), np.array([-0.0, 0.0, 5e-324, 1e300])),
        (np.empty(0, dtype=np.int64), np.empty(0)),
    ]
    for t, e in cases:
        c = bytes(report._curve_points(t, e, impl="c"))
        assert c == bytes(report._curve_points(t, e, impl="python"))
    with pytest.raises(ValueError, match="out of range"):
        kernels.C.json_curve(times[:2], np.array([0, 5]), np.array([0, 1], dtype=np.int32), b"1")


def test_the_threaded_writer_writes_the_chunks_in_order(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "CURVE_CHUNK", 1_000)  # 37 chunks on two threads
    times = T0 * NS + np.arange(36_500, dtype=np.int64) * 60 * NS
    equity = 10_000 + np.cumsum(np.random.default_rng(2).normal(0, 1, 36_500))
    report.write_document({"a": 1}, times, equity, tmp_path / "c.json")
    doc = json.loads((tmp_path / "c.json").read_text())
    assert [p["time"] for p in doc["equity_curve"]] == report.iso_times(times)
    assert np.array_equal([p["equity"] for p in doc["equity_curve"]], equity) and doc["a"] == 1


def test_json_equity_curve_of_the_command_is_the_simulation_bit_for_bit(tmp_path):
    path = write_rows(tmp_path / "bars.csv", 150_000)  # more than two chunks of the curve
    out = tmp_path / "out.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bot",
            "backtest",
            "--strategy",
            "supertrend",
            "--csv",
            str(path),
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        env=ENV,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads(out.read_text())
    bars = data.read_csv(path)
    result = run_backtest(bars, SupertrendStrategy(), FillSettings())
    curve = doc["equity_curve"]
    assert len(curve) == 150_000 > 2 * report.CURVE_CHUNK
    assert np.array_equal(np.array([p["equity"] for p in curve]), result.sim.equity)
    assert [p["time"] for p in curve[::9_999]] == report.iso_times(bars.time[::9_999])
    assert curve[-1]["time"] == report.iso_times(bars.time[-1:])[0]
    assert doc["n_trades"] == result.stats.n_trades > 100
    assert doc["final_equity"] == result.stats.final_equity


def test_a_backtest_with_json_never_imports_pandas(tmp_path):
    """pandas costs half a second to import; pyarrow imports it behind ``pa.array`` and
    ``pa.scalar``, so the reader and the JSON writer hand it buffers instead."""
    path = write_rows(tmp_path / "bars.csv", 2_000)
    code = (
        "import sys\n"
        "from bot.cli import main\n"
        f"code = main(['backtest', '--strategy', 'supertrend', '--csv', {str(path)!r}, '--json', 'o.json'])\n"
        "print('pandas imported' if 'pandas' in sys.modules else 'no pandas', file=sys.stderr)\n"
        "sys.exit(code)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=ENV, cwd=tmp_path, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().splitlines()[-1] == "no pandas"
    assert json.loads((tmp_path / "o.json").read_text())["equity_curve"][0]["equity"] == 10_000.0
