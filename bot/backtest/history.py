"""Downloaded history for ``tradebot backtest --symbol`` and ``--symbols``, through the local
store (``bot.data.store``): a second backtest over the same window needs no network."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.bars import Bars, Timeframe
from bot.data.base import BarSource, DataError
from bot.data.store import DEFAULT_DIR


def make_source(config: Any, choice: str = "auto") -> BarSource:
    """Alpaca (with Polygon behind it when POLYGON_API_KEY is set) or the synthetic market."""
    key, secret = config.alpaca_api_key.get_secret_value(), config.alpaca_api_secret.get_secret_value()
    if choice == "synthetic" or (choice == "auto" and not (key and secret)):
        from bot.data.synthetic import SyntheticMarket

        return SyntheticMarket()
    if not (key and secret):
        raise DataError("--source alpaca needs ALPACA_API_KEY and ALPACA_API_SECRET")
    from bot.alpaca.data import AlpacaBarSource

    url = config.alpaca_data_url.rstrip("/") or None
    source: BarSource = AlpacaBarSource.create(key, secret, url=url, feed=config.alpaca_data_feed.value)
    polygon = config.polygon_api_key.get_secret_value()
    if polygon:
        from bot.data.fallback import FallbackSource
        from bot.data.polygon import DEFAULT_BASE_URL, PolygonBarSource

        base = config.polygon_base_url or DEFAULT_BASE_URL
        source = FallbackSource(source, PolygonBarSource(polygon, base_url=base))
    return source


def data_dir(args: Any, config: Any) -> Path | None:
    """The store a download goes through: ``--data-dir``, else ``TRADEBOT_DATA_DIR``; None with
    ``--no-store``."""
    if getattr(args, "no_store", False):
        return None
    return Path(getattr(args, "data_dir", None) or getattr(config, "tradebot_data_dir", None) or DEFAULT_DIR)


def load_history(
    config: Any,
    symbol: str,
    timeframe: Timeframe,
    start: datetime,
    end: datetime,
    *,
    source: str | BarSource = "auto",
    data_dir: Path | None = Path(DEFAULT_DIR),
    progress: bool | None = None,
    now: datetime | None = None,
) -> tuple[Bars, str]:
    """Closed bars of ``symbol`` with ``start <= bar start < end``, and where they came from.

    Downloaded bars go through the local store at ``data_dir`` (``bot.data.store``): what it
    holds is read from disk, only the spans it lacks are fetched, and they are kept for the next
    run. ``data_dir=None`` fetches everything and keeps nothing. The synthetic market is computed,
    never stored. A source built from ``config`` serves a stock's regular hours only unless
    ``TRADEBOT_EXTENDED_HOURS_BARS`` is on, as the live bot does (``bot.data.sessions``).
    """
    if end <= start:
        raise DataError(f"--end {end:%Y-%m-%d %H:%M} is not after --start {start:%Y-%m-%d %H:%M}")
    bar_source = make_source(config, source) if isinstance(source, str) else source
    now = now or datetime.now(UTC)
    if data_dir is None or bar_source.name == "synthetic":
        bars = _fetch_all(bar_source, symbol, timeframe, start, min(end, timeframe.floor(now)))
        name = bar_source.name
    else:
        from bot.data.download import chunk_count, fill, progress_bar
        from bot.data.store import BarStore, StoreError

        store = BarStore(data_dir)
        try:
            total = chunk_count(store, symbol, timeframe, start, end, now)
            with progress_bar(total, f"bars {symbol}", progress) as step:
                bars, report = fill(store, bar_source, symbol, timeframe, start, end, now=now, progress=step)
        except StoreError as exc:
            raise DataError(str(exc)) from None
        for note in report.notes:
            print(f"note: {note}", file=sys.stderr)
        name = bar_source.name
    if isinstance(source, str) and bar_source.name != "synthetic" and not config.tradebot_extended_hours_bars:
        from bot.data.sessions import RegularHours

        # the bars the live bot would see on Alpaca (the store keeps every bar as served)
        bars = RegularHours.keep(symbol, bars, timeframe)
    if len(bars) == 0:
        raise DataError(f"{bar_source.name} has no {timeframe.label} bars for {symbol} in that window")
    return bars, name


def _fetch_all(source: BarSource, symbol: str, timeframe: Timeframe, start: datetime, end: datetime) -> Bars:
    """Everything from the source, in windows of ``CHUNK_BARS`` bars (the synthetic market, or no store)."""
    from bot.data.download import CHUNK_BARS

    span = timedelta(seconds=timeframe.seconds * CHUNK_BARS)
    parts, at = [], start
    while at < end:
        parts.append(source.fetch([symbol], timeframe, at, min(at + span, end)).get(symbol, Bars.empty()))
        at += span
    return Bars.concat(parts)
