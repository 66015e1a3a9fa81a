"""``tradebot backtest --symbols A,B,C``: every symbol's history, one account, the live rules.

History comes from a folder of CSV files (``--csv DIR``: ``DIR/AAPL.csv``; a pair such as
BTC/USD as ``BTC-USD.csv``, ``BTC_USD.csv`` or ``BTCUSD.csv``) or is downloaded like
``--symbol`` (Alpaca when keys are set, else the synthetic market). Every symbol must have the
same bar length (or one that ``--timeframe`` is a multiple of).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from bot.backtest import data
from bot.backtest.checks import check_outputs
from bot.backtest.portfolio import PortfolioSettings, simulate_portfolio
from bot.backtest.portfolio_report import PortfolioResult, format_portfolio, plot, portfolio_stats, write_json
from bot.backtest.runner import BadInput, _date, _Stages, _timeframe
from bot.bars import Bars, Timeframe
from bot.risk import RiskLimits
from bot.strategy import Strategy


def parse_symbols(text: str) -> list[str]:
    """``"aapl, msft,BTC/USD"`` -> ``["AAPL", "MSFT", "BTC/USD"]``; empty names and repeats refused."""
    names = [name.strip().upper() for name in text.split(",")]
    if not all(names):
        raise BadInput(f"--symbols {text!r}: an empty name in the list (write A,B,C)")
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise BadInput(f"--symbols: {name} is given twice")
        seen.add(name)
    return names


def run_portfolio(args: argparse.Namespace, strategies: list[Strategy], config: Any) -> list[str]:
    """The whole command for --symbols; returns the lines to print."""
    if len(strategies) != 1:
        raise BadInput("a portfolio backtest takes one value per --param (sweeps run on one symbol)")
    if getattr(args, "html", None):
        raise BadInput(
            "--html draws one symbol's price and trades; for --symbols use --plot (the account's equity) and --json"
        )
    for option, given in (("--symbol", args.symbol), ("--fractional", args.fractional)):
        if given:
            raise BadInput(
                f"{option} does not apply with --symbols (sizes follow each symbol as live: whole shares, "
                "fractions for pairs like BTC/USD)"
                if option == "--fractional"
                else "give --symbol for one symbol or --symbols for a portfolio, not both"
            )
    symbols = parse_symbols(args.symbols)
    settings = portfolio_settings(args, config)
    check_outputs({"--json": args.json, "--plot": args.plot})
    progress = _Stages(args.progress, 2 + bool(args.json) + bool(args.plot))
    progress.step("reading history")
    bars, timeframe, source = load_portfolio(args, config, symbols)
    progress.step("running the backtest")
    run = simulate_portfolio(bars, strategies[0], timeframe, settings)
    result = PortfolioResult(
        strategies[0], run, portfolio_stats(run, settings.cash), settings, timeframe, source
    )
    written = []
    if args.json:
        progress.step("writing JSON")
        write_json(result, args.json)
        written.append(f"\nJSON: {args.json}")
    if args.plot:
        progress.step("drawing the plot")
        plot(result, args.plot)
        written.append(f"{'' if written else chr(10)}plot: {args.plot}")
    progress.close()
    return [format_portfolio(result), *written]


def portfolio_settings(args: argparse.Namespace, config: Any) -> PortfolioSettings:
    """The live limits from the configuration; --stop-loss/--take-profit within /risk set's bounds."""
    limits = RiskLimits.from_settings(config)
    for option, name, value in (
        ("--stop-loss", "stop_loss_pct", args.stop_loss),
        ("--take-profit", "take_profit_pct", args.take_profit),
    ):
        if value is not None:
            try:
                limits = limits.with_value(name, value)
            except ValueError as exc:
                raise BadInput(f"{option} {value:g}: {exc}") from None
    try:
        return PortfolioSettings(
            cash=args.cash,
            commission=args.commission,
            slippage=args.slippage,
            limits=limits,
            fixed_qty=args.fixed_qty,
        )
    except ValueError as exc:
        raise BadInput(str(exc)) from None


def load_portfolio(
    args: argparse.Namespace, config: Any, symbols: list[str]
) -> tuple[dict[str, Bars], Timeframe, str]:
    wanted = _timeframe(args.timeframe) if args.timeframe else None
    if args.csv:
        return _from_folder(Path(args.csv), symbols, wanted, args)
    if not args.start or not args.end:
        raise BadInput("--symbols needs --csv DIR, or --start and --end to download (dates like 2024-01-31)")
    from bot.backtest.history import data_dir, load_history

    timeframe = wanted or _timeframe(str(config.tradebot_timeframe))
    start, end = _date(args.start, "--start"), _date(args.end, "--end")
    out, sources = {}, set()
    for symbol in symbols:
        bars, name = load_history(
            config,
            symbol,
            timeframe,
            start,
            end,
            source=args.source,
            data_dir=data_dir(args, config),
            progress=args.progress,
        )
        data.check_order(bars, f"{symbol} history")
        data.check_prices(bars, f"{symbol} history", lines=False)
        out[symbol] = bars
        sources.add(name)
    return out, timeframe, " and ".join(sorted(sources))


def _from_folder(
    folder: Path, symbols: list[str], wanted: Timeframe | None, args: argparse.Namespace
) -> tuple[dict[str, Bars], Timeframe, str]:
    if args.start or args.end:
        raise BadInput("--start/--end apply to downloads; trim the CSV files instead")
    if not folder.is_dir():
        raise BadInput(
            f"--csv {folder}: with --symbols, give a folder holding one CSV file per symbol (AAPL.csv, BTC-USD.csv)"
        )
    out: dict[str, Bars] = {}
    native_of: dict[str, Timeframe] = {}
    for symbol in _progress(symbols, args.progress):
        path = csv_file(folder, symbol)
        bars = data.read_csv(path)
        native = data.infer_timeframe(bars)
        if native is None:
            raise BadInput(f"{path}: its bars have no regular spacing in whole minutes; give --timeframe")
        if wanted and wanted.seconds != native.seconds:
            if wanted.seconds % native.seconds:
                raise BadInput(
                    f"--timeframe {wanted.label} is not a multiple of {path.name}'s {native.label} bars"
                )
            bars = data.resample(bars, wanted)
        out[symbol], native_of[symbol] = bars, native
    if wanted is None:
        lengths = {tf.label for tf in native_of.values()}
        if len(lengths) > 1:
            found = ", ".join(f"{s} {tf.label}" for s, tf in native_of.items())
            raise BadInput(
                f"the symbols have different bar lengths ({found}); give --timeframe to aggregate them"
            )
    timeframe = wanted or next(iter(native_of.values()))
    return out, timeframe, f"CSV files in {folder}"


def csv_file(folder: Path, symbol: str) -> Path:
    """The file holding ``symbol``'s bars: ``AAPL.csv``; a pair with its slash as -, _ or nothing."""
    stems = [symbol] if "/" not in symbol else [symbol.replace("/", sep) for sep in ("-", "_", "")]
    for stem in stems:
        for name in (f"{stem}.csv", f"{stem.lower()}.csv"):
            if (folder / name).is_file():
                return folder / name
    tried = " or ".join(f"{stem}.csv" for stem in stems)
    raise BadInput(f"--csv {folder}: no file for {symbol} (looked for {tried})")


def _progress(items: list[str], enabled: bool | None):
    if enabled is False or len(items) < 2 or (enabled is None and not sys.stderr.isatty()):
        return items
    from tqdm import tqdm

    return tqdm(items, desc="reading", unit="symbol", file=sys.stderr)
