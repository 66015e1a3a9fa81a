"""Parameter sweeps: every combination of the ``--param`` values, run in parallel, ranked.

``--param period=7..14`` is every whole number from 7 to 14, ``--param multiplier=2..3:0.5``
is 2, 2.5, 3, ``--param multiplier=2,2.5,3`` is a list, ``--param period=10`` a single value.
Each combination is one backtest on the same bars; they run in a process pool with one worker
per core, each worker receiving the bars once, or on a Dask cluster (``bot.backtest.cluster``):
the same function, the same results.
"""

from __future__ import annotations

import csv
import itertools
import math
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot import metrics
from bot.backtest import channel
from bot.backtest.engine import FillSettings, simulate
from bot.backtest.overfitting import Moments, moments_of_run
from bot.backtest.report import RANKABLE, compute_stats
from bot.bars import Bars
from bot.strategy import Strategy, StrategyError

MAX_COMBINATIONS = 100_000  # backtests in one sweep (each a row of results held in memory)
_RANGE = re.compile(r"^\s*(-?[\d.]+)\s*\.\.\s*(-?[\d.]+)\s*(?::\s*([\d.]+)\s*)?$")


@dataclass(frozen=True)
class SweepRow:
    params: dict[str, Any]
    stats: dict[str, Any]
    # Power sums of its per-bar returns, whole and per block: what the Deflated Sharpe Ratio and
    # the Probability of Backtest Overfitting are computed from (bot.backtest.overfitting).
    moments: Moments | None = None


def expand(name: str, text: str) -> list[str]:
    """One ``--param`` value: a range ``a..b`` (``a..b:step``), a list ``a,b,c``, or one value."""
    match = _RANGE.match(text)
    if match:
        low, high, step_text = match.groups()
        try:
            start, stop = float(low), float(high)
            step = float(step_text) if step_text else 1.0
        except ValueError:
            raise StrategyError(
                f"--param {name}={text}: write a range as start..stop or start..stop:step"
            ) from None
        if step <= 0 or stop < start:
            raise StrategyError(f"--param {name}={text}: the range is empty (need start <= stop, step > 0)")
        count = math.floor((stop - start) / step + 1e-9) + 1
        if count > 100_000:
            raise StrategyError(f"--param {name}={text}: {count} values is too many")
        whole = all(float(x).is_integer() for x in (start, step))
        return [str(int(start + k * step)) if whole else f"{start + k * step:.10g}" for k in range(count)]
    values = [v.strip() for v in text.split(",")]
    if not all(values):
        raise StrategyError(f"--param {name}={text}: empty value in the list")
    return values


def parse_grid(items: list[str]) -> dict[str, list[str]]:
    """``["period=7..9", "multiplier=2,3"]`` -> ``{"period": ["7","8","9"], "multiplier": ["2","3"]}``."""
    grid: dict[str, list[str]] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name or not value.strip():
            raise StrategyError(f"--param {item!r}: write name=value, name=a..b or name=a,b,c")
        if name in grid:
            raise StrategyError(f"--param {name} given twice: put all its values in one option")
        grid[name] = expand(name, value.strip())
    return grid


def combinations(grid: dict[str, list[str]]) -> list[dict[str, str]]:
    """Every combination of the grid's values, in grid order; at most ``MAX_COMBINATIONS``."""
    count = math.prod(len(values) for values in grid.values())
    if count > MAX_COMBINATIONS:
        sizes = " x ".join(f"{len(values):,} {name}" for name, values in grid.items())
        raise StrategyError(
            f"--param: {sizes} is {count:,} combinations; at most {MAX_COMBINATIONS:,} in one sweep"
        )
    names = list(grid)
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*grid.values())]


# --- running ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepJob:
    """What every task of a sweep shares (the bars travel separately, once per worker)."""

    cls: type[Strategy]
    settings: FillSettings
    periods_per_year: float


# One task: a combination of parameter values, and the bars [lo, hi) to run it on (a walk-forward
# window; the whole history for a plain sweep).
Task = tuple[dict[str, str], int, int]
# Called with every task before any runs (``runner`` says how big the run is, and may refuse it).
BeforeStart = Callable[[Bars, "SweepJob", list[Task]], None]


def evaluate(bars: Bars, job: SweepJob, task: Task) -> SweepRow:
    """One backtest of the sweep: the same call whichever process or machine runs it."""
    params, lo, hi = task
    window = bars[lo:hi] if (lo, hi) != (0, len(bars)) else bars
    strategy = job.cls(**params)
    output = strategy.compute(window)
    sim = simulate(window, output.signal, job.settings, stop_hint=output.stop)
    r = metrics.returns(sim.equity)
    stats = compute_stats(sim, job.settings.cash, job.periods_per_year, returns=r)
    return SweepRow(dict(strategy.values), stats.as_dict(), moments_of_run(sim.equity, r))


_WORKER: dict[str, Any] = {}


def _init_worker(bars: Bars, job: SweepJob, parent: int) -> None:
    from bot.backtest.heap import keep_freed_memory
    from bot.backtest.orphans import die_with_parent

    die_with_parent(parent)
    keep_freed_memory()  # each task's arrays reuse the last one's memory (bot/backtest/heap.py)
    _WORKER.update(bars=bars, job=job)


def run_tasks(
    bars: Bars,
    job: SweepJob,
    tasks: list[Task],
    *,
    workers: int | None = None,
    progress: bool | None = None,
    cluster: str | None = None,
    before: BeforeStart | None = None,
) -> list[SweepRow]:
    """Every task, in order: on a Dask cluster when ``cluster`` names its scheduler
    (``bot.backtest.cluster``), else in a pool of ``workers`` local processes (default: one per
    core), each receiving the bars once. ``before(bars, job, tasks)`` is called first."""
    if cluster:  # ``before`` once the cluster has answered: a cluster that cannot is one line
        from bot.backtest.cluster import run_on_cluster

        return run_on_cluster(cluster, bars, job, tasks, progress=progress, before=before)
    if before is not None:
        before(bars, job, tasks)
    workers = processes(workers, len(tasks))
    if workers <= 1:
        return [evaluate(bars, job, task) for task in _progress(tasks, len(tasks), progress)]
    import multiprocessing  # here, not at the top: a single backtest never starts a process
    from concurrent.futures import ProcessPoolExecutor

    # spawn: the parent may hold threads (pyarrow's pool), which fork must not copy.
    context = multiprocessing.get_context("spawn")
    chunk = max(1, len(tasks) // (workers * 4))
    already = set(multiprocessing.active_children())
    pool = ProcessPoolExecutor(
        workers, mp_context=context, initializer=_init_worker, initargs=(bars, job, os.getpid())
    )
    try:
        futures = [pool.submit(_run_chunk, tasks[i : i + chunk]) for i in range(0, len(tasks), chunk)]
        rows = list(_progress(_in_order(futures), len(tasks), progress))
    except BaseException:
        # Ctrl-C, or an error: leaving the pool would wait for every chunk already handed out
        # (minutes). The workers go now; the pool's own thread then sees them gone, fails the
        # futures and closes its queues, which shutdown waits for. (No future is cancelled
        # first: Python 3.11's pool then fails on the cancelled ones and never closes its queue.)
        for process in set(multiprocessing.active_children()) - already:
            process.kill()
        pool.shutdown(wait=True)
        raise
    pool.shutdown(wait=True)
    return rows


def _run_chunk(tasks: list[Task]) -> list[SweepRow]:
    return [evaluate(_WORKER["bars"], _WORKER["job"], task) for task in tasks]


def _in_order(futures: list[Any]) -> Iterator[SweepRow]:
    for future in futures:
        yield from future.result()


def run_sweep(
    bars: Bars,
    cls: type[Strategy],
    combos: list[dict[str, str]],
    settings: FillSettings,
    *,
    periods_per_year: float,
    workers: int | None = None,
    progress: bool | None = None,
    cluster: str | None = None,
    before: BeforeStart | None = None,
) -> list[SweepRow]:
    """Every combination over all the bars (see ``run_tasks``), in the order given."""
    job = SweepJob(cls, settings, periods_per_year)
    tasks: list[Task] = [(combo, 0, len(bars)) for combo in combos]
    return run_tasks(bars, job, tasks, workers=workers, progress=progress, cluster=cluster, before=before)


def processes(workers: int | None, tasks: int) -> int:
    """The local processes ``tasks`` tasks run on: ``workers`` (default: one per core), at most one
    per task."""
    return max(1, min(workers or _cores(), tasks))


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _progress(items, total: int, enabled: bool | None):
    """A tqdm bar on stderr when asked (or at a terminal); the count goes to ``channel`` too."""
    import sys

    items = channel.counted(items, total)
    if enabled is False or (enabled is None and not sys.stderr.isatty()):
        return items
    from tqdm import tqdm

    return tqdm(items, total=total, desc="sweep", unit="run", file=sys.stderr)


def rank(rows: list[SweepRow], metric: str) -> list[SweepRow]:
    if metric not in RANKABLE:
        raise StrategyError(f"--rank-by {metric!r}: use one of {', '.join(RANKABLE)}")
    sign = -1.0 if RANKABLE[metric] else 1.0

    def key(row: SweepRow) -> float:
        value = float(row.stats[metric])
        return math.inf if math.isnan(value) else sign * value

    return sorted(rows, key=key)


def format_table(rows: list[SweepRow], metric: str, limit: int = 10) -> str:
    names = list(rows[0].params) if rows else []
    columns = [
        *names,
        "return_pct",
        "sharpe",
        "sortino",
        "max_drawdown_pct",
        "win_rate",
        "profit_factor",
        "n_trades",
    ]
    if metric not in columns:
        columns.append(metric)
    table = [["#", *columns]]
    for i, row in enumerate(rows[:limit], 1):
        merged = {**row.params, **row.stats}
        table.append([str(i), *(_cell(merged[c]) for c in columns)])
    widths = [max(len(r[c]) for r in table) for c in range(len(table[0]))]
    title = f"sweep: {len(rows)} combinations ranked by {metric}" + (
        f", top {limit}" if len(rows) > limit else ""
    )
    return "\n".join(
        [title, *("  " + "  ".join(v.rjust(w) for v, w in zip(r, widths, strict=True)) for r in table)]
    )


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "inf" if math.isinf(value) else f"{value:.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    return str(value)


def write_csv(rows: list[SweepRow], path: str | Path) -> None:
    names = list(rows[0].params) if rows else []
    stat_names = list(rows[0].stats) if rows else []
    with Path(path).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["rank", *names, *stat_names])
        for i, row in enumerate(rows, 1):
            writer.writerow([i, *(row.params[n] for n in names), *(row.stats[n] for n in stat_names)])
