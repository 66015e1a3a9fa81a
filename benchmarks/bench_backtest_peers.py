"""Whole-process timing: ``tradebot backtest`` against backtesting.py and numba + vectorbt.

    python benchmarks/bench_backtest_peers.py [--rows N] [--runs R] [--peers-venv DIR]

The job, the same for all three: read a 1,000,000-row one-minute OHLCV CSV, compute
Supertrend(10, 3) as TradingView defines it, go long one unit when it turns up and close when
it turns down, filling at the next bar's open, no stops; print the trades count and final
equity. Each is timed as a separate process, interpreter start and imports included, as a
user runs it. The peers are installed into a throwaway virtualenv (default
/tmp/tradebot-bench-peers), never into the project's: ``pip install backtesting vectorbt numba``.
"""

from __future__ import annotations

import argparse
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
print("trades", len(stats._trades), "final_equity", round(float(stats["Equity Final [$]"]), 4))
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


def timed(command: list[str], runs: int) -> tuple[float, str]:
    times, last = [], ""
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise SystemExit(f"{command[:2]} failed:\n{done.stderr[-2000:]}")
        last = summary(done.stdout)
    return statistics.median(times), last


def summary(stdout: str) -> str:
    """The peers print one summary line; from tradebot's report take the same two figures."""
    lines = stdout.strip().splitlines()
    found = {}
    for line in lines:
        words = line.split()
        if line.startswith("  final equity"):
            found["final_equity"] = words[-1].replace(",", "")
        elif line.startswith("  trades") and len(words) == 2:
            found["trades"] = words[-1].replace(",", "")
    if found:
        return f"trades {found.get('trades')} final_equity {found.get('final_equity')}"
    return lines[-1] if lines else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--peers-venv", type=Path, default=Path(tempfile.gettempdir()) / "tradebot-bench-peers"
    )
    parser.add_argument("--skip-peers", action="store_true")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="tradebot-bench-"))
    csv_path = work / "bars_1m.csv"
    write_csv(csv_path, args.rows)
    tradebot = Path(sys.executable).with_name("tradebot")
    ours = [str(tradebot)] if tradebot.exists() else [sys.executable, "-m", "bot"]
    ours += ["backtest", "--strategy", "supertrend", "--csv", str(csv_path)]
    ours += ["--fixed-qty", "1", "--stop-loss", "0", "--take-profit", "0"]
    results = {"tradebot backtest": timed(ours, args.runs)}
    if not args.skip_peers:
        python = ensure_peers(args.peers_venv)
        for name, source, file in (
            ("backtesting.py", BACKTESTING_PY, "peer_backtesting.py"),
            ("numba + vectorbt", VECTORBT, "peer_vectorbt.py"),
        ):
            script = work / file
            script.write_text(textwrap.dedent(source))
            results[name] = timed([str(python), str(script), str(csv_path)], args.runs)
    ours_time = results["tradebot backtest"][0]
    print(
        f"{args.rows:,}-row one-minute CSV, Supertrend(10, 3) flips, next-open fills; median of {args.runs} runs:"
    )
    for name, (seconds, line) in results.items():
        ratio = "" if name == "tradebot backtest" else f"  ({seconds / ours_time:.1f}x tradebot)"
        print(f"  {name:<20} {seconds:7.2f} s{ratio}")
        if line:
            print(f"  {'':<20} {line[:110]}")


if __name__ == "__main__":
    main()
