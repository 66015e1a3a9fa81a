"""Downloaded history for ``tradebot backtest --symbol``, cached on disk.

The window is fetched in chunks of ``CHUNK_BARS`` bars aligned to the epoch, so runs over
overlapping windows share them. A chunk that lies wholly in the past is saved as
``<cache>/bars-split/<source>[-regular-hours]/<symbol>/<timeframe>/<chunk start>.npz`` and read
from there next time (a split after a chunk was saved is not seen: delete the symbol's folder); the chunk still forming is always fetched. The synthetic market is computed, not
downloaded, so it is never cached.
"""

from __future__ import annotations

import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from bot.bars import Bars, Timeframe
from bot.data.base import BarSource, DataError

CHUNK_BARS = 10_000
_FIELDS = ("time", "open", "high", "low", "close", "volume")


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
    if not config.tradebot_extended_hours_bars:  # the bars the live engine would see
        from bot.data.sessions import RegularHours

        source = RegularHours(source)
    return source


def load_history(
    config: Any,
    symbol: str,
    timeframe: Timeframe,
    start: datetime,
    end: datetime,
    *,
    source: str | BarSource = "auto",
    cache_dir: Path | None = Path(".tradebot-cache"),
    progress: bool | None = None,
    now: datetime | None = None,
) -> tuple[Bars, str]:
    """Closed bars of ``symbol`` with ``start <= bar start < end``, and the source's name."""
    if end <= start:
        raise DataError(f"--end {end:%Y-%m-%d %H:%M} is not after --start {start:%Y-%m-%d %H:%M}")
    bar_source = make_source(config, source) if isinstance(source, str) else source
    now = now or datetime.now(UTC)
    closed_until = timeframe.floor(now)
    end = min(end, closed_until)
    span = timedelta(seconds=timeframe.seconds * CHUNK_BARS)
    first = _epoch_floor(start, span)
    chunks = []
    at = first
    while at < end:
        chunks.append(at)
        at += span
    cacheable = cache_dir is not None and bar_source.name != "synthetic"
    kind = _kind(bar_source)
    parts = []
    for chunk_start in _progress(chunks, progress, symbol):
        chunk_end = chunk_start + span
        path = _path(cache_dir, kind, symbol, timeframe, chunk_start) if cacheable else None
        if path is not None and path.is_file():
            parts.append(_load(path))
            continue
        fetched = bar_source.fetch([symbol], timeframe, chunk_start, min(chunk_end, closed_until))
        bars = fetched.get(symbol, Bars.empty())
        if path is not None and chunk_end <= closed_until:
            _save(path, bars)
        parts.append(bars)
    bars = Bars.concat(parts)
    lo, hi = _ns(start), _ns(end)
    keep = (bars.time >= lo) & (bars.time < hi)
    bars = bars[keep] if not keep.all() else bars
    if len(bars) == 0:
        raise DataError(f"{bar_source.name} has no {timeframe.label} bars for {symbol} in that window")
    return bars, bar_source.name


def _ns(when: datetime) -> int:
    delta = when - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def _epoch_floor(when: datetime, span: timedelta) -> datetime:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return epoch + ((when - epoch) // span) * span


def _kind(source: BarSource) -> str:
    """The cache folder of what ``source`` serves: regular-hours bars apart from extended ones."""
    from bot.data.sessions import RegularHours

    return f"{source.name}-regular-hours" if isinstance(source, RegularHours) else source.name


def _path(cache_dir: Path | None, source: str, symbol: str, timeframe: Timeframe, start: datetime) -> Path:
    """``bars-split``: stock bars split-adjusted since issue 17 (the raw ones cached before under
    ``bars`` are never mixed in)."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", symbol)
    folder = Path(cache_dir or ".") / "bars-split" / source / safe / timeframe.label
    return folder / f"{int(start.timestamp())}.npz"


def _save(path: Path, bars: Bars) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **{name: getattr(bars, name) for name in _FIELDS})
    tmp.replace(path)


def _load(path: Path) -> Bars:
    with np.load(path) as stored:
        return Bars(*(stored[name] for name in _FIELDS))


def _progress(items: list, enabled: bool | None, symbol: str):
    if enabled is False or len(items) < 2 or (enabled is None and not sys.stderr.isatty()):
        return items
    from tqdm import tqdm

    return tqdm(items, desc=f"bars {symbol}", unit="chunk", file=sys.stderr)
