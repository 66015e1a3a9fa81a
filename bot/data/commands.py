"""``tradebot data``: download history into the local store, bring it up to date, list it.

Argument parsing imports nothing heavy (``tradebot --help`` stays fast); the work is in
``bot.data.download`` and ``bot.data.store``.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

EPILOG = """\
The store is one Parquet file per symbol and timeframe under TRADEBOT_DATA_DIR (default
tradebot-data): AAPL/1m.parquet, BTC-USD/1d.parquet. Each file records which spans were asked of
which source, so a span already asked for is never fetched again, and the newest bars (closed less
than 10 minutes ago) are never stored. Backtests with --symbol or --symbols read the store first.

examples:
  tradebot data download --symbols AAPL,BTC/USD --timeframe 1m --start 2024-01-01
  tradebot data update                     fetch what is missing up to now, for every stored file
  tradebot data list                       what is stored: ranges, gaps, sources
"""


class DataCommandError(Exception):
    """A one-line refusal; exit status 2."""


def add_data_parser(subparsers: Any, handler: Any) -> None:
    """``handler(args)`` runs the action (the CLI loads the settings, then calls ``cmd_data``)."""
    parser = subparsers.add_parser(
        "data",
        help="history kept locally: download, update, list",
        description="Bars from Alpaca (Polygon as fallback when POLYGON_API_KEY is set) kept in a local "
        "Parquet store, so backtests need no network the second time.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(title="actions", metavar="ACTION", required=True)

    download = actions.add_parser(
        "download",
        help="fetch bars for symbols and a window into the store (only what it lacks)",
        description="Fetch the bars of each symbol for --start..--end that the store does not hold yet.",
    )
    download.add_argument(
        "--symbols", required=True, metavar="A,B", help="stock tickers and crypto pairs: AAPL,BTC/USD"
    )
    download.add_argument("--start", required=True, metavar="D", help="first day or time, UTC (2024-01-31)")
    download.add_argument("--end", metavar="D", help="end (exclusive), UTC; default: now")
    download.add_argument(
        "--timeframe", metavar="TF", help="1m, 5m, 15m, 30m, 1h, 4h, 1d (default: TRADEBOT_TIMEFRAME)"
    )
    _common(download)
    download.set_defaults(func=handler, action="download")

    update = actions.add_parser(
        "update",
        help="fetch what is missing up to now, for every stored file (or the ones named)",
        description="For each stored symbol and timeframe: the gaps between stored spans and the bars "
        "from the last stored one up to now.",
    )
    update.add_argument("--symbols", metavar="A,B", help="only these symbols")
    update.add_argument("--timeframe", metavar="TF", help="only this timeframe")
    _common(update)
    update.set_defaults(func=handler, action="update")

    listing = actions.add_parser("list", help="what the store holds: bars, ranges, gaps, sources")
    listing.add_argument("--data-dir", metavar="DIR", help="the store (default: TRADEBOT_DATA_DIR)")
    listing.set_defaults(func=handler, action="list")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", metavar="DIR", help="the store (default: TRADEBOT_DATA_DIR)")
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar (default: at a terminal)",
    )


def cmd_data(args: argparse.Namespace, settings: Any) -> int:
    from bot.data.base import DataError
    from bot.data.store import BarStore, StoreError

    store = BarStore(Path(args.data_dir or settings.tradebot_data_dir))
    try:
        if args.action == "list":
            lines = list_store(store)
        elif args.action == "download":
            lines = download(args, settings, store)
        else:
            lines = update(args, settings, store)
    except (DataCommandError, StoreError) as exc:
        print(f"tradebot: error: {exc}", file=sys.stderr)
        return 2
    except DataError as exc:
        print(f"tradebot: error: {exc}", file=sys.stderr)
        return 1
    for line in lines:
        print(line)
    return 0


# ------------------------------------------------------------------------------------ actions


def download(args: argparse.Namespace, settings: Any, store: Any) -> list[str]:
    symbols = _symbols(args.symbols)
    timeframe = _timeframe(args.timeframe or str(settings.tradebot_timeframe))
    now = datetime.now(UTC)
    start = _date(args.start, "--start")
    end = _date(args.end, "--end") if args.end else now
    if end <= start:
        raise DataCommandError(f"--end {end:%Y-%m-%d %H:%M} is not after --start {start:%Y-%m-%d %H:%M}")
    if start >= now:
        raise DataCommandError(
            f"--start {start:%Y-%m-%d} is in the future: there are no bars to download yet"
        )
    return _fill_all(settings, store, [(s, timeframe, start, end) for s in symbols], now, args.progress)


def update(args: argparse.Namespace, settings: Any, store: Any) -> list[str]:
    now = datetime.now(UTC)
    only = set(_symbols(args.symbols)) if args.symbols else None
    timeframe = _timeframe(args.timeframe) if args.timeframe else None
    jobs = []
    for _path, dataset in store.datasets():
        if only is not None and dataset.symbol not in only:
            continue
        if timeframe is not None and dataset.timeframe != timeframe:
            continue
        spans = dataset.covered()
        if not spans:
            continue
        from bot.data.store import from_ns

        jobs.append((dataset.symbol, dataset.timeframe, from_ns(spans[0][0]), now))
    if not jobs:
        where = f" for {', '.join(sorted(only))}" if only else ""
        raise DataCommandError(
            f"nothing stored in {store.root}{where}: start with tradebot data download --symbols ... --start ..."
        )
    return _fill_all(settings, store, jobs, now, args.progress)


def _fill_all(settings: Any, store: Any, jobs: list, now: datetime, progress: bool | None) -> list[str]:
    from bot.data.download import chunk_count, fill, progress_bar
    from bot.data.store import from_ns

    source = _source(settings)
    total = sum(chunk_count(store, s, tf, a, b, now) for s, tf, a, b in jobs)
    lines = []
    with progress_bar(total, "download", progress) as step:
        for symbol, timeframe, start, end in jobs:
            _bars, report = fill(store, source, symbol, timeframe, start, end, now=now, progress=step)
            dataset = store.dataset(symbol, timeframe)
            held = (
                f"stored {dataset.bars:,} bars, {_day(from_ns(dataset.first))} to {_day(from_ns(dataset.last))}"
                if dataset is not None and dataset.bars
                else "no bars stored (the source had none in that window)"
            )
            fetched = (
                f"fetched {report.fetched_bars:,} bars in {report.requests} requests "
                f"({', '.join(sorted(report.sources))})"
                if report.requests
                else "nothing to fetch"
            )
            lines.append(f"{symbol} {timeframe.label}: {fetched}; {held}")
            lines.extend(f"  note: {note}" for note in report.notes)
    return lines


def list_store(store: Any) -> list[str]:
    from bot.data.store import from_ns

    rows = list(store.datasets())
    if not rows:
        return [f"{store.root}: nothing stored (tradebot data download --symbols AAPL --start 2024-01-01)"]
    lines = [f"{store.root}:"]
    header = ("symbol", "tf", "bars", "first bar", "last bar", "covered", "gaps", "kind", "source", "size")
    table = [header]
    for path, dataset in rows:
        spans = dataset.covered()
        covered = f"{_day(from_ns(spans[0][0]))} to {_day(from_ns(spans[-1][1]))}" if spans else "-"
        holes = [(a, b) for (_, a), (b, _) in itertools.pairwise(spans)]
        gaps = (
            "none"
            if not holes
            else f"{len(holes)}: "
            + ", ".join(f"{_day(from_ns(a))} to {_day(from_ns(b))}" for a, b in holes[:3])
            + (" ..." if len(holes) > 3 else "")
        )
        table.append(
            (
                dataset.symbol,
                dataset.timeframe.label,
                f"{dataset.bars:,}",
                _minute(from_ns(dataset.first)) if dataset.first is not None else "-",
                _minute(from_ns(dataset.last)) if dataset.last is not None else "-",
                covered,
                gaps,
                dataset.adjustment + (f"/{dataset.feed}" if dataset.feed else ""),
                "+".join(dataset.sources()),
                _size(path.stat().st_size),
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        lines.append(
            "  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    lines.append(
        "gaps: spans inside the covered range that no source was asked for (tradebot data update fills them)"
    )
    return lines


# ------------------------------------------------------------------------------------ helpers


def _source(settings: Any) -> Any:
    from bot.backtest.history import make_source
    from bot.data.base import DataError

    key, secret = settings.alpaca_api_key.get_secret_value(), settings.alpaca_api_secret.get_secret_value()
    if not (key and secret):
        raise DataCommandError(
            "downloads come from Alpaca: set ALPACA_API_KEY and ALPACA_API_SECRET (the synthetic market "
            "is computed, never stored)"
        )
    try:
        return make_source(settings, "alpaca")
    except DataError as exc:
        raise DataCommandError(str(exc)) from None


def _symbols(text: str) -> list[str]:
    from bot.config.types import split_list, symbol

    names = split_list(text)
    if not names:
        raise DataCommandError("--symbols: no symbol given (AAPL,BTC/USD)")
    out: list[str] = []
    for name in names:
        try:
            cleaned = symbol(name)
        except ValueError as exc:
            raise DataCommandError(f"--symbols: {exc}") from None
        if cleaned in out:
            raise DataCommandError(f"--symbols: {cleaned} is given twice")
        out.append(cleaned)
    return out


def _timeframe(text: str) -> Any:
    from bot.bars import Timeframe

    try:
        return Timeframe.parse(text)
    except ValueError as exc:
        raise DataCommandError(str(exc)) from None


def _date(text: str, option: str) -> datetime:
    from bot.bars import parse_date

    try:
        return parse_date(text, option)
    except ValueError as exc:
        raise DataCommandError(str(exc)) from None


def _day(when: datetime) -> str:
    return f"{when:%Y-%m-%d}"


def _minute(when: datetime) -> str:
    return f"{when:%Y-%m-%d %H:%M}"


def _size(count: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1024 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024  # type: ignore[assignment]
    return f"{count} B"
