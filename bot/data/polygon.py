"""Bars from Polygon's aggregates endpoint, over ``requests``: the fallback when Alpaca's data fails.

``GET {POLYGON_BASE_URL}/v2/aggs/ticker/{ticker}/range/{multiplier}/{timespan}/{from}/{to}``,
one ticker per request (Polygon has no multi-ticker aggregates), crypto as ``X:BTCUSD``, pages
followed through ``next_url``. The key travels in the ``Authorization`` header, never in a URL,
so it cannot end up in a log line.

Bars are asked ``adjusted=true``: adjusted for splits, prices and volume alike (Polygon's
default; massive.com knowledge base, "Why doesn't a bar from the REST API match the flat files":
"the default REST bar ... adjusted for the one-for-three reverse split"), the same adjustment
Alpaca is asked for (``adjustment=split``, ``bot.alpaca.data``), so a fallback bar matches the
ones around it.

Every request has a timeout. A 429, a 5xx or a transport failure is retried on the bot's one
retry policy (``bot.retry``, ``POLYGON_READS``): growing waits, a ``Retry-After`` honoured when
Polygon sends one (it documents none), never more than 15 s of waiting in one request. Polygon's
free plan allows 5 requests a minute: a spent minute cannot be waited out within that, so the
request fails and the fallback reports it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np
import requests

from bot.bars import NS, Bars, Timeframe
from bot.data.base import DataError
from bot.domain import is_crypto
from bot.retry import RetryPolicy

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.polygon.io"
POLYGON_READS = RetryPolicy(attempts=3, base=1.0, cap=8.0, budget=15.0)
ADJUSTED = "true"  # split-adjusted, as Alpaca's bars are asked (adjustment=split)


class _Transient(Exception):
    """A 429 or 5xx answer: worth another try."""

    def __init__(self, response: requests.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


def _retriable(exc: BaseException) -> bool:
    return isinstance(exc, (_Transient, requests.RequestException))


def _retry_after(exc: BaseException) -> float | None:
    """Seconds from a ``Retry-After`` header, if Polygon sent one."""
    if not isinstance(exc, _Transient):
        return None
    try:
        return float(exc.response.headers.get("Retry-After", ""))
    except ValueError:
        return None


def polygon_ticker(symbol: str) -> str:
    return "X:" + symbol.replace("/", "") if is_crypto(symbol) else symbol


def polygon_span(timeframe: Timeframe) -> tuple[int, str]:
    seconds = timeframe.seconds
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            return seconds // size, unit
    raise DataError(f"Polygon has no {timeframe.label} bars")


class PolygonBarSource:
    name = "polygon"

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = 10.0,
        policy: RetryPolicy = POLYGON_READS,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not api_key:
            raise ValueError("PolygonBarSource needs POLYGON_API_KEY")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.policy = policy
        self.session = session or requests.Session()
        self.session.headers["Authorization"] = f"Bearer {api_key}"
        self._sleep = sleep
        self.requests = 0

    def _get(self, url: str, params: dict[str, Any] | None) -> dict[str, Any]:
        try:
            return self.policy.call(
                lambda: self._get_once(url, params),
                retry_if=_retriable,
                hint=_retry_after,
                sleep=self._sleep,
                what="Polygon aggregates",
            )
        except _Transient as exc:
            raise DataError(f"Polygon aggregates failed: {exc}: {exc.response.text[:200]}") from None
        except requests.RequestException as exc:
            raise DataError(f"Polygon aggregates failed: {type(exc).__name__}") from None

    def _get_once(self, url: str, params: dict[str, Any] | None) -> dict[str, Any]:
        self.requests += 1
        response = self.session.get(url, params=params, timeout=self.timeout)
        if response.status_code == 200:
            try:
                body: dict[str, Any] = response.json()
            except ValueError:
                raise DataError("Polygon answered something that is not JSON") from None
            if body.get("status") in ("ERROR", "NOT_AUTHORIZED"):
                raise DataError(f"Polygon: {body.get('error') or body.get('message') or body['status']}")
            return body
        if response.status_code in (401, 403):
            raise DataError(f"Polygon refused the key (HTTP {response.status_code}): check POLYGON_API_KEY")
        if response.status_code == 429 or response.status_code >= 500:
            raise _Transient(response)
        raise DataError(f"Polygon aggregates failed: HTTP {response.status_code}: {response.text[:200]}")

    def _one(self, symbol: str, timeframe: Timeframe, start: datetime, end: datetime) -> Bars:
        multiplier, span = polygon_span(timeframe)
        start_ms = int(start.timestamp() * 1000)
        end_ms = int(end.timestamp() * 1000) - 1  # Polygon's "to" is inclusive
        url: str | None = (
            f"{self.base_url}/v2/aggs/ticker/{polygon_ticker(symbol)}/range/{multiplier}/{span}/{start_ms}/{end_ms}"
        )
        params: dict[str, Any] | None = {"adjusted": ADJUSTED, "sort": "asc", "limit": 50000}
        rows: list[dict[str, Any]] = []
        while url:
            body = self._get(url, params)
            rows.extend(body.get("results") or [])
            url, params = body.get("next_url"), None  # next_url carries its own query
        if not rows:
            return Bars.empty()
        times = np.fromiter((int(r["t"]) * 1_000_000 for r in rows), np.int64, len(rows))
        bars = Bars(times, *(np.fromiter((r[k] for r in rows), float, len(rows)) for k in "ohlcv"))
        keep = (bars.time >= int(start.timestamp()) * NS) & (bars.time < int(end.timestamp() * 1e9))
        return bars if keep.all() else bars[keep]

    def fetch(
        self, symbols: list[str], timeframe: Timeframe, start: datetime, end: datetime
    ) -> dict[str, Bars]:
        if start.tzinfo is None or end.tzinfo is None:
            raise DataError("bar window times must be timezone-aware (UTC)")
        start, end = start.astimezone(UTC), end.astimezone(UTC)
        out: dict[str, Bars] = {}
        errors: dict[str, str] = {}
        for symbol in dict.fromkeys(symbols):
            try:
                bars = self._one(symbol, timeframe, start, end)
            except DataError as exc:
                errors[symbol] = str(exc)
                continue
            if len(bars):
                out[symbol] = bars
        if errors and len(errors) == len(set(symbols)):
            raise DataError(f"Polygon served none of {', '.join(errors)}: {next(iter(errors.values()))}")
        for symbol, message in errors.items():
            log.warning("Polygon has no bars for %s: %s", symbol, message)
        return out
