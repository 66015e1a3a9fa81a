"""How big a sweep or walk-forward run is, and about how long it will take, said before it starts.

The size is the number of backtests and the bars they run over in all (each backtest's bars,
summed: a walk-forward run's backtests each cover one in-sample window). The time is measured,
not assumed: the first backtest runs once here before the rest start, and its time per bar,
times the bars in all, divided by the local processes, is the estimate (a strategy plugin may
cost a hundred times Supertrend's ~140 ns a bar, so no constant would do). The first run pays
one-time costs, so a short sweep is over-estimated rather than under.

Above ``CONFIRM_BARS`` bars in all, the run starts only with ``--yes``: about 25 minutes of one
core for Supertrend, and for a heavier strategy hours -- work a person should decide to start. A
count of bars, not of seconds, so the same command is refused or run on every machine.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.backtest.sweep import SweepJob, Task
    from bot.bars import Bars

CONFIRM_BARS = 10_000_000_000


@dataclass(frozen=True, slots=True)
class Estimate:
    backtests: int
    bars: int  # bars backtested in all
    first_seconds: float  # the first backtest, timed here
    first_bars: int

    @property
    def cpu_seconds(self) -> float:
        return self.first_seconds / max(self.first_bars, 1) * self.bars

    @property
    def needs_confirmation(self) -> bool:
        return self.bars > CONFIRM_BARS

    def line(self, what: str, processes: int | None) -> str:
        """``sweep: 3,600 combinations, 28,738,800 bars in all; about 4 s on 2 processes (the
        first took 1.2 ms)``; ``processes`` None: on a Dask cluster."""
        where = (
            f"about {duration(self.cpu_seconds)} of CPU time, shared by the cluster's workers"
            if processes is None
            else f"about {duration(self.cpu_seconds / max(processes, 1))} on {processes} "
            f"process{'es' if processes != 1 else ''}"
        )
        return f"{what}, {self.bars:,} bars in all; {where} (the first took {duration(self.first_seconds)})"


def estimate(bars: Bars, job: SweepJob, tasks: list[Task]) -> Estimate:
    """Time the first task here (its result is thrown away: the pool runs it again, in order)."""
    from bot.backtest.sweep import evaluate

    _, lo, hi = tasks[0]
    started = time.perf_counter()
    evaluate(bars, job, tasks[0])
    elapsed = time.perf_counter() - started
    total = sum(task_hi - task_lo for _, task_lo, task_hi in tasks)
    return Estimate(len(tasks), total, elapsed, hi - lo)


def duration(seconds: float) -> str:
    """``0.85 ms``, ``120 ms``, ``4 s``, ``14 min``, ``2 h 10 min``, ``3.5 days``."""
    if seconds < 0.01:
        return f"{seconds * 1e3:.2f} ms"
    if seconds < 1:
        return f"{seconds * 1e3:.0f} ms"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3_600:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3_600:
        hours, minutes = divmod(round(seconds / 60), 60)
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{seconds / 86_400:.1f} days"
