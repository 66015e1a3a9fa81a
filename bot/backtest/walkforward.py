"""Walk-forward testing: optimise on a window, trade the next one, roll on.

``--walk-forward TRAIN/TEST`` (``6M/1M``, ``30d/7d``, ``2y/6M``, or bars: ``50000/10000``) cuts
the history into rolling windows: in-sample ``[t, t + TRAIN)``, out-of-sample
``[t + TRAIN, t + TRAIN + TEST)``, then ``t`` moves on by TEST (the last out-of-sample window may
be shorter). On each in-sample window every combination of the ``--param`` grid is backtested and
the best by ``--rank-by`` is chosen (ties: the first in grid order); it then trades the
out-of-sample window:

- its signals are computed from the start of the in-sample window, so the warm-up is behind it;
- the window starts with the equity the previous one ended with, flat: a position still open at
  a window's end is closed at its last close (``end_of_data``);
- the out-of-sample windows, stitched, are the result: one equity curve, one list of trades,
  the usual statistics. Beside them, each window's chosen parameters and its in-sample and
  out-of-sample figures, and how far apart they are: the over-fitting a sweep alone hides.

Units: ``h`` hours, ``d`` days, ``w`` weeks, ``M`` months and ``y`` years (calendar months and
years, UTC); a plain number counts bars.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import numpy as np

from bot.backtest.engine import ENTRY_BAR, EXIT_BAR, TRADE_FIELDS, FillSettings, Simulation, simulate
from bot.backtest.report import RANKABLE, Stats, compute_stats
from bot.backtest.sweep import SweepJob, SweepRow, Task, rank, run_tasks
from bot.bars import NS, Bars
from bot.strategy import Strategy, StrategyError, StrategyOutput

_SPAN = re.compile(r"^\s*(\d+)\s*([hdwMy]?)\s*$")
_FIXED_NS = {"h": 3_600 * NS, "d": 86_400 * NS, "w": 7 * 86_400 * NS}


@dataclass(frozen=True, slots=True)
class Span:
    """A window length: ``count`` bars (``unit`` empty) or ``count`` hours, days, weeks, months, years."""

    count: int
    unit: str  # "", "h", "d", "w", "M", "y"

    @property
    def label(self) -> str:
        return f"{self.count}{self.unit}" if self.unit else f"{self.count} bars"

    def after(self, t: int) -> int:
        """The time ``count`` units after ``t`` (ns); calendar months and years."""
        if self.unit in _FIXED_NS:
            return t + self.count * _FIXED_NS[self.unit]
        months = self.count * (12 if self.unit == "y" else 1)
        when = datetime.fromtimestamp(t // NS, tz=UTC)
        month0 = when.month - 1 + months
        year, month = when.year + month0 // 12, month0 % 12 + 1
        day = min(when.day, _days_in(year, month))
        moved = when.replace(year=year, month=month, day=day)
        return int(moved.timestamp()) * NS + t % NS


def parse_spans(text: str) -> tuple[Span, Span]:
    """``"6M/1M"`` -> (Span(6, "M"), Span(1, "M")). The two sides may use different units."""
    parts = text.split("/")
    if len(parts) != 2:
        raise StrategyError(
            f"--walk-forward {text!r}: write TRAIN/TEST, like 6M/1M, 30d/7d or 50000/10000 (bars)"
        )
    spans = []
    for side, part in zip(("TRAIN", "TEST"), parts, strict=True):
        match = _SPAN.match(part)
        if not match or int(match.group(1)) <= 0:
            hint = (
                " (m would be minutes: write M for months, or a number of bars)"
                if part.strip().endswith("m")
                else ""
            )
            raise StrategyError(
                f"--walk-forward {text!r}: {side} {part.strip()!r} is not a length; use a number of bars or "
                f"a number with h, d, w, M (months) or y{hint}"
            )
        spans.append(Span(int(match.group(1)), match.group(2)))
    return spans[0], spans[1]


@dataclass(frozen=True, slots=True)
class Window:
    train: tuple[int, int]  # bar indices [lo, hi)
    test: tuple[int, int]


def windows(bars: Bars, train: Span, test: Span) -> list[Window]:
    """The rolling windows over ``bars``; an error naming what is missing when none fits."""
    n = len(bars)
    out = []
    if not train.unit and not test.unit:
        lo = 0
        while lo + train.count < n:
            out.append(
                Window((lo, lo + train.count), (lo + train.count, min(lo + train.count + test.count, n)))
            )
            lo += test.count
    else:
        times = bars.time
        start = int(times[0])
        k = 0
        while True:
            t0 = _shift(start, test, k, times)
            lo = int(np.searchsorted(times, t0, "left"))
            mid = _index_after(times, lo, train)
            if lo >= n or mid >= n:
                break
            hi = _index_after(times, mid, test)
            out.append(Window((lo, mid), (mid, hi)))
            k += 1
    out = [w for w in out if w.train[1] - w.train[0] >= 2 and w.test[1] > w.test[0]]
    if not out:
        raise StrategyError(
            f"--walk-forward {train.label}/{test.label}: the {n:,} bars are too short for one in-sample "
            "window and the start of an out-of-sample one"
        )
    return out


def _shift(start: int, span: Span, k: int, times: np.ndarray) -> int:
    if not span.unit:
        return (
            int(times[min(k * span.count, len(times) - 1)])
            if k * span.count < len(times)
            else int(times[-1]) + 1
        )
    return Span(span.count * k, span.unit).after(start) if k else start


def _index_after(times: np.ndarray, lo: int, span: Span) -> int:
    """The end (exclusive) of a window starting at bar ``lo`` and lasting ``span``."""
    if not span.unit:
        return min(lo + span.count, len(times))
    if lo >= len(times):
        return len(times)
    return int(np.searchsorted(times, span.after(int(times[lo])), "left"))


def _days_in(year: int, month: int) -> int:
    return (datetime(year + month // 12, month % 12 + 1, 1) - datetime(year, month, 1)).days


@dataclass(frozen=True)
class WindowResult:
    window: Window
    params: dict[str, float | int]
    in_sample: dict[str, float | int]  # the chosen combination's statistics on its in-sample window
    out_of_sample: Stats  # the same combination on the out-of-sample window (its own cash)


@dataclass(frozen=True)
class WalkForward:
    """The stitched out-of-sample run and what was chosen where."""

    train: Span
    test: Span
    rank_by: str
    combinations: int
    bars: Bars  # the out-of-sample bars, stitched (from the first window's to the last's end)
    sim: Simulation  # over ``bars``: equity and trades, bar indices into ``bars``
    stats: Stats
    lines: dict[str, np.ndarray]  # each window's chosen strategy's lines, stitched
    windows: list[WindowResult]
    bars_per_year: float  # of the whole history: annualises every window alike

    def gap(self) -> dict[str, float]:
        """Means over the windows of the ranked metric and of the annualised return, in-sample and
        out-of-sample, and the walk-forward efficiency (out-of-sample over in-sample return)."""
        metric = self.rank_by
        ins = [float(w.in_sample[metric]) for w in self.windows]
        outs = [float(getattr(w.out_of_sample, metric)) for w in self.windows]
        is_ret = [
            _annualised(float(w.in_sample["return_pct"]), *w.window.train, self.bars_per_year)
            for w in self.windows
        ]
        oos_ret = [
            _annualised(w.out_of_sample.return_pct, *w.window.test, self.bars_per_year) for w in self.windows
        ]
        is_mean, oos_mean = _mean(ins), _mean(outs)
        is_r, oos_r = _mean(is_ret), _mean(oos_ret)
        return {
            f"in_sample_{metric}": is_mean,
            f"out_of_sample_{metric}": oos_mean,
            f"{metric}_gap": is_mean - oos_mean,
            "in_sample_annual_return_pct": is_r,
            "out_of_sample_annual_return_pct": oos_r,
            "efficiency_pct": 100.0 * oos_r / is_r if is_r > 0 else math.nan,
        }


def walk_forward(
    bars: Bars,
    cls: type[Strategy],
    combos: list[dict[str, str]],
    settings: FillSettings,
    train: Span,
    test: Span,
    *,
    rank_by: str,
    periods_per_year: float,
    workers: int | None = None,
    progress: bool | None = None,
    cluster: str | None = None,
) -> WalkForward:
    if rank_by not in RANKABLE:
        raise StrategyError(f"--rank-by {rank_by!r}: use one of {', '.join(RANKABLE)}")
    cuts = windows(bars, train, test)
    job = SweepJob(cls, settings, periods_per_year)
    tasks: list[Task] = [(combo, *w.train) for w in cuts for combo in combos]
    rows = run_tasks(bars, job, tasks, workers=workers, progress=progress, cluster=cluster)
    chosen: list[SweepRow] = [
        rank(rows[k * len(combos) : (k + 1) * len(combos)], rank_by)[0] for k in range(len(cuts))
    ]

    first, end = cuts[0].test[0], cuts[-1].test[1]
    oos_bars = bars[first:end]
    equity = np.empty(end - first)
    trades: list[np.ndarray] = []
    lines: dict[str, np.ndarray] = {}
    results = []
    cash = settings.cash
    for window, best in zip(cuts, chosen, strict=True):
        strategy = cls(**best.params)
        (lo, _), (b, c) = window.train, window.test
        output = strategy.compute(bars[lo:c])
        sim = simulate(
            bars[b:c],
            output.signal[b - lo :],
            replace(settings, cash=cash),
            stop_hint=None if output.stop is None else output.stop[b - lo :],
        )
        equity[b - first : c - first] = sim.equity
        shifted = sim.trades.copy()
        shifted[:, [ENTRY_BAR, EXIT_BAR]] += b - first
        trades.append(shifted)
        _stitch_lines(lines, output, b - lo, b - first, end - first)
        results.append(
            WindowResult(window, best.params, best.stats, compute_stats(sim, cash, periods_per_year))
        )
        cash = float(sim.equity[-1])
    table = np.concatenate(trades) if trades else np.empty((0, TRADE_FIELDS))
    stitched = Simulation(equity, table)
    stats = compute_stats(stitched, settings.cash, periods_per_year)
    return WalkForward(
        train, test, rank_by, len(combos), oos_bars, stitched, stats, lines, results, periods_per_year
    )


def _stitch_lines(
    lines: dict[str, np.ndarray], output: StrategyOutput, skip: int, at: int, total: int
) -> None:
    for name, values in output.lines.items():
        line = lines.setdefault(name, np.full(total, np.nan))
        part = np.asarray(values, dtype=np.float64)[skip:]
        line[at : at + len(part)] = part


def _annualised(return_pct: float, lo: int, hi: int, per_year: float) -> float:
    years = (hi - lo) / per_year if per_year > 0 else 0.0
    growth = 1.0 + return_pct / 100.0
    if years <= 0 or growth <= 0:
        return -100.0 if growth <= 0 else 0.0
    return (growth ** (1.0 / years) - 1.0) * 100.0


def _mean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else math.nan
