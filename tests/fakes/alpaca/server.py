"""The fake Alpaca server: trading and market-data REST on 127.0.0.1, as strict as Alpaca's documents.

alpaca-py's own clients talk to it (``url_override=fake.url``); every request is recorded in
``fake.requests``. The rules live beside it: ``trading`` (what an order submit accepts or
refuses, the order listing), ``orders`` (order and position JSON, fills), ``market`` (clock,
calendar, bar aggregation), ``stream`` (the ``trade_updates`` websocket).

Besides those, this module models:

- **Rate limits, one per API** (alpaca-docs trading-api ``_index.md``: "200 requests every
  minute per API key", answered 429; market data: ``content/market-data/_index.md``, "Historical
  API calls 200/min" on the free plan, counted apart from trading; docs.alpaca.markets "About
  Market Data API": 10,000/min on Algo Trader Plus; broker-api ``_index.md`` and
  docs.alpaca.markets "Rate Limits": every response carries ``X-RateLimit-Limit``,
  ``X-RateLimit-Remaining`` and ``X-RateLimit-Reset``, the UNIX epoch in seconds of the window's
  reset; no ``Retry-After``). Windows are real time (``time.time``), apart from the settable
  market clock. ``rate_limit`` sets the trading API's limit per minute, ``data_rate_limit`` the
  market data API's; a 429 on one never touches the other's window.
- **The account** (docs.alpaca.markets changelog 2026-07-06 "Pattern day trading fields and
  configurations removed"): no ``pattern_day_trader``, ``daytrade_count`` or
  ``daytrading_buying_power``.
- ``GET /v2/orders:by_client_order_id`` answers 404 when there is no such order (orders.yaml).
- FILL activities (alpaca-docs ``account-activities.md``): ``after`` exclusive, ``direction``
  (default desc), ``page_size`` (default and max 100), ``page_token`` = the id of the end of the
  current page. Ids are ``<ms timestamp>::<uuid>``, so activities of the same millisecond come
  back in no fixed order (``same_ms_reversed`` forces the reverse of their execution order).

Switches inject the failures tradebot must survive (the Alpaca behaviours of ``orders`` and
``trading`` are on by default; these are off): ``fail_after_accept`` (the next N submits are
stored, then answered with a status, or ``"drop"`` to close the connection), ``fail_before_accept``,
``hang_seconds`` (a submit stored, answered late), ``hang_all`` (every request answered only after
that long), ``data_outage``, ``read_failures`` (the next N trading GETs answer 503), ``keys``,
``activities_held`` (executions are not yet listed as FILL activities, until ``post_activities``:
the trading stream running ahead of the activities endpoint), ``fail_next`` (the next request to
a method and path prefix answers a status; a 429 carries a reset one second away).
Orders fill when a test says (``fill``; a bracket's stop through ``trigger_stop``) and market
orders at once with ``auto_fill`` (on: inside the POST, at ``prices[symbol]`` or the last bar's
close; a stock only while the market is open; never on a symbol in ``illiquid``). The market data
API (``marketdata``) serves bars outside regular hours, a just-closed bar only ``bar_delay``
seconds later, and ``adjustment`` around the splits ``add_split`` records. With
``fill_step`` set, an auto-filled order executes at most that quantity at once and the next part
each time a test calls ``trade`` (an order larger than the book fills in several executions,
``partially_filled`` until the last: orders.md, "Order Lifecycle").
Timing switches for the races of issue 17: ``cancel_latency`` (trading requests a cancel stays
``pending_cancel``), ``on_cancel`` and ``stop_fires_on_cancel`` (a stop filling while an exit's
cancel is in flight), ``stop_replacement`` (a stop fills through a replacement order),
``hold_replace``/``end_replace`` (an order ``pending_replace``), ``calculated_now`` (a filled order
reads ``calculated`` at once), and the account's ``shorting_enabled`` (on), ``flip_refused``,
``trading_blocked``, ``trade_suspended_by_user`` and ``account_blocked``.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.fakes.alpaca import crypto, marketdata, trading
from tests.fakes.alpaca.market import FakeClock, market_clock
from tests.fakes.alpaca.orders import ACCOUNT_ID, FakeOrder, FakePosition, can_execute, compact, iso, num


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    status: int = 0
    at: float = 0.0  # time.monotonic() on arrival


class FakeAlpaca:
    """The fake server and its state. Use as a context manager or call ``start``/``stop``."""

    def __init__(
        self,
        *,
        key: str = "test-key",
        secret: str = "test-secret",
        page_size: int = 10_000,
        nagle: bool = True,
    ) -> None:
        """``nagle=False``: each answer leaves at once. With Nagle's algorithm (the socket default)
        the body, written after the headers, waits for the client's delayed ACK of them: about
        40 ms an answer on loopback, a stand-in for a network's round trip that tests polling with
        a no-op sleep rely on; benchmarks turn it off to time tradebot rather than the fake."""
        self.keys = (key, secret)
        self.nagle = nagle
        self.page_size = page_size  # data API page size (items across all symbols per page)
        self.lock = threading.RLock()
        self.clock = FakeClock()
        self.requests: list[Recorded] = []
        self.orders: list[FakeOrder] = []
        self.positions: dict[str, FakePosition] = {}
        self.activities: list[dict[str, Any]] = []
        self.activities_held = False
        self._unposted: list[dict[str, Any]] = []
        self.bars: dict[str, list[tuple[int, float, float, float, float, float]]] = {}
        self.bar_delay = 3.0  # seconds after a minute ends before its bar is served (marketdata.py)
        self.splits: dict[str, list[tuple[date, float]]] = {}  # symbol -> (ex-date, ratio), add_split
        self.bars_version = 0  # bumped by set_bars and add_split: the answers marketdata.py keeps
        self.bars_answers: dict[tuple[Any, ...], list[Any]] = {}  # marketdata.bars: a query's rows
        self.prices: dict[str, float] = {}
        self.assets: dict[str, dict[str, Any]] = {}
        self.cash = 100_000.0
        self.multiplier = "1"
        self.slash_asset_404 = True  # GET /v2/assets/BTC/USD answers 404 (crypto.py)
        self.crypto_fee_bps = 25.0  # tier 1 (crypto.py)
        self.crypto_fees: list[dict[str, Any]] = []  # CFEE activities, listed once their day ends
        self.auto_fill = True
        self.illiquid: set[str] = set()
        self.fill_step: float | None = None
        self.trading_requests = 0  # trading API requests so far: the clock of asynchronous cancels
        self.cancel_latency = 2
        self.on_cancel: Any = None  # (order) -> None, called as a cancel request is accepted
        self.stop_fires_on_cancel = False
        self.stop_replacement = False
        self.calculated_now = False
        self.shorting_enabled = True
        self.flip_refused = False
        self.trading_blocked = False
        self.trade_suspended_by_user = False
        self.account_blocked = False
        self._fail_next: list[tuple[str, str, int]] = []
        self.crypto_day_tz = "America/Chicago"
        self.same_ms_reversed = False
        self.rate_limit = 200  # trading API, requests a minute
        self.data_rate_limit = 200  # market data API (free plan), requests a minute
        self._windows: dict[str, tuple[int, int]] = {}  # api -> (window start epoch, count)
        self.stream: Any = None  # a FakeTradingStream, when a test starts one
        self.fail_after_accept: list[int | str] = []
        self.fail_before_accept: list[int] = []
        self.hang_seconds = 0.0
        self.hang_all = 0.0
        self.hung = 0  # requests that hung (hang_all) so far
        self.data_outage = False
        self.read_failures = 0
        self._server: ThreadingHTTPServer | None = None

    # ----------------------------------------------------------------- lifecycle
    def start(self) -> FakeAlpaca:
        fake = self

        class Handler(_Handler):
            server_state = fake
            disable_nagle_algorithm = not fake.nagle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self.stream is not None:
            self.stream.stop()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeAlpaca:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Bare origin, the form alpaca-py's REST ``url_override`` wants."""
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # ----------------------------------------------------------------- test helpers
    def set_bars(self, symbol: str, bars: Any) -> None:
        """``bars``: a tradebot ``Bars`` or a list of (time_ns, o, h, l, c, v)."""
        if hasattr(bars, "time"):
            columns = (getattr(bars, c) for c in ("open", "high", "low", "close", "volume"))
            rows = list(zip((int(t) for t in bars.time), *(map(float, c) for c in columns), strict=True))
        else:
            rows = [tuple(r) for r in bars]
        with self.lock:
            self.bars[symbol] = sorted(rows)  # type: ignore[arg-type]
            self.bars_version += 1

    def add_split(self, symbol: str, ex_date: date, ratio: float) -> None:
        """A ``ratio``-for-1 split of ``symbol`` effective ``ex_date`` (the rows set stay as traded:
        ``adjustment=split`` divides the prices before it, marketdata.py)."""
        with self.lock:
            self.splits.setdefault(symbol, []).append((ex_date, ratio))
            self.bars_version += 1

    def add_position(self, symbol: str, qty: float, avg_price: float, current: float | None = None) -> None:
        with self.lock:
            self.positions[symbol] = FakePosition(symbol, qty, avg_price, current)

    def set_asset(self, symbol: str, **fields: Any) -> None:
        with self.lock:
            self.assets.setdefault(symbol, {}).update(fields)

    def asset(self, symbol: str) -> dict[str, Any]:
        crypto = "/" in symbol
        asset = {
            "id": str(uuid.uuid5(uuid.NAMESPACE_DNS, symbol)),
            "class": "crypto" if crypto else "us_equity",
            "exchange": "CRYPTO" if crypto else "NASDAQ",
            "symbol": symbol,
            "name": symbol,
            "status": "active",
            "tradable": True,
            "marginable": not crypto,
            "shortable": not crypto,
            "easy_to_borrow": not crypto,
            "fractionable": True,
            # the BTC/USD pair object of docs.alpaca.markets "Crypto Spot Trading"
            "min_order_size": "0.0001" if crypto else None,
            "min_trade_increment": "0.0001" if crypto else None,
            "price_increment": "1" if crypto else "0.01",
        }
        asset.update(self.assets.get(symbol, {}))
        return asset

    def wait_for(self, condition: Any, timeout: float = 10.0, what: str = "condition") -> Any:
        """Poll ``condition()`` until it is truthy; its value. AssertionError after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while not (result := condition()):
            if time.monotonic() > deadline:
                raise AssertionError(f"fake Alpaca: {what} not seen within {timeout} s")
            time.sleep(0.02)
        return result

    def requests_to(self, method: str, path: str) -> list[Recorded]:
        with self.lock:
            return [r for r in self.requests if r.method == method and r.path == path]

    def order(self, client_order_id: str) -> FakeOrder:
        with self.lock:
            for order in self.all_orders():
                if order.client_order_id == client_order_id:
                    return order
        raise KeyError(client_order_id)

    def top_orders(self) -> list[FakeOrder]:
        with self.lock:
            return list(self.orders)

    def all_orders(self) -> list[FakeOrder]:
        out: list[FakeOrder] = []
        for order in self.orders:
            out.append(order)
            out.extend(order.legs)
        return out

    def fill(self, client_order_id: str, price: float | None = None, qty: float | None = None) -> FakeOrder:
        """One execution (all that remains, or ``qty``) of an order; position, cash, activity, stream.
        A bracket's or OCO's stop leg fires as ``trigger_stop`` says (the order that filled is returned)."""
        with self.lock:
            order = self.order(client_order_id)
            if not can_execute(order):
                raise AssertionError(f"order {client_order_id} is {order.status}: it cannot fill")
            if order.is_stop and order.parent is not None and qty is None:
                return trading.trigger_stop(self, order, price)
            self.execute(order, price, qty)
            return order

    def trigger_stop(self, symbol: str, price: float | None = None) -> FakeOrder:
        """The market falls through ``symbol``'s stop: the one stop order that can fire does."""
        with self.lock:
            stops = [o for o in self.all_orders() if o.symbol == symbol and o.is_stop and can_execute(o)]
            if len(stops) != 1:
                raise AssertionError(f"{len(stops)} stops can fire on {symbol}")
            if stops[0].parent is None:
                self.execute(stops[0], price if price is not None else stops[0].stop_price, None)
                return stops[0]
            return trading.trigger_stop(self, stops[0], price)

    def settle(self, count: int | None = None) -> None:
        """Complete the pending cancels due by request ``count`` (all of them when None)."""
        with self.lock:
            trading.settle_cancels(self, count)

    def hold_replace(self, client_order_id: str) -> None:
        """The order is being replaced (``pending_replace``) until ``end_replace``: cancels are refused."""
        with self.lock:
            order = self.order(client_order_id)
            order.before_replace, order.status = order.status, "pending_replace"

    def end_replace(self, client_order_id: str) -> None:
        with self.lock:
            order = self.order(client_order_id)
            order.status = order.before_replace

    def fail_next(self, method: str, path: str, status: int) -> None:
        """The next ``method`` request to a path starting with ``path`` answers ``status``."""
        with self.lock:
            self._fail_next.append((method, path, status))

    def scripted(self, method: str, path: str) -> int | None:
        """The status ``fail_next`` set for this request, once (None: answer it as usual)."""
        for i, (m, prefix, status) in enumerate(self._fail_next):
            if m == method and path.startswith(prefix):
                del self._fail_next[i]
                return status
        return None

    def trade(self) -> list[FakeOrder]:
        """Time passes on the exchange: the next ``fill_step`` of every auto-filled market order
        still partly open executes (at ``prices``). Returns the orders that traded."""
        with self.lock:
            traded = [o for o in self.all_orders() if o.type == "market" and o.status == "partially_filled"]
            for order in traded:
                self.execute(order, None, self.fill_step)
            return traded

    def add_activity(self, row: dict[str, Any]) -> None:
        with self.lock:
            (self._unposted if self.activities_held else self.activities).append(row)

    def post_activities(self) -> None:
        """List the executions held back by ``activities_held`` (and stop holding them)."""
        with self.lock:
            self.activities.extend(self._unposted)
            self._unposted, self.activities_held = [], False

    def cancel(self, client_order_id: str) -> None:
        """The trader cancels an order in Alpaca's dashboard (its group goes with it), a while ago."""
        with self.lock:
            trading.cancel_order(self, self.order(client_order_id).id)
            trading.settle_cancels(self, None)

    def execute(self, order: FakeOrder, price: float | None, qty: float | None) -> None:
        trading.run_execution(self, order, price, qty)

    def market_open(self) -> bool:
        return market_clock(self.clock.now())[0]

    def set_time(self, when: datetime) -> None:
        """Move the market clock; with ``auto_fill``, stock orders that waited for the open fill."""
        with self.lock:
            self.clock.set(when)
            if self.auto_fill and self.market_open():
                for order in list(self.orders):
                    if order.status == "accepted" and order.type == "market":
                        order.status = "new"
                        self.execute(order, None, self.fill_step)

    def last_price(self, symbol: str) -> float:
        if symbol in self.prices:
            return self.prices[symbol]
        rows = self.bars.get(symbol)
        if rows:
            return rows[-1][4]
        position = self.positions.get(symbol)
        if position is not None:
            return position.current_price or position.avg_entry_price
        return 100.0

    def emit(self, event: str, order: FakeOrder, **execution: float) -> None:
        if self.stream is not None:
            self.stream.publish(event, order, self.clock.now(), **execution)

    # ----------------------------------------------------------------- API
    def limits(self, api: str) -> tuple[int, int, int]:
        """(limit, remaining, reset epoch) of ``api``'s current one-minute window, counting this request."""
        now = int(time.time())
        start = now - now % 60
        window, count = self._windows.get(api, (start, 0))
        if window != start:
            window, count = start, 0
        count += 1
        self._windows[api] = (window, count)
        limit = self.data_rate_limit if api == "data" else self.rate_limit
        return limit, max(limit - count, 0), window + 60

    def handle(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int | str, Any]:
        if path.startswith(("/v2/stocks/", "/v1beta3/crypto/")):
            if self.data_outage:
                return 503, {"message": "service unavailable"}
            return self._data(path, query)
        with self.lock:
            self.trading_requests += 1
            trading.settle_cancels(self, self.trading_requests)
            if method == "GET" and self.read_failures > 0:
                self.read_failures -= 1
                return 503, {"code": 50300000, "message": "service unavailable"}
            return self._trading(method, path, query, body)

    def _trading(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int | str, Any]:
        if path == "/v2/account" and method == "GET":
            return 200, self._account()
        if path == "/v2/clock" and method == "GET":
            now = self.clock.now()
            is_open, next_open, next_close = market_clock(now)
            return 200, {
                "timestamp": iso(now),
                "is_open": is_open,
                "next_open": iso(next_open),
                "next_close": iso(next_close),
            }
        if path.startswith("/v2/assets/") and method == "GET":
            return crypto.asset_answer(self, unquote(path[len("/v2/assets/") :]))
        if path == "/v2/orders" and method == "POST":
            return self._submit(body)
        if path == "/v2/orders" and method == "GET":
            return trading.list_orders(self, query)
        now = self.clock.now()
        if path == "/v2/orders:by_client_order_id" and method == "GET":
            wanted = query.get("client_order_id", "")
            for order in self.all_orders():
                if order.client_order_id == wanted:  # no ``nested`` here: legs only through the id
                    return 200, order.to_json(False, now, self.calculated_now)
            return 404, {"code": 40410000, "message": "order not found for " + wanted}
        if path.startswith("/v2/orders/") and method == "GET":
            order_id = path.rsplit("/", 1)[1]
            nested = query.get("nested", "false").lower() == "true"
            for order in self.all_orders():
                if order.id == order_id:
                    return 200, order.to_json(nested, now, self.calculated_now)
            return 404, {"code": 40410000, "message": "order not found"}
        if path.startswith("/v2/orders/") and method == "DELETE":
            return trading.cancel_order(self, path.rsplit("/", 1)[1])
        if path == "/v2/positions" and method == "GET":
            out = []
            for position in self.positions.values():
                position.qty_available = trading.qty_available(self, position.symbol)
                out.append(position.to_json())
            return 200, out
        if path == "/v2/account/activities/FILL" and method == "GET":
            return 200, self._activities(query)
        if method == "GET" and (
            path == "/v2/account/activities/CFEE"
            or (path == "/v2/account/activities" and query.get("activity_types") == "CFEE")
        ):
            return 200, crypto.fee_activities(self)
        return 404, {"code": 40410000, "message": f"endpoint not found: {method} {path}"}

    def _account(self) -> dict[str, Any]:
        equity = self.cash + sum(p.qty * self.last_price(s) for s, p in self.positions.items())
        short = sum(p.qty * self.last_price(s) for s, p in self.positions.items() if p.qty < 0)
        cash = max(self.cash, 0.0)
        return {
            "id": ACCOUNT_ID,
            "account_number": "PA000FAKE",
            "status": "ACTIVE",
            "crypto_status": "ACTIVE",
            "currency": "USD",
            "buying_power": num(cash * float(self.multiplier)),
            "regt_buying_power": num(cash),
            "non_marginable_buying_power": num(crypto.non_marginable_buying_power(self)),
            "cash": num(self.cash),
            "portfolio_value": num(equity),
            "equity": num(equity),
            "last_equity": num(equity),
            "long_market_value": num(equity - self.cash - short),
            "short_market_value": num(short),
            "multiplier": self.multiplier,
            "trading_blocked": self.trading_blocked,
            "transfers_blocked": False,
            "account_blocked": self.account_blocked,
            "trade_suspended_by_user": self.trade_suspended_by_user,
            "shorting_enabled": self.shorting_enabled,
            "created_at": "2024-01-01T00:00:00Z",
        }

    def _submit(self, body: dict[str, Any]) -> tuple[int | str, Any]:
        if self.fail_before_accept:
            return self.fail_before_accept.pop(0), {"code": 50000000, "message": "internal server error"}
        status, answer = trading.submit(self, body)
        if status != 200:
            return status, answer
        if self.hang_seconds:  # accepted, then no answer in time: the caller's timeout fires
            self.lock.release()
            try:
                time.sleep(self.hang_seconds)
            finally:
                self.lock.acquire()
        if self.fail_after_accept:
            return self.fail_after_accept.pop(0), {"code": 50000000, "message": "internal server error"}
        return 200, answer

    def _activities(self, query: dict[str, str]) -> list[dict[str, Any]]:
        after = _parse_time(query["after"]) if query.get("after") else None
        rows = [a for a in self.activities if after is None or _parse_time(a["transaction_time"]) > after]
        if self.same_ms_reversed:
            rows = sorted(rows, key=lambda a: a["id"].split("::")[0])  # stable: executions in order...
            groups: dict[str, list[dict[str, Any]]] = {}
            for row in rows:
                groups.setdefault(row["id"].split("::")[0], []).append(row)
            rows = [r for stamp in sorted(groups) for r in reversed(groups[stamp])]
        else:
            rows = sorted(rows, key=lambda a: a["id"])
        if query.get("direction", "desc") == "desc":
            rows = rows[::-1]
        if query.get("page_token"):
            ids = [a["id"] for a in rows]
            if query["page_token"] in ids:
                rows = rows[ids.index(query["page_token"]) + 1 :]
        return rows[: min(int(query.get("page_size", "100")), 100)]

    def _data(self, path: str, query: dict[str, str]) -> tuple[int, Any]:
        return marketdata.answer(self, path, query)


def _parse_time(text: str) -> datetime:
    when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


class _Handler(BaseHTTPRequestHandler):
    server_state: FakeAlpaca
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _serve(self, method: str) -> None:
        fake = self.server_state
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        record = Recorded(method, parts.path, query, body, at=time.monotonic())
        with fake.lock:
            fake.requests.append(record)
            api = "data" if parts.path.startswith(("/v2/stocks/", "/v1beta3/")) else "trading"
            limit, remaining, reset = fake.limits(api)
            hang = fake.hang_all
            fake.hung += 1 if hang else 0
            scripted = fake.scripted(method, parts.path)
        if hang:
            time.sleep(hang)
        status: int | str
        if (self.headers.get("APCA-API-KEY-ID"), self.headers.get("APCA-API-SECRET-KEY")) != fake.keys:
            status, payload = 401, {"code": 40110000, "message": "request is not authorized"}
        elif scripted is not None:
            status, payload = scripted, {"code": scripted * 100000, "message": f"scripted HTTP {scripted}"}
            if scripted == 429:
                payload["message"] = "rate limit exceeded"
                remaining, reset = 0, int(time.time()) + 1
        elif remaining <= 0 and fake._windows[api][1] > limit:
            status, payload = 429, {"code": 42910000, "message": "rate limit exceeded"}
        else:
            status, payload = fake.handle(method, parts.path, query, body)
        if status == "drop":
            record.status = -1
            self.close_connection = True
            self.connection.shutdown(2)
            return
        assert isinstance(status, int)
        record.status = status
        data = b"" if payload is None else json.dumps(payload).encode()
        try:
            self._answer(status, data, limit, remaining, reset)
        except ConnectionError:  # the client gave up waiting (its timeout): nobody to answer
            self.close_connection = True

    def _answer(self, status: int, data: bytes, limit: int, remaining: int, reset: int) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-RateLimit-Limit", str(limit))
        self.send_header("X-RateLimit-Remaining", str(remaining))
        self.send_header("X-RateLimit-Reset", str(reset))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def do_PATCH(self) -> None:
        self._serve("PATCH")


__all__ = ["FakeAlpaca", "FakeOrder", "FakePosition", "Recorded", "compact"]
