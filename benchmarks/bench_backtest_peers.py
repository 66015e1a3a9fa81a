"""Whole-process timing: ``tradebot backtest`` against backtesting.py and numba + vectorbt.

    python benchmarks/bench_backtest_peers.py [--job single|sweep|both] [--rows N] [--runs R]
        [--peers-venv DIR]

Two jobs, each run by every program on the same CSV, each program timed as a separate process
(interpreter start and imports included, as a user runs it), the results checked against ours:

- ``single``: read a 1,000,000-row one-minute OHLCV CSV, compute Supertrend(10, 3) as
  TradingView defines it, go long one unit when it turns up and close when it turns down,
  filling at the next bar's open, no stops; ours writes ``--json`` too (trades, statistics and
  the million-point equity curve), and is timed without it as well. Checked: the same number of
  trades and the same final equity (to a cent) in all three. backtesting.py and vectorbt.
- ``sweep``: the same job over 100,000 bars for 400 combinations (period 5..24, multiplier
  1..5.75 in steps of 0.25), ranked by total return. Ours: ``--param`` ranges, one process per
  core. vectorbt: its parameter broadcasting (``IndicatorFactory`` with a numba apply function,
  ``param_product``, one ``Portfolio.from_signals`` over the 400 columns). Checked: the same top
  10 combinations in the same order, with the same returns. (backtesting.py's ``optimize`` runs
  one backtest after another in Python: not timed, it would take the better part of an hour.)

The peers are installed into a throwaway virtualenv (default /tmp/tradebot-bench-peers), never
into the project's: ``pip install backtesting vectorbt numba``. The load average is printed: the
machine is shared, and a loaded run's figures are provisional.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

# Supertrend direction exactly as bot/kernels.py defines it, for the peers (plain Python).
SUPERTREND_PY = """
def supertrend_direction(h, lo, c, period=10, multiplier=3.0):
    import math
    n = len(c)
    out = [math.nan] * n
    start = period - 1
    total = atr = prev_u = prev_d = 0.0
    prev_line = c_prev = math.nan
    for i in range(n):
        tr = h[i] - lo[i]
        if i > 0:
            x, y = abs(h[i] - c_prev), abs(lo[i] - c_prev)
            if x > tr:
                tr = x
            if y > tr:
                tr = y
        if i < start:
            total += tr
            c_prev = c[i]
            continue
        if i == start:
            total += tr
            atr = total / period
        else:
            atr = atr + (tr - atr) / period
        hl2, off = (h[i] + lo[i]) / 2.0, multiplier * atr
        up, dn = hl2 + off, hl2 - off
        d = dn if (dn > prev_d or c_prev < prev_d) else prev_d
        u = up if (up < prev_u or c_prev > prev_u) else prev_u
        if i == start:
            trend = -1.0
        elif prev_line == prev_u:
            trend = 1.0 if c[i] > u else -1.0
        else:
            trend = -1.0 if c[i] < d else 1.0
        prev_line = d if trend == 1.0 else u
        out[i] = trend
        prev_u, prev_d, c_prev = u, d, c[i]
    return out
"""

BACKTESTING_PY = (
    """
import sys
import numpy as np
import pandas as pd
from backtesting import Backtest, Strategy
"""
    + SUPERTREND_PY
    + """
def direction(high, low, close):
    return np.array(supertrend_direction(high.tolist(), low.tolist(), close.tolist()))

class SupertrendFlip(Strategy):
    def init(self):
        self.dir = self.I(direction, self.data.High, self.data.Low, self.data.Close)

    def next(self):
        if len(self.dir) < 2:
            return
        before, now = self.dir[-2], self.dir[-1]
        if before == -1 and now == 1 and not self.position:
            self.buy(size=1)
        elif before == 1 and now == -1 and self.position:
            self.position.close()

df = pd.read_csv(sys.argv[1], index_col=0, parse_dates=True)
df.columns = [c.capitalize() for c in df.columns]
stats = Backtest(df, SupertrendFlip, cash=10_000, commission=0.0, finalize_trades=True).run()
trades = stats._trades
at_end = float(trades.loc[trades["ExitTime"] == df.index[-1], "PnL"].sum())  # closed by finalize_trades
print("trades", len(trades), "final_equity", round(float(stats["Equity Final [$]"]), 4), "at_end", at_end)
"""
)

VECTORBT = """
import sys
import numpy as np
import pandas as pd
import vectorbt as vbt
from numba import njit

@njit
def supertrend_direction(h, lo, c, period, multiplier):
    n = len(c)
    out = np.full(n, np.nan)
    start = period - 1
    total = 0.0
    atr = 0.0
    prev_u = 0.0
    prev_d = 0.0
    prev_line = np.nan
    c_prev = np.nan
    for i in range(n):
        tr = h[i] - lo[i]
        if i > 0:
            x = abs(h[i] - c_prev)
            y = abs(lo[i] - c_prev)
            if x > tr:
                tr = x
            if y > tr:
                tr = y
        if i < start:
            total += tr
            c_prev = c[i]
            continue
        if i == start:
            total += tr
            atr = total / period
        else:
            atr = atr + (tr - atr) / period
        hl2 = (h[i] + lo[i]) / 2.0
        off = multiplier * atr
        up = hl2 + off
        dn = hl2 - off
        d = dn if (dn > prev_d or c_prev < prev_d) else prev_d
        u = up if (up < prev_u or c_prev > prev_u) else prev_u
        if i == start:
            trend = -1.0
        elif prev_line == prev_u:
            trend = 1.0 if c[i] > u else -1.0
        else:
            trend = -1.0 if c[i] < d else 1.0
        prev_line = d if trend == 1.0 else u
        out[i] = trend
        prev_u = u
        prev_d = d
        c_prev = c[i]
    return out

df = pd.read_csv(sys.argv[1], index_col=0, parse_dates=True)
d = supertrend_direction(df["high"].to_numpy(), df["low"].to_numpy(), df["close"].to_numpy(), 10, 3.0)
prev = np.r_[np.nan, d[:-1]]
# signals on a close fill at the next bar's open
entries = pd.Series(np.r_[False, ((prev == -1) & (d == 1))[:-1]], index=df.index)
exits = pd.Series(np.r_[False, ((prev == 1) & (d == -1))[:-1]], index=df.index)
pf = vbt.Portfolio.from_signals(
    df["close"], entries, exits, price=df["open"], size=1.0, init_cash=10_000, fees=0.0, freq="1min"
)
print("trades", int(pf.trades.count()), "final_equity", round(float(pf.final_value()), 4),
      "sharpe", round(float(pf.sharpe_ratio()), 3))
"""


VECTORBT_SWEEP = (
    VECTORBT.split("df = pd.read_csv")[0]
    + """
@njit
def apply_nb(h, lo, c, period, multiplier):
    out = np.empty_like(c)
    for col in range(c.shape[1]):
        out[:, col] = supertrend_direction(h[:, col], lo[:, col], c[:, col], period, multiplier)
    return out

Supertrend = vbt.IndicatorFactory(
    input_names=["high", "low", "close"], param_names=["period", "multiplier"], output_names=["direction"]
).from_apply_func(apply_nb, numba_loop=True)

df = pd.read_csv(sys.argv[1], index_col=0, parse_dates=True)
periods = list(range(5, 25))
multipliers = [1.0 + 0.25 * k for k in range(20)]
st = Supertrend.run(
    df["high"], df["low"], df["close"], period=periods, multiplier=multipliers, param_product=True
)
d = st.direction.to_numpy()
prev = np.vstack([np.full((1, d.shape[1]), np.nan), d[:-1]])
turned_up, turned_down = (prev == -1) & (d == 1), (prev == 1) & (d == -1)
# signals on a close fill at the next bar's open
none = np.zeros((1, d.shape[1]), dtype=bool)
entries = pd.DataFrame(np.vstack([none, turned_up[:-1]]), index=df.index, columns=st.direction.columns)
exits = pd.DataFrame(np.vstack([none, turned_down[:-1]]), index=df.index, columns=st.direction.columns)
pf = vbt.Portfolio.from_signals(
    df["close"], entries, exits, price=df["open"], size=1.0, init_cash=10_000, fees=0.0, freq="1min"
)
returns = pf.total_return() * 100
order = np.argsort(-returns.to_numpy(), kind="stable")[:10]
for k in order:
    period, multiplier = returns.index[k]
    print("top", int(period), float(multiplier), repr(float(returns.iloc[k])))
"""
)
SWEEP_GRID = ["--param", "period=5..24", "--param", "multiplier=1..5.75:0.25"]


def write_csv(path: Path, rows: int) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_backtest import make_bars

    from bot.backtest.report import iso_times

    bars = make_bars(rows)
    stamps = iso_times(bars.time)
    with path.open("w") as out:
        out.write("timestamp,open,high,low,close,volume\n")
        for i in range(rows):
            out.write(
                f"{stamps[i]},{bars.open[i]:.4f},{bars.high[i]:.4f},{bars.low[i]:.4f},{bars.close[i]:.4f},1\n"
            )


def ensure_peers(venv: Path) -> Path:
    python = venv / "bin" / "python"
    probe = [str(python), "-c", "import backtesting, vectorbt, numba"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    print(f"installing backtesting, vectorbt and numba into {venv} (once) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "backtesting", "vectorbt", "numba"], check=True
    )
    return python


def run_once(command: list[str]) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds of the process and its children, stdout)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{command[:2]} failed:\n{done.stderr[-2000:]}")
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return seconds, cpu, done.stdout


def timed_in_turn(commands: dict[str, list[str]], runs: int) -> dict[str, tuple[float, float, str]]:
    """Each command ``runs`` times, taking turns (one run of each, then again), so that a change in
    the machine's load falls on all of them alike: the median wall time, the median CPU time (less
    swayed by other work on a shared machine) and the last stdout."""
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    last: dict[str, str] = {}
    for _ in range(runs):
        for name, command in commands.items():
            wall, cpu, last[name] = run_once(command)
            times[name].append((wall, cpu))
    return {
        name: (
            statistics.median(t[0] for t in times[name]),
            statistics.median(t[1] for t in times[name]),
            last[name],
        )
        for name in commands
    }


def summary(stdout: str) -> tuple[int, float]:
    """(trades, final equity): the peers print one line; tradebot's report has both figures."""
    found: dict[str, str] = {}
    for line in stdout.strip().splitlines():
        words = line.split()
        if line.startswith("trades ") and "final_equity" in words:
            found = {"trades": words[1], "final_equity": words[3]}
        elif line.startswith("  final equity"):
            found["final_equity"] = words[-1].replace(",", "")
        elif line.startswith("  trades") and len(words) == 2:
            found["trades"] = words[-1].replace(",", "")
    return int(found["trades"]), float(found["final_equity"])


def _at_end(stdout: str) -> float | None:
    """The P&L of the trade backtesting.py's ``finalize_trades`` closed at the end, as it printed it."""
    for line in stdout.splitlines():
        words = line.split()
        if words[:1] == ["trades"] and "at_end" in words:
            return float(words[words.index("at_end") + 1])
    return None


def ours_command() -> list[str]:
    tradebot = Path(sys.executable).with_name("tradebot")
    return [str(tradebot)] if tradebot.exists() else [sys.executable, "-m", "bot"]


NO_STOPS = ["--fixed-qty", "1", "--stop-loss", "0", "--take-profit", "0"]


def single(work: Path, rows: int, runs: int, python: Path | None) -> list[str]:
    csv_path = work / "bars_1m.csv"
    write_csv(csv_path, rows)
    base = [*ours_command(), "backtest", "--strategy", "supertrend", "--csv", str(csv_path), *NO_STOPS]
    commands = {"tradebot --json": [*base, "--json", str(work / "out.json")], "tradebot": base}
    if python is not None:
        for name, source, file in (
            ("backtesting.py", BACKTESTING_PY, "peer_backtesting.py"),
            ("numba + vectorbt", VECTORBT, "peer_vectorbt.py"),
        ):
            script = work / file
            script.write_text(textwrap.dedent(source))
            commands[name] = [str(python), str(script), str(csv_path)]
    results = timed_in_turn(commands, runs)
    trades, equity = summary(results["tradebot --json"][2])
    doc = json.loads((work / "out.json").read_text())
    assert doc["n_trades"] == trades and len(doc["equity_curve"]) == rows
    at_end = sum(t["pnl"] for t in doc["trades"] if t["exit_reason"] == "end_of_data")
    exact = doc["final_equity"]
    ours, ours_cpu = results["tradebot --json"][0], results["tradebot --json"][1]
    lines = [
        f"single backtest: {rows:,}-row one-minute CSV, Supertrend(10, 3) flips, next-open fills, median of {runs} runs:"
    ]
    for name, (seconds, cpu, out) in results.items():
        got_trades, got_equity = summary(out)
        theirs_at_end = _at_end(out)
        if (got_trades, round(got_equity, 2)) == (trades, round(equity, 2)):
            same = "same result"
        elif (
            theirs_at_end is not None
            and got_trades == trades
            and round(got_equity - theirs_at_end, 2) == round(exact - at_end, 2)
        ):
            same = (
                "same trades; the position open at the end closed at another price "
                f"({theirs_at_end:+.4f} against our {at_end:+.4f} at the last close)"
            )
        else:
            same = f"DIFFERENT: {got_trades} trades, final equity {got_equity} (ours {trades}, {equity})"
        ratio = (
            ""
            if name == "tradebot --json"
            else f" ({seconds / ours:.1f}x tradebot --json; CPU {cpu / ours_cpu:.1f}x)"
        )
        lines.append(
            f"  {name:<18} {seconds:7.2f} s, CPU {cpu:6.2f} s{ratio}  {got_trades:,} trades, "
            f"final equity {got_equity:,.4f}: {same}"
        )
    return lines


def sweep(work: Path, rows: int, runs: int, python: Path | None) -> list[str]:
    csv_path = work / "bars_sweep.csv"
    write_csv(csv_path, rows)
    table = work / "sweep.csv"
    command = [
        *ours_command(), "backtest", "--strategy", "supertrend", "--csv", str(csv_path), *NO_STOPS,
        *SWEEP_GRID, "--rank-by", "return_pct", "--sweep-csv", str(table),
    ]  # fmt: skip
    commands = {"tradebot": command}
    if python is not None:
        script = work / "peer_vectorbt_sweep.py"
        script.write_text(textwrap.dedent(VECTORBT_SWEEP))
        commands["vectorbt broadcast"] = [str(python), str(script), str(csv_path)]
    results = timed_in_turn(commands, runs)
    ours, ours_cpu = results["tradebot"][0], results["tradebot"][1]
    with table.open() as handle:
        ranked = list(csv.DictReader(handle))
    top = [(int(r["period"]), float(r["multiplier"]), float(r["return_pct"])) for r in ranked[:10]]
    lines = [
        f"sweep: 400 combinations of Supertrend over {rows:,} one-minute bars, ranked by return, median of {runs} runs:",
        f"  {'tradebot':<18} {ours:7.2f} s, CPU {ours_cpu:6.2f} s  (one process per core, {len(ranked)} combinations)",
    ]
    if "vectorbt broadcast" in results:
        seconds, cpu, out = results["vectorbt broadcast"]
        theirs = [
            (int(w[1]), float(w[2]), float(w[3]))
            for w in (x.split() for x in out.splitlines())
            if w[:1] == ["top"]
        ]
        same = [
            a[:2] == b[:2] and math.isclose(a[2], b[2], rel_tol=1e-9, abs_tol=1e-9)
            for a, b in zip(top, theirs, strict=True)
        ]
        verdict = (
            "the same top 10, same order, same returns"
            if all(same)
            else f"top 10 DIFFERS: ours {top}, theirs {theirs}"
        )
        lines.append(
            f"  {'vectorbt broadcast':<18} {seconds:7.2f} s, CPU {cpu:6.2f} s ({seconds / ours:.1f}x tradebot; "
            f"CPU {cpu / ours_cpu:.1f}x)  {verdict}"
        )
    lines.append(
        "  top 10 (period, multiplier, return %): " + ", ".join(f"({p}, {m:g}, {r:+.3f})" for p, m, r in top)
    )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--job", choices=("single", "sweep", "both"), default="both")
    parser.add_argument("--rows", type=int, default=1_000_000, help="bars of the single backtest")
    parser.add_argument("--sweep-rows", type=int, default=100_000, help="bars of the sweep")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--peers-venv", type=Path, default=Path(tempfile.gettempdir()) / "tradebot-bench-peers"
    )
    parser.add_argument("--skip-peers", action="store_true")
    args = parser.parse_args()
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)  # as a user runs it: .pyc files written once

    work = Path(tempfile.mkdtemp(prefix="tradebot-bench-"))
    python = None if args.skip_peers else ensure_peers(args.peers_venv)
    lines = []
    if args.job in ("single", "both"):
        lines += single(work, args.rows, args.runs, python)
    if args.job in ("sweep", "both"):
        lines += sweep(work, args.sweep_rows, args.runs, python)
    load = os.getloadavg()
    lines.append(
        f"load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} on {os.cpu_count()} cores (a shared machine)"
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
