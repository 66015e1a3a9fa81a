"""What ``tradebot backtest`` does: load bars, build the strategy, simulate, report.

``run_backtest`` is the in-process API (bars and a configured strategy in, a
``BacktestResult`` out); ``main`` is the command, which turns every bad input into one line
on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.backtest import channel
from bot.backtest.checks import CheckError, check_outputs, check_sizing
from bot.backtest.data import DataInputError
from bot.backtest.engine import FillSettings, simulate
from bot.backtest.report import bars_per_year, compute_stats
from bot.backtest.result import BacktestResult
from bot.bars import Bars, Timeframe, parse_date
from bot.data.base import DataError
from bot.strategy import Strategy, StrategyError

if TYPE_CHECKING:
    from bot.backtest.config import BacktestConfig
    from bot.backtest.overfitting import Overfitting
    from bot.backtest.sweep import BeforeStart, SweepJob, SweepRow, Task
    from bot.backtest.walkforward import Span
    from bot.config import Settings

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports Ctrl-C
MAX_SPAN_BARS = 20_000_000  # --start..--end in bars of the timeframe: 38 years of minutes
FIGURE_ROWS = 50  # a sweep's best rows in channel.figures (the page's table; --sweep-csv has all)


def run_backtest(
    bars: Bars,
    strategy: Strategy,
    settings: FillSettings | None = None,
    *,
    timeframe: Timeframe | None = None,
    source: str = "data",
    impl: str | None = None,
) -> BacktestResult:
    """Compute the strategy over all bars at once, as the live engine does on its window, and
    simulate the fills."""
    settings = settings or FillSettings()
    output = strategy.compute(bars)
    sim = simulate(bars, output.signal, settings, stop_hint=output.stop, impl=impl)
    stats = compute_stats(sim, settings.cash, bars_per_year(bars, timeframe))
    label = timeframe.label if timeframe else ""
    return BacktestResult(strategy, bars, output, sim, stats, settings, source, label)


class BadInput(Exception):
    """One line for stderr; the command exits with status 2."""


def main(args: argparse.Namespace, config: Any = None) -> int:
    """The ``tradebot backtest`` command. ``config``: the settings to use instead of reading the
    environment and ``.env`` (the research worker passes the running bot's)."""
    try:
        return _main(args, config)
    except KeyboardInterrupt:  # Ctrl-C: a sweep's workers are already stopped (sweep.run_tasks)
        return _refused("interrupted", EXIT_INTERRUPTED)
    except (BadInput, DataInputError, StrategyError, CheckError) as exc:
        return _refused(str(exc), EXIT_BAD_INPUT)
    except DataError as exc:  # the history could not be fetched: not the user's input
        return _refused(f"market data: {exc}", 1)
    except Exception as exc:  # the Dask cluster could not run the job (ClusterError, imported lazily)
        if type(exc).__name__ != "ClusterError":
            raise
        return _refused(f"cluster: {exc}", 1)


def _refused(line: str, status: int) -> int:
    print(f"tradebot backtest: error: {line}", file=sys.stderr)
    channel.error(line)
    return status


@dataclass
class Plan:
    """A ``tradebot backtest`` run, checked before any history is read."""

    cls: type[Strategy]
    combos: list[dict[str, str]]
    strategies: list[Strategy]
    config: Any
    cluster: str | None
    spans: tuple[Span, Span] | None = None
    settings: FillSettings | None = None  # None for a portfolio (--symbols): it has its own


def check(args: argparse.Namespace, config: Any = None) -> Plan:
    """Every check ``tradebot backtest`` makes before it reads history, with the same one-line
    refusals (``BadInput``, ``StrategyError``, ``CheckError``, ``DataInputError``): the strategy and
    its parameters, the grid's size, the ranking metric, the configuration, the walk-forward spans,
    the costs and sizes, the outputs, and the history asked for (options that go together, dates,
    a span of at most ``MAX_SPAN_BARS`` bars). The research page calls it before starting a job.
    ``--sample`` is resolved into ``args.csv``. ``config``: settings to use instead of reading the
    environment and ``.env``."""
    from bot.backtest import sweep
    from bot.backtest.report import RANKABLE

    registry = _registry()
    cls = registry.strategies.get(args.strategy)
    if cls is None:
        known = ", ".join(sorted(registry.strategies)) or "none"
        raise BadInput(f"unknown strategy {args.strategy!r} (installed: {known})")
    if args.rank_by not in RANKABLE:
        raise BadInput(f"--rank-by {args.rank_by!r}: use one of {', '.join(RANKABLE)}")
    combos = sweep.combinations(sweep.parse_grid(args.param or []))
    strategies = [cls(**combo) for combo in combos]  # checks every value before any work
    config = _config(args) if config is None else config
    _use_sample(args)
    cluster = _cluster(args.cluster) if args.cluster else config.tradebot_dask_scheduler or None
    plan = Plan(cls, combos, strategies, config, cluster)
    if args.symbols:
        if args.walk_forward or args.cluster:
            raise BadInput(
                "--walk-forward and --cluster run on one symbol (--csv FILE or --symbol), not --symbols"
            )
        from bot.backtest.portfolio_run import check_portfolio

        check_portfolio(args, strategies, config)
        return plan
    if args.walk_forward:
        from bot.backtest.walkforward import parse_spans

        plan.spans = parse_spans(args.walk_forward)
    plan.settings = _fill_settings(args, config)
    html = getattr(args, "html", None)
    check_outputs(
        {"--json": args.json, "--plot": args.plot, "--html": html, "--sweep-csv": args.sweep_csv}, args.csv
    )
    _history_request(args, config)
    return plan


def _main(args: argparse.Namespace, config: Any = None) -> int:
    from bot.backtest import sweep

    started = time.perf_counter()
    plan = check(args, config)
    cls, combos, strategies, config, cluster = (
        plan.cls,
        plan.combos,
        plan.strategies,
        plan.config,
        plan.cluster,
    )
    if args.symbols:
        from bot.backtest.portfolio_run import run_portfolio

        print("\n".join(run_portfolio(args, strategies, config)))
        _timing(args, started)
        return 0
    settings = plan.settings
    assert settings is not None  # set for every run on one symbol
    html = getattr(args, "html", None)
    progress = _Stages(args.progress, 2 + bool(args.json) + bool(args.plot) + bool(html))
    progress.step("reading history")
    bars, timeframe, source = _load_bars(args, config)
    check_sizing(settings.fixed_qty, settings.cash, settings.slippage, settings.commission, bars)
    lines: list[str] = []
    overfit: Overfitting | None = None
    if plan.spans is not None:
        progress.close()
        return _walk_forward(
            args, bars, cls, combos, settings, plan.spans, timeframe, source, cluster, started
        )
    if len(strategies) == 1:
        progress.step("running the backtest")
        result = run_backtest(bars, strategies[0], settings, timeframe=timeframe, source=source)
        ranked = None
    else:
        progress.close()
        channel.stage("sweeping")
        rows = sweep.run_sweep(
            bars,
            cls,
            combos,
            settings,
            periods_per_year=bars_per_year(bars, timeframe),
            workers=args.workers,
            progress=args.progress,
            cluster=cluster,
            before=_announce(args, cluster, f"sweep: {len(combos):,} combinations", len(combos)),
        )
        ranked = sweep.rank(rows, args.rank_by)
        lines.append(sweep.format_table(ranked, args.rank_by, limit=args.top))
        if args.sweep_csv:
            sweep.write_csv(ranked, args.sweep_csv)
            lines.append(f"\nall {len(ranked)} results: {args.sweep_csv}")
        best = cls(**ranked[0].params)
        channel.stage("running the best combination again")
        result = run_backtest(bars, best, settings, timeframe=timeframe, source=source)
        overfit = _overfitting(result, rows, bars_per_year(bars, timeframe))
        lines += ["", *overfit.lines(), f"\nbest by {args.rank_by}: {best.label}\n"]
    written = _write_outputs(result, args, progress, overfit)
    progress.close()
    from bot.backtest.report import format_report

    if channel.active():
        channel.figures(_figures(result, ranked, args.rank_by, overfit))
    print("\n".join([*lines, format_report(result), *written]))
    _timing(args, started)
    return 0


def _figures(
    result: BacktestResult, ranked: list[SweepRow] | None, rank_by: str, overfit: Overfitting | None
) -> dict[str, Any]:
    """What ``channel.figures`` carries for one symbol: the statistics, and for a sweep its best
    ``FIGURE_ROWS`` rows and the overfitting measures."""
    doc: dict[str, Any] = {
        "kind": "backtest" if ranked is None else "sweep",
        "title": f"{result.strategy.label} on {result.source}",
        "bars": len(result.bars),
        "timeframe": result.timeframe_label,
        "stats": result.stats.as_dict(),
    }
    if ranked is not None:
        doc["sweep"] = {
            "rank_by": rank_by,
            "combinations": len(ranked),
            "params": list(ranked[0].params) if ranked else [],
            "rows": [{"params": row.params, "stats": row.stats} for row in ranked[:FIGURE_ROWS]],
        }
    if overfit is not None:
        doc["overfitting"] = overfit.as_dict()
    return doc


def _timing(args: argparse.Namespace, started: float) -> None:
    if args.timing:
        print(f"\ncompleted in {time.perf_counter() - started:.3f} s", file=sys.stderr)


def _walk_forward(
    args: argparse.Namespace,
    bars: Bars,
    cls,
    combos,
    settings,
    spans,
    timeframe,
    source: str,
    cluster,
    started,
) -> int:
    from bot.backtest import walkforward_report as wfr
    from bot.backtest.report import timeframe_bars_per_year
    from bot.backtest.walkforward import walk_forward

    channel.stage("sweeping each in-sample window")
    wf = walk_forward(
        bars,
        cls,
        combos,
        settings,
        *spans,
        rank_by=args.rank_by,
        periods_per_year=timeframe_bars_per_year(bars, timeframe),
        workers=args.workers,
        progress=args.progress,
        cluster=cluster,
        before=_announce(
            args, cluster, f"walk-forward {args.walk_forward}: {len(combos):,} combinations", len(combos)
        ),
    )
    lines = [wfr.format_walk_forward(wf, bars.time, source)]
    if channel.active():
        doc = wfr.to_json(wf, bars.time)
        doc.pop("trades")
        stats = {k: v for k, v in doc.items() if k != "walk_forward"}
        channel.figures(
            {
                "kind": "walk_forward",
                "title": f"walk-forward {wf.train.label}/{wf.test.label} of {cls.name} on {source}",
                "bars": len(bars),
                "timeframe": timeframe.label if timeframe else "",
                "stats": stats,
                "walk_forward": doc["walk_forward"],
            }
        )
    if args.json:
        wfr.write_json(wf, bars.time, args.json)
        lines.append(f"\nJSON: {args.json}")
    if args.plot:
        wfr.plot(wf, source, args.plot)
        lines.append(f"{'' if args.json else chr(10)}plot: {args.plot}")
    if args.html:
        label = timeframe.label if timeframe else ""
        wfr.write_html(
            wf, bars.time, source, args.html, strategy_name=cls.name, settings=settings, timeframe_label=label
        )
        lines.append(f"{'' if args.json or args.plot else chr(10)}report: {args.html}")
    print("\n".join(lines))
    _timing(args, started)
    return 0


def _announce(args: argparse.Namespace, cluster: str | None, what: str, combos: int) -> BeforeStart:
    """What a sweep or walk-forward run does before its first task: say how big it is and about
    how long it will take (``bot.backtest.estimate``) on stderr, and refuse one above
    ``CONFIRM_BARS`` bars in all without ``--yes``. A job from the research page is exempt: its
    form showed the combinations before the click that started it, and the page can stop it."""

    def before(bars: Bars, job: SweepJob, tasks: list[Task]) -> None:
        from bot.backtest import sweep
        from bot.backtest.estimate import CONFIRM_BARS, estimate

        if channel.active():
            return
        found = estimate(bars, job, tasks)
        windows = len(tasks) // max(combos, 1)
        label = what + (f" x {windows:,} windows = {len(tasks):,} backtests" if windows > 1 else "")
        line = found.line(label, None if cluster else sweep.processes(args.workers, len(tasks)))
        if found.needs_confirmation and not getattr(args, "yes", False):
            raise BadInput(f"{line}. Above {CONFIRM_BARS:,} bars in all, add --yes to start it")
        print(line, file=sys.stderr, flush=True)

    return before


def _overfitting(result: BacktestResult, rows: list, periods_per_year: float) -> Overfitting:
    """The sweep's DSR and PBO: the chosen combination's returns (``result``, run again) among
    every combination's (``rows``)."""
    from bot.backtest.overfitting import overfitting, shape_of_run

    return overfitting(shape_of_run(result.sim.equity), [row.moments for row in rows], periods_per_year)


def _write_outputs(
    result: BacktestResult, args: argparse.Namespace, progress: _Stages, overfit: Overfitting | None = None
) -> list[str]:
    from bot.backtest.report import write_json

    written = []
    extra = {"overfitting": overfit.as_dict()} if overfit is not None else None
    if args.json:
        progress.step("writing JSON")
        write_json(result, args.json, extra)
        written.append(f"\nJSON: {args.json}")
    if args.plot:
        progress.step("drawing the plot")
        from bot.backtest.plot import plot

        plot(result, args.plot)
        written.append(f"{'' if written else chr(10)}plot: {args.plot}")
    if getattr(args, "html", None):
        progress.step("writing the HTML report")
        from bot.web.report import write_html

        write_html(result, args.html, tables=[overfit.table()] if overfit is not None else [])
        written.append(f"{'' if written else chr(10)}report: {args.html}")
    return written


class _Stages:
    """A progress bar over the steps of one run, on stderr, when asked or when it is a terminal."""

    def __init__(self, enabled: bool | None, steps: int) -> None:
        self.bar = None
        if enabled or (enabled is None and sys.stderr.isatty()):
            from tqdm import tqdm

            self.bar = tqdm(
                total=steps, file=sys.stderr, bar_format="{desc:<22} {bar:20} {n_fmt}/{total_fmt} [{elapsed}]"
            )
        self.started = False

    def step(self, label: str) -> None:
        channel.stage(label)
        if self.bar is not None:
            if self.started:
                self.bar.update(1)
            self.started = True
            self.bar.set_description_str(label)

    def close(self) -> None:
        if self.bar is not None:
            if self.started:
                self.bar.update(1)
            self.bar.close()
            self.bar = None


def _registry():
    from bot.plugins import load_registry

    return load_registry()


def _config(args: argparse.Namespace):
    """The configuration (environment over .env), read as the live bot reads it: the full typed
    settings for a download (keys, URLs, the timeframe), only the variables it reads for a
    backtest on a file (``bot.backtest.config``: no pydantic to import)."""
    env_file = getattr(args, "env_file", None) or ".env"
    downloads = getattr(args, "symbols", None) or (
        args.symbol and not args.csv and not getattr(args, "sample", None)
    )
    settings: Settings | BacktestConfig
    if downloads:
        from bot.config import ConfigError, Settings

        try:
            settings = Settings.load(env_file=env_file)
        except ConfigError as exc:
            raise BadInput(f"configuration: {exc}") from None
    else:
        from bot.backtest.config import BacktestConfigError, load_backtest_config

        try:
            settings = load_backtest_config(env_file=env_file)
        except BacktestConfigError as exc:
            raise BadInput(f"configuration: {exc}") from None
    if settings.tradebot_pure_python:
        from bot import kernels

        kernels.use_pure_python()
    return settings


def _cluster(text: str) -> str:
    """``--cluster``, checked as ``TRADEBOT_DASK_SCHEDULER`` is (``bot.backtest.dask_address``)."""
    from bot.backtest.dask_address import scheduler_address

    try:
        return scheduler_address(text)
    except ValueError as exc:
        shown = repr(text[:60]) + (f" (+{len(text) - 60} characters)" if len(text) > 60 else "")
        raise BadInput(f"--cluster {shown} is invalid: {exc}") from None


def _fill_settings(args: argparse.Namespace, config) -> FillSettings:
    from bot.risk import RiskLimits

    limits = RiskLimits.from_settings(config)
    symbol = args.symbol or ""
    try:
        return FillSettings(
            cash=args.cash,
            commission=args.commission,
            slippage=args.slippage,
            fixed_qty=args.fixed_qty,
            stop_loss_pct=limits.stop_loss_pct if args.stop_loss is None else args.stop_loss,
            take_profit_pct=limits.take_profit_pct if args.take_profit is None else args.take_profit,
            risk=limits,
            fractional=args.fractional or "/" in symbol,
        )
    except ValueError as exc:
        raise BadInput(str(exc)) from None


def _use_sample(args: argparse.Namespace) -> None:
    """``--sample NAME`` is ``--csv`` on a file shipped with tradebot (``bot/samples/``)."""
    if not getattr(args, "sample", None):
        return
    from bot.backtest.samples import SampleError, sample_path

    if args.csv or args.symbol or getattr(args, "symbols", None):
        raise BadInput("--sample replaces --csv and --symbol: give one of them")
    try:
        args.csv = str(sample_path(args.sample))
    except SampleError as exc:
        raise BadInput(str(exc)) from None


@dataclass(frozen=True)
class HistoryRequest:
    """The history a run on one symbol asks for: a CSV file, or ``symbol`` over [start, end)."""

    timeframe: Timeframe | None
    start: datetime | None = None
    end: datetime | None = None


def _history_request(args: argparse.Namespace, config) -> HistoryRequest:
    """The history options, checked: they go together, the dates parse, the span is sane."""
    timeframe = _timeframe(args.timeframe) if args.timeframe else None
    if args.csv:
        if args.start or args.end:
            raise BadInput("--start/--end apply to --symbol downloads; trim the CSV file instead")
        return HistoryRequest(timeframe)
    if not args.symbol:
        raise BadInput("give --csv PATH, --sample NAME, or --symbol SYMBOL with --start and --end")
    if not args.start or not args.end:
        raise BadInput("--symbol needs --start and --end (dates like 2024-01-31)")
    timeframe = timeframe or _timeframe(str(config.tradebot_timeframe))
    start, end = _date(args.start, "--start"), _date(args.end, "--end")
    check_span(start, end, timeframe)
    return HistoryRequest(timeframe, start, end)


def check_span(start: datetime, end: datetime, timeframe: Timeframe) -> None:
    """``--start`` before ``--end``, at most ``MAX_SPAN_BARS`` bars of ``timeframe`` apart."""
    if end <= start:
        raise BadInput(f"--end {end:%Y-%m-%d %H:%M} is not after --start {start:%Y-%m-%d %H:%M}")
    bars = (end - start).total_seconds() / timeframe.seconds
    if bars > MAX_SPAN_BARS:
        raise BadInput(
            f"--start {start:%Y-%m-%d} to --end {end:%Y-%m-%d} spans {bars:,.0f} bars of {timeframe.label}: "
            f"at most {MAX_SPAN_BARS:,} in one backtest; shorten the span or use a longer --timeframe"
        )


def _load_bars(args: argparse.Namespace, config) -> tuple[Bars, Timeframe | None, str]:
    from bot.backtest import data

    request = _history_request(args, config)
    timeframe = request.timeframe
    if args.csv:
        bars = data.read_csv(args.csv)
        native = data.infer_timeframe(bars)
        if timeframe and native and timeframe.seconds != native.seconds:
            if timeframe.seconds % native.seconds:
                raise BadInput(
                    f"--timeframe {timeframe.label} is not a multiple of the CSV's {native.label} bars"
                )
            bars = data.resample(bars, timeframe)
        return bars, timeframe or native, f"{args.sample} sample" if args.sample else Path(args.csv).name
    from bot.backtest.history import data_dir, load_history

    assert timeframe is not None and request.start is not None and request.end is not None
    bars, source = load_history(
        config,
        args.symbol,
        timeframe,
        request.start,
        request.end,
        source=args.source,
        data_dir=data_dir(args, config),
        progress=args.progress,
    )
    data.check_order(bars, f"{args.symbol} history")
    data.check_prices(bars, f"{args.symbol} history", lines=False)
    return bars, timeframe, f"{args.symbol} ({source})"


def _timeframe(text: str) -> Timeframe:
    try:
        return Timeframe.parse(text)
    except ValueError as exc:
        raise BadInput(str(exc)) from None


def _date(text: str, option: str) -> datetime:
    try:
        return parse_date(text, option)
    except ValueError as exc:
        raise BadInput(str(exc)) from None
