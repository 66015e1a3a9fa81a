"""Bars from Alpaca's market data API: stocks and crypto, many symbols per request.

One ``fetch`` makes at most two logical requests, one for all stocks (``/v2/stocks/bars``) and
one for all crypto pairs (``/v1beta3/crypto/us/bars``), each with every symbol in ``symbols=``;
alpaca-py follows ``next_page_token`` (its ``limit`` counts bars across all symbols). Answers are
taken raw (``raw_data=True``) and turned straight into numpy arrays: no pydantic object per bar.

``start`` is always sent timezone-aware (alpaca-py reads naive datetimes as UTC and defaults a
missing start to today's midnight). Stocks use the feed in ``ALPACA_DATA_FEED`` (``iex`` on
free plans). Alpaca's ``end`` is inclusive; tradebot's is exclusive, so the last bar is trimmed.

Stock bars are asked **split-adjusted** (``adjustment=split``; Alpaca's default is ``raw``): a
raw window that spans a 4-for-1 split shows a 75 % crash that never happened, and a strategy
would trade on it. Not ``all``: dividend adjustment rewrites every earlier price a little at
each ex-dividend date, so the cached window (``bot.data.cache``, which re-reads a symbol only
on a split-sized change) would mix adjusted and unadjusted prices (the local store,
``bot.data.download``, re-reads on any change and would fetch whole histories every quarter), and stops derived from the
bars would sit off the prices that trade; Polygon's ``adjusted=true``, the fallback, is
split-only too (``bot.data.polygon``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import numpy as np
import requests
from alpaca.common.exceptions import APIError
from alpaca.data.enums import Adjustment, DataFeed
from alpaca.data.historical.crypto import CryptoHistoricalDataClient
from alpaca.data.historical.stock import StockHistoricalDataClient
from alpaca.data.requests import (
    CryptoBarsRequest,
    CryptoLatestTradeRequest,
    StockBarsRequest,
    StockLatestTradeRequest,
)
from alpaca.data.timeframe import TimeFrame, TimeFrameUnit

from bot.alpaca.http import DATA, AlpacaHttp, describe, is_transient, status_of
from bot.bars import Bars, Timeframe
from bot.data.base import DataError
from bot.domain import is_crypto
from bot.retry import RetryPolicy

log = logging.getLogger(__name__)

T = TypeVar("T")

DATA_READS = RetryPolicy(attempts=3, base=0.5, cap=4.0, budget=15.0)

ADJUSTMENT = Adjustment.SPLIT  # why not raw or all: the module's docstring
FEEDS = {"iex": DataFeed.IEX, "sip": DataFeed.SIP, "delayed_sip": DataFeed.DELAYED_SIP, "otc": DataFeed.OTC}


def alpaca_timeframe(timeframe: Timeframe) -> TimeFrame:
    """1m, 5m, 15m, 1h, 4h, 1d (and any minute count < 60, hour count < 24) in Alpaca's terms."""
    seconds = timeframe.seconds
    if seconds == 86400:
        return TimeFrame(1, TimeFrameUnit.Day)
    if seconds % 3600 == 0 and seconds // 3600 < 24:
        return TimeFrame(seconds // 3600, TimeFrameUnit.Hour)
    if seconds % 60 == 0 and seconds // 60 < 60:
        return TimeFrame(seconds // 60, TimeFrameUnit.Minute)
    raise DataError(f"Alpaca has no {timeframe.label} bars: use 1m-59m, 1h-23h or 1d")


def _parse_times(stamps: list[str]) -> np.ndarray:
    """RFC 3339 UTC stamps (``2024-01-02T15:04:00Z``) to int64 ns."""
    try:
        cleaned = [s[:-1] if s.endswith("Z") else s for s in stamps]
        return np.array(cleaned, dtype="datetime64[ns]").astype(np.int64)
    except ValueError:
        return np.array(
            [int(datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp() * 1e9) for s in stamps],
            dtype=np.int64,
        )


def bars_from_rows(rows: list[dict[str, Any]]) -> Bars:
    """Alpaca's raw bars ``{"t","o","h","l","c","v",...}`` to ``Bars`` (kept in the order given)."""
    if not rows:
        return Bars.empty()
    return Bars(
        _parse_times([r["t"] for r in rows]),
        np.fromiter((r["o"] for r in rows), float, len(rows)),
        np.fromiter((r["h"] for r in rows), float, len(rows)),
        np.fromiter((r["l"] for r in rows), float, len(rows)),
        np.fromiter((r["c"] for r in rows), float, len(rows)),
        np.fromiter((r["v"] for r in rows), float, len(rows)),
    )


def _aware(when: datetime) -> datetime:
    if when.tzinfo is None:
        raise DataError("bar window times must be timezone-aware (UTC)")
    return when.astimezone(UTC)


class AlpacaBarSource:
    """``BarSource`` over alpaca-py's historical data clients; also serves latest trade prices."""

    name = "alpaca"

    def __init__(
        self,
        stocks: StockHistoricalDataClient,
        crypto: CryptoHistoricalDataClient,
        *,
        feed: str = "iex",
        http: AlpacaHttp | None = None,
        policy: RetryPolicy = DATA_READS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if feed.lower() not in FEEDS:
            raise ValueError(f"ALPACA_DATA_FEED={feed!r}: use one of {', '.join(FEEDS)}")
        self.stocks = stocks
        self.crypto = crypto
        self.feed = FEEDS[feed.lower()]
        self.adjustment = ADJUSTMENT.value  # stock bars' adjustment, recorded by the local store
        self.http = http or AlpacaHttp(sleep=sleep)
        self.policy = policy
        self.requests = 0  # logical data requests made (each may span several pages)

    @classmethod
    def create(
        cls,
        api_key: str,
        secret_key: str,
        *,
        url: str | None = None,
        feed: str = "iex",
        http: AlpacaHttp | None = None,
        sleep: Callable[[float], None] = time.sleep,
        **kwargs: Any,
    ) -> AlpacaBarSource:
        """Both data clients, hardened by ``http`` (shared with the trading client when given: one
        stall budget, each API its own rate limit)."""
        http = http or AlpacaHttp(sleep=sleep)
        stocks = http.install(
            StockHistoricalDataClient(api_key, secret_key, raw_data=True, url_override=url), api=DATA
        )
        crypto = http.install(
            CryptoHistoricalDataClient(api_key, secret_key, raw_data=True, url_override=url), api=DATA
        )
        return cls(stocks, crypto, feed=feed, http=http, **kwargs)

    def _call(self, what: str, call: Callable[[], T]) -> T:
        """One logical request, retried through ``bot.retry`` on 429, 5xx and transport errors."""

        def counted() -> T:
            self.requests += 1
            return call()

        try:
            return self.policy.call(
                counted,
                retry_if=is_transient,
                hint=self.http.wait_hint,
                sleep=self.http.sleeper(DATA),
                what=f"Alpaca {what}",
            )
        except (
            APIError,
            requests.RequestException,
            ValueError,
        ) as exc:  # ValueError: an answer alpaca-py could not parse
            hint = ""
            if status_of(exc) in (401, 403):
                hint = (
                    " (check ALPACA_API_KEY/ALPACA_API_SECRET, and ALPACA_DATA_FEED: sip needs a paid plan)"
                )
            raise DataError(f"Alpaca {what} failed: {describe(exc)}{hint}") from None

    def fetch(
        self, symbols: list[str], timeframe: Timeframe, start: datetime, end: datetime
    ) -> dict[str, Bars]:
        start, end = _aware(start), _aware(end)
        if not symbols or start >= end:
            return {}
        tf = alpaca_timeframe(timeframe)
        stocks = [s for s in dict.fromkeys(symbols) if not is_crypto(s)]
        pairs = [s for s in dict.fromkeys(symbols) if is_crypto(s)]
        raw: dict[str, list[dict[str, Any]]] = {}
        if stocks:
            stock_bars = StockBarsRequest(
                symbol_or_symbols=stocks,
                timeframe=tf,
                start=start,
                end=end,
                feed=self.feed,
                adjustment=ADJUSTMENT,
            )
            raw.update(self._call("stock bars", lambda: self.stocks.get_stock_bars(stock_bars)) or {})
        if pairs:
            crypto_bars = CryptoBarsRequest(symbol_or_symbols=pairs, timeframe=tf, start=start, end=end)
            raw.update(self._call("crypto bars", lambda: self.crypto.get_crypto_bars(crypto_bars)) or {})
        end_ns = int(end.timestamp()) * 1_000_000_000 + end.microsecond * 1000
        out: dict[str, Bars] = {}
        for symbol, rows in raw.items():
            if symbol not in symbols or not rows:
                continue
            bars = bars_from_rows(rows)
            keep = bars.time < end_ns
            if not keep.all():
                bars = bars[keep]
            if len(bars):
                out[symbol] = bars
        return out

    def latest_prices(self, symbols: list[str]) -> dict[str, float]:
        """Last trade price per symbol (stocks from the configured feed)."""
        stocks = [s for s in symbols if not is_crypto(s)]
        pairs = [s for s in symbols if is_crypto(s)]
        raw: dict[str, Any] = {}
        if stocks:
            stock_trades = StockLatestTradeRequest(symbol_or_symbols=stocks, feed=self.feed)
            raw.update(
                self._call("latest trades", lambda: self.stocks.get_stock_latest_trade(stock_trades)) or {}
            )
        if pairs:
            crypto_trades = CryptoLatestTradeRequest(symbol_or_symbols=pairs)
            raw.update(
                self._call("latest crypto trades", lambda: self.crypto.get_crypto_latest_trade(crypto_trades))
                or {}
            )
        return {s: float(t["p"]) for s, t in raw.items() if isinstance(t, dict) and t.get("p") is not None}
