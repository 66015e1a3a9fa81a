"""Walk-forward testing: optimise on a window, trade the next one, roll on.

``--walk-forward TRAIN/TEST`` (``6M/1M``, ``30d/7d``, ``2y/6M``, or bars: ``50000/10000``) cuts
the history into rolling windows. The out-of-sample windows partition the tested span: the
first starts TRAIN after the first bar, each lasts TEST and starts on the bar after the previous
one's last (the last one may be shorter). Calendar boundaries are all measured from that first
start (``windows``), so a weekend, a holiday or a short month never shifts one. Each in-sample
window is the TRAIN before its out-of-sample window. On each in-sample window every
combination of the ``--param`` grid is backtested and the best by ``--rank-by`` is chosen (ties:
the first in grid order); it then trades the out-of-sample window:

- its signals are computed from the start of the in-sample window, so the warm-up is behind it;
- the window starts with the equity the previous one ended with, flat: a position still open at
  a window's end is closed at its last close (``end_of_data``);
- the out-of-sample windows, stitched, are the result: one equity curve (the windows' own curves
  end to end), one list of trades, the usual statistics. Beside them, each window's chosen
  parameters and its in-sample and out-of-sample figures, and how far apart they are: the
  over-fitting a sweep alone hides.

Every window's figures are annualised with the bars per year of the timeframe
(``report.timeframe_bars_per_year``), not of the whole history: bars added at the end never
change an earlier window.

Units: ``h`` hours, ``d`` days, ``w`` weeks, ``M`` months and ``y`` years (calendar months and
years, UTC); a plain number counts bars.
"""

from __future__ import annotations

import calendar
import math
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import numpy as np

from bot.backtest.engine import ENTRY_BAR, EXIT_BAR, TRADE_FIELDS, FillSettings, Simulation, simulate
from bot.backtest.overfitting import Overfitting, overfitting, shape_of_run
from bot.backtest.report import RANKABLE, Stats, compute_stats
from bot.backtest.runner import MAX_SPAN_BARS
from bot.backtest.sweep import BeforeStart, SweepJob, SweepRow, Task, rank, run_tasks
from bot.bars import NS, Bars
from bot.strategy import Strategy, StrategyError, StrategyOutput

_SPAN = re.compile(r"^\s*(\d+)\s*([hdwMy]?)\s*$")
_FIXED_NS = {"h": 3_600 * NS, "d": 86_400 * NS, "w": 7 * 86_400 * NS}
# The longest TRAIN or TEST: no market's history is longer (the NYSE's goes back to 1792), and bar
# times (int64 nanoseconds) end in 2262. In each unit: hours, days and weeks of 250 x 365.25 days,
# 3,000 months, 250 years; a count of bars at most a backtest's span (runner.MAX_SPAN_BARS).
MAX_SPAN_YEARS = 250
_MAX_COUNT = {
    "h": MAX_SPAN_YEARS * 8_766,
    "d": MAX_SPAN_YEARS * 36_525 // 100,
    "w": MAX_SPAN_YEARS * 36_525 // 700,
    "M": MAX_SPAN_YEARS * 12,
    "y": MAX_SPAN_YEARS,
    "": MAX_SPAN_BARS,  # 38 years of minutes
}


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
        return self.moved(t, 1)

    def before(self, t: int) -> int:
        """The time ``count`` units before ``t`` (ns)."""
        return self.moved(t, -1)

    def moved(self, t: int, k: int) -> int:
        """``t`` (ns) moved by ``k`` times this span, from ``t`` itself (not step by step: Jan 31
        plus 1 month is Feb 29 in 2024, plus 2 months is Mar 31). A month-end day beyond the
        target month's last is clamped to it. Times past the calendar's range clamp to the
        int64 range, which lies beyond every bar."""
        if self.unit in _FIXED_NS:
            return _clamp(t + k * self.count * _FIXED_NS[self.unit])
        months = k * self.count * (12 if self.unit == "y" else 1)
        when = datetime.fromtimestamp(t // NS, tz=UTC)
        month0 = when.month - 1 + months
        year, month = when.year + month0 // 12, month0 % 12 + 1
        if not 1 <= year <= 9999:
            return _INT64_MAX if months > 0 else _INT64_MIN
        day = min(when.day, _days_in(year, month))
        moved = when.replace(year=year, month=month, day=day)
        return _clamp(int(moved.timestamp()) * NS + t % NS)


_INT64_MAX, _INT64_MIN = int(np.iinfo(np.int64).max), int(np.iinfo(np.int64).min)


def _clamp(t: int) -> int:
    return min(max(t, _INT64_MIN), _INT64_MAX)


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
        span = Span(int(match.group(1)), match.group(2))
        if span.count > _MAX_COUNT[span.unit]:
            most = (
                f"{_MAX_COUNT[span.unit]:,}{span.unit} ({MAX_SPAN_YEARS} years)"
                if span.unit
                else f"{MAX_SPAN_BARS:,} bars (as many as one backtest may span)"
            )
            raise StrategyError(
                f"--walk-forward {text!r}: {side} {part.strip()} is longer than any history: at most {most}"
            )
        spans.append(span)
    return spans[0], spans[1]


@dataclass(frozen=True, slots=True)
class Window:
    train: tuple[int, int]  # bar indices [lo, hi)
    test: tuple[int, int]


def windows(bars: Bars, train: Span, test: Span) -> list[Window]:
    """The rolling windows over ``bars``; an error naming what is missing when none fits.

    The out-of-sample windows partition the bars from the first one's start to the last bar:
    each starts on the bar after the previous one's last. With a calendar TEST they are the
    non-empty ones of ``[a + k TEST, a + (k+1) TEST)``, k = 0, 1, ..., every one measured from
    the anchor ``a`` (the first bar's time plus TRAIN, or the first out-of-sample bar's time when
    TRAIN counts bars), so weekends, holidays and month lengths never shift a boundary and later
    bars never move an earlier one. With TEST in bars they are ``TEST`` bars each from bar TRAIN
    (or from the first bar at or after ``a``). Each in-sample window is the TRAIN before its
    out-of-sample window's start (the calendar time the window starts at, or its first bar)."""
    times = bars.time
    n = len(bars)
    if train.unit:
        anchor = train.after(int(times[0])) if n else 0
        first = int(np.searchsorted(times, anchor, "left"))
    else:
        first = train.count
        anchor = int(times[first]) if first < n else 0
    out = []
    b = first
    while b < n:
        if test.unit:
            k = _cell(anchor, test, int(times[b]))
            start = test.moved(anchor, k)
            c = int(np.searchsorted(times, test.moved(anchor, k + 1), "left"))
        else:
            start = int(times[b])
            c = min(b + test.count, n)
        lo = int(np.searchsorted(times, train.before(start), "left")) if train.unit else b - train.count
        out.append(Window((lo, b), (b, c)))
        b = c
    # Leading windows with too little in-sample history are dropped (the tested span then starts
    # later); one further on would leave a hole in the partition, so it is an error.
    while out and out[0].train[1] - out[0].train[0] < 2:
        out.pop(0)
    if not out:
        raise StrategyError(
            f"--walk-forward {train.label}/{test.label}: the {n:,} bars are too short for one in-sample "
            "window and the start of an out-of-sample one"
        )
    if test.after(int(times[0])) > int(times[-1]) if test.unit else test.count >= n:
        from bot.backtest.report import iso_times

        since, until = iso_times(times[[0, -1]])
        raise StrategyError(
            f"--walk-forward {train.label}/{test.label}: TEST {test.label} is as long as the whole history "
            f"({n:,} bars, {since} .. {until}), so no in-sample window can come before it; use a shorter TEST"
        )
    for w in out:
        if w.train[1] - w.train[0] < 2:
            from bot.backtest.report import iso_times

            raise StrategyError(
                f"--walk-forward {train.label}/{test.label}: the in-sample window before "
                f"{iso_times(times[[w.test[0]]])[0]} holds {w.train[1] - w.train[0]} bar; a gap in the "
                "data or a TRAIN shorter than two bars leaves nothing to choose from"
            )
    return out


def _cell(anchor: int, span: Span, t: int) -> int:
    """The largest ``k`` with ``span.moved(anchor, k) <= t`` (``t >= anchor``)."""
    if span.unit in _FIXED_NS:
        return (t - anchor) // (span.count * _FIXED_NS[span.unit])
    a = datetime.fromtimestamp(anchor // NS, tz=UTC)
    b = datetime.fromtimestamp(t // NS, tz=UTC)
    months = (b.year - a.year) * 12 + b.month - a.month
    k = max(months // (span.count * (12 if span.unit == "y" else 1)), 0)
    while k > 0 and span.moved(anchor, k) > t:
        k -= 1
    while span.moved(anchor, k + 1) <= t:
        k += 1
    return k


def _days_in(year: int, month: int) -> int:
    return calendar.monthrange(year, month)[1]


@dataclass(frozen=True)
class WindowResult:
    window: Window
    params: dict[str, float | int]
    in_sample: dict[str, float | int]  # the chosen combination's statistics on its in-sample window
    out_of_sample: Stats  # the same combination on the out-of-sample window (its own cash)
    # The DSR of the in-sample choice among the window's combinations, and the PBO of that sweep.
    overfitting: Overfitting | None = None

    def degradation(self, metric: str, per_year: float) -> dict[str, float]:
        """Out-of-sample minus in-sample: the ranked metric, and the annualised return in points."""
        ins = _annualised(float(self.in_sample["return_pct"]), *self.window.train, per_year)
        outs = _annualised(self.out_of_sample.return_pct, *self.window.test, per_year)
        return {
            metric: float(getattr(self.out_of_sample, metric)) - float(self.in_sample[metric]),
            "annual_return_pct": outs - ins,
        }


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
    bars_per_year: float  # of the timeframe (report.timeframe_bars_per_year): every window alike

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
        found = [w.overfitting for w in self.windows if w.overfitting is not None]
        return {
            f"in_sample_{metric}": is_mean,
            f"out_of_sample_{metric}": oos_mean,
            f"{metric}_gap": is_mean - oos_mean,
            "in_sample_annual_return_pct": is_r,
            "out_of_sample_annual_return_pct": oos_r,
            "efficiency_pct": 100.0 * oos_r / is_r if is_r > 0 else math.nan,
            "mean_dsr": _mean([f.deflated.dsr for f in found]),
            "mean_pbo": _mean([f.pbo.pbo for f in found]),
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
    before: BeforeStart | None = None,
) -> WalkForward:
    if rank_by not in RANKABLE:
        raise StrategyError(f"--rank-by {rank_by!r}: use one of {', '.join(RANKABLE)}")
    cuts = windows(bars, train, test)
    job = SweepJob(cls, settings, periods_per_year)
    tasks: list[Task] = [(combo, *w.train) for w in cuts for combo in combos]
    rows = run_tasks(bars, job, tasks, workers=workers, progress=progress, cluster=cluster, before=before)
    chosen: list[SweepRow] = [
        rank(rows[k * len(combos) : (k + 1) * len(combos)], rank_by)[0] for k in range(len(cuts))
    ]

    first, end = cuts[0].test[0], cuts[-1].test[1]
    oos_bars = bars[first:end]
    curves: list[np.ndarray] = []
    trades: list[np.ndarray] = []
    lines: dict[str, np.ndarray] = {}
    results = []
    cash = settings.cash
    for k, (window, best) in enumerate(zip(cuts, chosen, strict=True)):
        strategy = cls(**best.params)
        (lo, _), (b, c) = window.train, window.test
        output = strategy.compute(bars[lo:c])
        overfit = _window_overfitting(
            bars[lo:b], output, settings, rows[k * len(combos) : (k + 1) * len(combos)], periods_per_year
        )
        sim = simulate(
            bars[b:c],
            output.signal[b - lo :],
            replace(settings, cash=cash),
            stop_hint=None if output.stop is None else output.stop[b - lo :],
        )
        if b - first != sum(len(part) for part in curves):  # windows() partitions: this cannot happen
            raise RuntimeError(f"walk-forward window at bar {b} does not start where the last one ended")
        curves.append(sim.equity)
        shifted = sim.trades.copy()
        shifted[:, [ENTRY_BAR, EXIT_BAR]] += b - first
        trades.append(shifted)
        _stitch_lines(lines, output, b - lo, b - first, end - first)
        results.append(
            WindowResult(window, best.params, best.stats, compute_stats(sim, cash, periods_per_year), overfit)
        )
        cash = float(sim.equity[-1])
    table = np.concatenate(trades) if trades else np.empty((0, TRADE_FIELDS))
    stitched = Simulation(np.concatenate(curves), table)
    stats = compute_stats(stitched, settings.cash, periods_per_year)
    return WalkForward(
        train, test, rank_by, len(combos), oos_bars, stitched, stats, lines, results, periods_per_year
    )


def _window_overfitting(
    in_sample: Bars, output: StrategyOutput, settings: FillSettings, rows: list[SweepRow], per_year: float
) -> Overfitting | None:
    """The DSR of a window's choice and the PBO of its sweep. The choice's in-sample returns are
    its in-sample backtest again (the sweep kept only their sums): its signals over the in-sample
    bars are the first part of ``output`` (computed from the in-sample start; signals never look
    ahead), the fills as the sweep's (``settings``' own cash)."""
    if any(row.moments is None for row in rows):
        return None
    n = len(in_sample)
    sim = simulate(
        in_sample, output.signal[:n], settings, stop_hint=None if output.stop is None else output.stop[:n]
    )
    return overfitting(shape_of_run(sim.equity), [row.moments for row in rows if row.moments], per_year)


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
