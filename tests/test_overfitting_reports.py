"""The Deflated Sharpe Ratio, the Probability of Backtest Overfitting and the walk-forward's
degradation in every report of ``tradebot backtest``: the text, ``--json`` and ``--html``, each
figure recomputed here independently (every combination backtested again, scipy for the normal
distribution, the moments and the ranks), with the sentence that says what it means."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bot.backtest import data, sweep
from bot.backtest.engine import FillSettings, simulate
from bot.backtest.report import bars_per_year, timeframe_bars_per_year
from bot.backtest.runner import run_backtest
from bot.bars import Timeframe
from plugins.supertrend import SupertrendStrategy
from tests.test_overfitting import reference_dsr, reference_pbo
from tests.test_portfolio import walk, write_csv

ENV = {k: v for k, v in os.environ.items() if not k.startswith(("ALPACA_", "TRADEBOT_", "POLYGON_"))}
GRID = ["--param", "period=5,8,12", "--param", "multiplier=1.5,3"]


def tradebot(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bot", "backtest", "--strategy", "supertrend", *args],
        capture_output=True, text=True, cwd=cwd, env=ENV, timeout=120,
    )  # fmt: skip


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("overfitting")
    write_csv(root / "bars.csv", walk(1_700, 21, 100.0))  # hourly, around the clock
    return root


def returns_of(equity: np.ndarray) -> np.ndarray:
    return np.diff(equity) / equity[:-1]


def test_a_sweep_reports_dsr_and_pbo_in_text_json_and_html(folder):
    run = tradebot("--csv", "bars.csv", *GRID, "--json", "s.json", "--html", "s.html", cwd=folder)
    assert run.returncode == 0, run.stderr
    bars = data.read_csv(folder / "bars.csv")
    combos = sweep.combinations(sweep.parse_grid(["period=5,8,12", "multiplier=1.5,3"]))
    curves = [run_backtest(bars, SupertrendStrategy(**c), FillSettings()).sim.equity for c in combos]
    matrix = np.column_stack([returns_of(e) for e in curves])
    sharpes = matrix.mean(axis=0) / matrix.std(axis=0, ddof=1)
    ppy = bars_per_year(bars, Timeframe.parse("1h"))
    ranked = sweep.rank(
        sweep.run_sweep(bars, SupertrendStrategy, combos, FillSettings(), periods_per_year=ppy), "sharpe"
    )
    chosen = combos.index({k: str(v) for k, v in ranked[0].params.items()})
    dsr, pbo = reference_dsr(matrix[:, chosen], sharpes), reference_pbo(matrix, 16)

    doc = json.loads((folder / "s.json").read_text())["overfitting"]
    d = doc["deflated_sharpe"]
    assert d["dsr"] == pytest.approx(dsr, abs=1e-9)
    assert d["trials"] == 6 and d["observations"] == len(bars) - 1
    assert d["sharpe_per_bar"] == pytest.approx(sharpes[chosen], rel=1e-9)
    assert d["trials_sharpe_variance_per_bar"] == pytest.approx(np.var(sharpes, ddof=1), rel=1e-9)
    assert doc["pbo"]["pbo"] == pytest.approx(pbo, abs=1e-12)
    assert (doc["pbo"]["blocks"], doc["pbo"]["splits"]) == (16, 12_870)
    assert doc["meaning"]["deflated_sharpe"].startswith(f"Deflated Sharpe ratio {dsr:.2f}: the probability")
    assert doc["meaning"]["pbo"].startswith(f"Probability of backtest overfitting {pbo:.2f}: in ")

    out = run.stdout
    assert doc["meaning"]["deflated_sharpe"] in out and doc["meaning"]["pbo"] in out
    assert "6 combinations tried" in out and f"{len(bars) - 1:,} returns" in out
    page = (folder / "s.html").read_text()
    assert "<h2>Overfitting</h2>" in page and "what it means" in page
    assert f'"measure">Deflated Sharpe ratio</td><td data-label="value">{dsr:.2f}</td>' in page
    assert f'"measure">Probability of backtest overfitting</td><td data-label="value">{pbo:.2f}</td>' in page


def test_a_single_backtest_has_no_overfitting_to_report(folder):
    run = tradebot("--csv", "bars.csv", "--json", "one.json", cwd=folder)
    assert run.returncode == 0, run.stderr
    assert "overfitting" not in json.loads((folder / "one.json").read_text())
    assert "Deflated" not in run.stdout


def test_a_walk_forward_reports_each_windows_degradation_dsr_and_pbo(folder):
    run = tradebot(
        "--csv", "bars.csv", *GRID, "--walk-forward", "600/250", "--json", "wf.json", "--html", "wf.html",
        cwd=folder,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    doc = json.loads((folder / "wf.json").read_text())["walk_forward"]
    bars = data.read_csv(folder / "bars.csv")
    ppy = timeframe_bars_per_year(bars, Timeframe.parse("1h"))
    combos = sweep.combinations(sweep.parse_grid(["period=5,8,12", "multiplier=1.5,3"]))
    assert len(doc["windows"]) == 5
    for k, w in enumerate(doc["windows"]):
        lo, b = 250 * k, 250 * k + 600
        assert w["degradation"]["sharpe"] == pytest.approx(
            w["out_of_sample_stats"]["sharpe"] - w["in_sample_stats"]["sharpe"]
        )
        # every combination on the window's in-sample bars, as the sweep ran them
        part = bars[lo:b]
        curves = [
            simulate(part, SupertrendStrategy(**c).compute(part).signal, FillSettings()).equity
            for c in combos
        ]
        matrix = np.column_stack([returns_of(e) for e in curves])
        sharpes = matrix.mean(axis=0) / matrix.std(axis=0, ddof=1)
        chosen = int(np.argmax(sharpes))
        assert {k: float(v) for k, v in w["params"].items()} == {
            k: float(v) for k, v in combos[chosen].items()
        }
        assert w["in_sample_stats"]["sharpe"] == pytest.approx(sharpes[chosen] * np.sqrt(ppy), rel=1e-9)
        got = w["overfitting"]
        assert got["deflated_sharpe"]["dsr"] == pytest.approx(
            reference_dsr(matrix[:, chosen], sharpes), abs=1e-9
        )
        if k < 2:  # the reference CSCV is slow: two windows are enough
            assert got["pbo"]["pbo"] == pytest.approx(reference_pbo(matrix, 16), abs=1e-12)
    summary = doc["summary"]
    assert summary["mean_dsr"] == pytest.approx(
        np.mean([w["overfitting"]["deflated_sharpe"]["dsr"] for w in doc["windows"]])
    )
    assert summary["mean_pbo"] == pytest.approx(
        np.mean([w["overfitting"]["pbo"]["pbo"] for w in doc["windows"]])
    )
    assert set(doc["meaning"]) == {"degradation", "deflated_sharpe", "pbo"}
    out = run.stdout
    header = out.splitlines()[1].split()
    assert header[-5:] == ["change", "OOS", "return", "DSR", "PBO"]
    assert f"(mean {summary['mean_dsr']:.2f}): the probability" in out
    page = (folder / "wf.html").read_text()
    assert "<th>DSR</th><th>PBO</th>" in page and "What the columns mean" in page
