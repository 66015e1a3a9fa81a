"""A research job as the page asks for it, turned into the ``tradebot backtest`` command line.

``prepare`` builds the argument list the worker runs (``tradebot backtest`` itself, through its
own parser and ``bot.backtest.runner``), then makes every check the command makes before it
reads history (``runner.check``): an unknown strategy, a bad parameter or grid, a walk-forward
span or date range that cannot be, costs out of bounds, all refused with the command's own one
line. What only the page can get wrong is checked here: the data it names must be a shipped
sample, a series of the local store (read with ``--source store``: no network), or a CSV file
under ``TRADEBOT_RESEARCH_CSV_DIR`` (``bot.research.sources``).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from bot.backtest.config import BacktestConfig
from bot.research.sources import SourceError, csv_path

# The variables a backtest reads (bot/backtest/config.py), and for --source store the store's
# folder, the default timeframe and whether a stock's bars outside regular hours count: the
# worker gets the running bot's values, nothing else.
BACKTEST_VARIABLES = (
    *(f.name.upper() for f in fields(BacktestConfig)),
    "TRADEBOT_TIMEFRAME",
    "TRADEBOT_DATA_DIR",
    "TRADEBOT_EXTENDED_HOURS_BARS",
)
PARAM_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,39}$")
STRATEGY_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
SHORT_TEXT = re.compile(r"^[\w .:/,+\-]*$")  # dates, timeframes, spans, sample names

# Files a job writes in its folder; the API serves these names and no others.
RESULT_JSON = "result.json"
REPORT_HTML = "report.html"
SWEEP_CSV = "sweep.csv"
REPORT_TEXT = "report.txt"
FIGURES = "figures.json"


class JobRefused(ValueError):
    """The job cannot run as asked; the message is one line (the command's own, where it has one)."""


class JobRequest(BaseModel):
    """A backtest, sweep, walk-forward or portfolio run, as the research page's form sends it."""

    model_config = ConfigDict(extra="forbid")

    strategy: str = Field(min_length=1, max_length=64, description="an installed strategy (GET /research)")
    params: dict[str, str] = Field(
        default_factory=dict,
        max_length=32,
        description="parameter -> value: 14, a list 2,2.5,3 or a range 7..14 (7..14:2); several values sweep",
    )
    data: Literal["sample", "store", "csv"] = Field(
        description="sample: a shipped sample; store: the local bar store (symbols, timeframe, start, end); "
        "csv: a file under TRADEBOT_RESEARCH_CSV_DIR"
    )
    sample: str | None = Field(None, max_length=40, description="the sample's name (data=sample)")
    symbols: list[str] = Field(
        default_factory=list, max_length=50, description="data=store: one symbol, or several for a portfolio"
    )
    timeframe: str | None = Field(None, max_length=8, description="1m, 15m, 1h, 1d...")
    start: str | None = Field(None, max_length=40, description="data=store: first day, UTC (2024-01-31)")
    end: str | None = Field(None, max_length=40, description="data=store: end (exclusive), UTC")
    file: str | None = Field(None, max_length=1024, description="data=csv: path relative to the CSV folder")
    walk_forward: str | None = Field(None, max_length=40, description="TRAIN/TEST: 2y/6M, 30d/7d, 5000/1000")
    rank_by: str = Field("sharpe", max_length=40, description="the sweep's ranking metric")
    cash: float = 10_000.0
    commission: float = 0.0
    slippage: float = 0.0
    fixed_qty: float | None = None
    stop_loss: float | None = Field(None, description="percent below the entry; default STOP_LOSS_PCT")
    take_profit: float | None = Field(None, description="percent above the entry; default TAKE_PROFIT_PCT")


@dataclass(frozen=True)
class Places:
    """Where jobs read and write, from the settings."""

    data_dir: Path  # the local bar store
    csv_dir: Path | None  # CSV files the page may read; None: none
    workers: int  # processes a sweep uses


@dataclass(frozen=True)
class PreparedJob:
    argv: list[str]  # tradebot's own arguments, without the program's name
    kind: str  # backtest, sweep, walk_forward, portfolio
    title: str
    combinations: int
    files: tuple[str, ...]  # the outputs it will write in its folder


def prepare(request: JobRequest, places: Places, folder: Path, config: Any) -> PreparedJob:
    """The command line for ``request`` with its outputs in ``folder``, checked as the command
    checks it (with ``config``, the running bot's settings). Raises ``JobRefused``."""
    data_args, where = _data_arguments(request, places)
    argv = ["backtest", "--strategy", _checked(STRATEGY_NAME, request.strategy, "strategy")]
    for name, value in request.params.items():
        if not PARAM_NAME.match(name) or not value.strip() or len(value) > 200 or "\n" in value:
            raise JobRefused(
                f"parameter {name[:40]!r}={value[:40]!r}: write name=value, name=a..b or name=a,b,c"
            )
        argv += ["--param", f"{name}={value.strip()}"]
    argv += data_args
    if request.walk_forward:
        argv += ["--walk-forward", _checked(SHORT_TEXT, request.walk_forward, "walk-forward")]
    argv += ["--rank-by", _checked(SHORT_TEXT, request.rank_by, "rank by")]
    for option, amount in (
        ("--cash", request.cash),
        ("--commission", request.commission),
        ("--slippage", request.slippage),
        ("--fixed-qty", request.fixed_qty),
        ("--stop-loss", request.stop_loss),
        ("--take-profit", request.take_profit),
    ):
        if amount is not None:
            argv.append(f"{option}={amount!r}")
    portfolio = len(request.symbols) > 1
    files = [RESULT_JSON] if portfolio else [RESULT_JSON, REPORT_HTML]
    argv += ["--json", str(folder / RESULT_JSON)]
    if not portfolio:
        argv += ["--html", str(folder / REPORT_HTML)]
    argv += ["--workers", str(places.workers), "--no-progress"]
    plan = _check(argv, config)
    if plan.spans is not None:
        kind = "walk_forward"
    elif portfolio:
        kind = "portfolio"
    elif len(plan.combos) > 1:
        kind = "sweep"
        argv += ["--sweep-csv", str(folder / SWEEP_CSV)]
        files.append(SWEEP_CSV)
    else:
        kind = "backtest"
    words = {
        "backtest": "backtest",
        "sweep": f"sweep of {len(plan.combos):,} combinations",
        "walk_forward": f"walk-forward {request.walk_forward} over {len(plan.combos):,} combinations",
        "portfolio": "portfolio backtest",
    }
    title = f"{request.strategy} {words[kind]} on {where}"
    return PreparedJob(argv, kind, title, len(plan.combos), (*files, REPORT_TEXT, FIGURES))


def _data_arguments(request: JobRequest, places: Places) -> tuple[list[str], str]:
    """The history options for the data the page chose, and a few words naming it."""
    timeframe = (
        ["--timeframe", _checked(SHORT_TEXT, request.timeframe, "timeframe")] if request.timeframe else []
    )
    if request.data == "sample":
        if not request.sample:
            raise JobRefused("choose a sample")
        name = _checked(SHORT_TEXT, request.sample, "sample")
        return ["--sample", name, *timeframe], f"the {name} sample"
    if request.data == "csv":
        try:
            path = csv_path(places.csv_dir, request.file or "")
        except SourceError as exc:
            raise JobRefused(str(exc)) from None
        named = ["--symbol", _symbol(request.symbols[0])] if len(request.symbols) == 1 else []
        if len(request.symbols) > 1:
            raise JobRefused("a CSV file holds one symbol's bars; a portfolio reads the local store")
        return ["--csv", str(path), *named, *timeframe], request.file or ""
    symbols = [_symbol(s) for s in request.symbols]
    if not symbols:
        raise JobRefused("choose at least one symbol of the local store")
    if not request.start or not request.end:
        raise JobRefused("the local store needs a start and an end date (2024-01-31)")
    span = [
        "--start",
        _checked(SHORT_TEXT, request.start, "start"),
        "--end",
        _checked(SHORT_TEXT, request.end, "end"),
    ]
    store = ["--source", "store", "--data-dir", str(places.data_dir.resolve())]
    which = ["--symbol", symbols[0]] if len(symbols) == 1 else ["--symbols", ",".join(symbols)]
    words = f"{', '.join(symbols)}{' ' + request.timeframe if request.timeframe else ''} from {request.start} to {request.end} (local store)"
    return [*which, *span, *timeframe, *store], words


def _symbol(text: str) -> str:
    from bot.config.types import symbol

    try:
        return symbol(text)
    except ValueError as exc:
        raise JobRefused(str(exc)) from None


def _checked(pattern: re.Pattern[str], value: str | None, what: str) -> str:
    text = (value or "").strip()
    if not text or not pattern.match(text) or text.startswith("-"):
        raise JobRefused(f"{what} {text[:40]!r}: not a value tradebot backtest takes")
    return text


def parse(argv: list[str]) -> argparse.Namespace:
    """``tradebot``'s own parser on ``argv``; a usage error raises ``JobRefused`` with argparse's
    line, printing nothing."""
    from bot.cli import build_parser

    said = io.StringIO()
    with contextlib.redirect_stderr(said), contextlib.redirect_stdout(io.StringIO()):
        try:
            return build_parser().parse_args(argv)
        except SystemExit:
            lines = said.getvalue().strip().splitlines() or ["not a tradebot backtest command line"]
            raise JobRefused(lines[-1].split("error: ", 1)[-1]) from None


def _check(argv: list[str], config: Any) -> Any:
    """``runner.check`` on the parsed ``argv``: the command's own refusals, as ``JobRefused``."""
    from bot.backtest.checks import CheckError
    from bot.backtest.data import DataInputError
    from bot.backtest.runner import BadInput, check
    from bot.data.base import DataError
    from bot.strategy import StrategyError

    args = parse(argv)
    try:
        return check(args, config=config)
    except (BadInput, DataInputError, StrategyError, CheckError, DataError) as exc:
        raise JobRefused(str(exc)) from None


def worker_config(settings: Any) -> dict[str, str]:
    """The running bot's values of ``BACKTEST_VARIABLES``, as text, for the worker's settings."""
    from bot.config.loading import shown

    values = {name: shown(getattr(settings, name.lower()), name) for name in BACKTEST_VARIABLES}
    for name in BACKTEST_VARIABLES:  # floats exactly (shown() keeps 6 digits)
        value = getattr(settings, name.lower())
        if isinstance(value, float):
            values[name] = repr(value)
    values["TRADEBOT_DATA_DIR"] = os.path.abspath(str(settings.tradebot_data_dir))
    return values
