"""A small fake of Polygon's aggregates endpoint on 127.0.0.1, in a background thread.

``GET /v2/aggs/ticker/{ticker}/range/{multiplier}/{timespan}/{from}/{to}`` with ``from``/``to``
in epoch milliseconds (both inclusive), answered in pages of ``page_size`` results linked by
``next_url`` (which, as at Polygon, carries no API key). Requests without the expected
``Authorization: Bearer`` key get 401. Every request is recorded.

Splits: ``add_split(ticker, ex_date, ratio)``; bars before the ex-date (midnight New York) are
served with prices divided by ``ratio`` and volume multiplied by it unless the request says
``adjusted=false`` (Polygon adjusts by default: massive.com knowledge base, "Why doesn't a bar
from the REST API match the flat files": "The default REST bar ... opens at 61.02 on about
15,293 shares, adjusted for the one-for-three reverse split", the flat file "opens at 20.34 on
about 45,879 shares").

Limits and failures:

- ``rate_limit``: requests a minute (None: unlimited, as on paid plans; the free plan allows 5,
  massive-com/client-python#870). Past it: 429 with Polygon's JSON error body
  (polygon-io/issues#303, #112) and no rate-limit or ``Retry-After`` headers (none are
  documented: massive-com/client-python#871 asks for them).
- ``failures``: the statuses of the next answers (e.g. ``[503, 503]``), then normal service.
- ``retry_after``: a ``Retry-After`` value to send with a 429 (Polygon sends none; for testing
  that the bot would honour one).
"""

from __future__ import annotations

import json
import threading
import time
from datetime import date, datetime
from datetime import time as clock_time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo


class FakePolygon:
    def __init__(self, *, key: str = "poly-key", page_size: int = 50_000) -> None:
        self.key = key
        self.page_size = page_size
        self.bars: dict[str, list[tuple[int, float, float, float, float, float]]] = {}  # ticker -> rows (ns)
        self.requests: list[tuple[str, dict[str, str], str | None]] = []
        self.status = 200
        self.failures: list[int] = []
        self.rate_limit: int | None = None
        self.retry_after: str | None = None
        self._window: tuple[int, int] = (0, 0)  # (minute, requests in it)
        self.splits: dict[str, list[tuple[int, float]]] = {}  # ticker -> (ex-date midnight ns, ratio)
        self._server: ThreadingHTTPServer | None = None

    def set_bars(self, ticker: str, bars: Any) -> None:
        self.bars[ticker] = list(
            zip(
                (int(t) for t in bars.time),
                *(map(float, getattr(bars, c)) for c in ("open", "high", "low", "close", "volume")),
                strict=True,
            )
        )

    def add_split(self, ticker: str, ex_date: date, ratio: float) -> None:
        cut = datetime.combine(ex_date, clock_time(0), ZoneInfo("America/New_York"))
        self.splits.setdefault(ticker, []).append((int(cut.timestamp()) * 1_000_000_000, ratio))

    def start(self) -> FakePolygon:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                status, payload = fake.handle(self.path, self.headers.get("Authorization"))
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                if status == 429 and fake.retry_after is not None:
                    self.send_header("Retry-After", fake.retry_after)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> FakePolygon:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def handle(self, raw_path: str, auth: str | None) -> tuple[int, Any]:
        parts = urlsplit(raw_path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        self.requests.append((parts.path, query, auth))
        if auth != f"Bearer {self.key}":
            return 401, {"status": "ERROR", "error": "Unknown API Key"}
        minute = int(time.time()) // 60
        window, count = self._window if self._window[0] == minute else (minute, 0)
        self._window = (window, count + 1)
        if self.rate_limit is not None and count + 1 > self.rate_limit:
            return 429, {
                "status": "ERROR",
                "request_id": "fake",
                "error": "You've exceeded the maximum requests per minute, please wait or upgrade your "
                "subscription to continue. https://polygon.io/pricing",
            }
        if self.failures:
            return self.failures.pop(0), {"status": "ERROR", "request_id": "fake", "error": "unavailable"}
        if self.status != 200:
            return self.status, {"status": "ERROR", "error": "unavailable"}
        pieces = parts.path.split("/")  # ['', 'v2', 'aggs', 'ticker', T, 'range', m, span, from, to]
        ticker, start_ms, end_ms = pieces[4], int(pieces[8]), int(pieces[9])
        rows = [r for r in self.bars.get(ticker, []) if start_ms <= r[0] // 1_000_000 <= end_ms]
        if query.get("adjusted", "true") != "false":
            for cut, ratio in self.splits.get(ticker, []):
                rows = [
                    (t, o / ratio, h / ratio, low / ratio, c / ratio, v * ratio)
                    if t < cut
                    else (t, o, h, low, c, v)
                    for t, o, h, low, c, v in rows
                ]
        offset = int(query.get("cursor", 0))
        page = rows[offset : offset + self.page_size]
        body: dict[str, Any] = {
            "ticker": ticker,
            "status": "OK",
            "resultsCount": len(page),
            "results": [
                {"t": t // 1_000_000, "o": o, "h": h, "l": low, "c": c, "v": v, "vw": c, "n": 1}
                for t, o, h, low, c, v in page
            ],
        }
        if offset + self.page_size < len(rows):
            body["next_url"] = f"{self.url}{parts.path}?cursor={offset + self.page_size}"
        return 200, body
