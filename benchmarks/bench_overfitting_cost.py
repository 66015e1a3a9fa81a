"""What measuring overfitting costs a sweep and a walk-forward run: this checkout against the code
before it (issue 20: the additions must not slow a sweep by more than 10 %).

    python benchmarks/bench_overfitting_cost.py [--base COMMIT] [--runs R]

The code before is ``git archive`` of ``--base`` (default: the parent of the commit that added
``bot/backtest/overfitting.py``) unpacked into a temporary folder, its C kernels built there;
nothing in this checkout changes. Both run as whole processes, turn about, with the same Python:

- a sweep of 400 Supertrend combinations over 100,000 one-minute bars (one process per core);
  what is new: each backtest sums its returns by block, then the DSR (one more backtest of the
  chosen combination, as before, for the report) and the PBO over C(16, 8) = 12,870 splits;
- a walk-forward run, 64 combinations over 300,000 bars in windows of 100,000 / 25,000 bars;
  what is new: the block sums, and per window the chosen combination's in-sample backtest again,
  its DSR and the window's PBO.

Medians of ``--runs`` runs each, wall time and CPU time (the process and its workers; less
swayed by other work on the machine than wall time); the load average is printed beside them (a shared machine).
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))


def default_base() -> str:
    added = subprocess.run(
        ["git", "log", "--diff-filter=A", "--format=%H", "--", "bot/backtest/overfitting.py"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    if not added:
        raise SystemExit("no commit adds bot/backtest/overfitting.py here: give --base")
    return f"{added[-1]}^"


def unpack(base: str, into: Path) -> Path:
    archive = subprocess.run(["git", "archive", base], cwd=ROOT, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    subprocess.run(
        [sys.executable, "setup.py", "-q", "build_ext", "--inplace"],
        cwd=into,
        check=True,
        capture_output=True,
    )
    return into


def timed(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the process and its workers, user + system)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(command)}\n{done.stderr[-2000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", help="the commit to compare with (default: before overfitting.py)")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    from bench_backtest_peers import NO_STOPS, SWEEP_GRID, write_csv

    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    work = Path(tempfile.mkdtemp(prefix="tradebot-overfit-"))
    base = args.base or default_base()
    before = unpack(base, work / "before")
    sweep_csv, wf_csv = work / "sweep.csv", work / "wf.csv"
    write_csv(sweep_csv, 100_000)
    write_csv(wf_csv, 300_000)
    jobs = {
        "sweep, 400 combinations x 100,000 bars": [
            "--csv", str(sweep_csv), *NO_STOPS, *SWEEP_GRID, "--rank-by", "return_pct",
        ],
        "walk-forward, 64 combinations, 300,000 bars, 100000/25000": [
            "--csv", str(wf_csv), "--param", "period=5..20", "--param", "multiplier=1.5..3:0.5",
            "--walk-forward", "100000/25000",
        ],
    }  # fmt: skip
    command = [sys.executable, "-m", "bot", "backtest", "--strategy", "supertrend"]
    envs = {
        "before": {**os.environ, "PYTHONPATH": str(before)},
        "now": {**os.environ, "PYTHONPATH": str(ROOT)},
    }
    print(f"before: {base} ({before}); now: this checkout. Median of {args.runs} runs, taken in turn:")
    for name, job in jobs.items():
        times: dict[str, list[tuple[float, float]]] = {"before": [], "now": []}
        for env in envs.values():  # warm up: .pyc files, the page cache
            timed([*command, *job], env)
        for _ in range(args.runs):
            for label, env in envs.items():
                times[label].append(timed([*command, *job], env))
        for k, what in ((0, "wall"), (1, "CPU")):
            old = statistics.median(t[k] for t in times["before"])
            new = statistics.median(t[k] for t in times["now"])
            print(f"  {name}, {what}: {old:.2f} s before, {new:.2f} s now ({(new / old - 1) * 100:+.1f} %)")
    load = os.getloadavg()
    print(
        f"load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} on {os.cpu_count()} cores (a shared machine)"
    )


if __name__ == "__main__":
    main()
