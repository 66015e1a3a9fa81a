"""A small fake of Alpaca's trading and market-data REST APIs, for tests and benchmarks.

It listens on 127.0.0.1 on a free port in a background thread and speaks enough of the real
wire format that alpaca-py's own clients parse its answers (point them at ``fake.url`` through
``url_override``). Every request is recorded in ``fake.requests`` so tests can assert on them.

Switches inject the failures tradebot must survive:

- ``fail_after_accept``: the next N order submits are stored, then answered with a status
  (500, 502, 504...) or, with status ``"drop"``, by closing the connection without an answer.
- ``fail_before_accept``: the next N submits are answered with a status and not stored.
- ``hang_seconds``: an order submit is stored, then answered only after that long (timeouts).
- ``data_outage``: the data endpoints answer 503.
- ``read_failures``: the next N GETs on the trading API answer 503 (reads retried with backoff).
- ``keys``: the accepted key pair; anything else gets 401, as Alpaca does for wrong keys.

Orders fill only when a test says so (``fill``), or immediately when ``auto_fill`` is on (market
orders fill at ``prices[symbol]``, else at the last served bar's close).
"""

from __future__ import annotations

import json
import math
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

ACCOUNT_ID = "a1b2c3d4-0000-4000-8000-000000000001"


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _bar_iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(text: str) -> datetime:
    text = text.strip().replace("Z", "+00:00")
    when = datetime.fromisoformat(text)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _num(value: float | None) -> str | None:
    if value is None:
        return None
    return f"{value:.9f}".rstrip("0").rstrip(".") if not float(value).is_integer() else str(int(value))


def _compact(symbol: str) -> str:
    return symbol.replace("/", "")


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    status: int = 0


@dataclass
class FakeOrder:
    id: str
    client_order_id: str
    symbol: str
    side: str
    qty: float
    type: str
    time_in_force: str
    order_class: str = "simple"
    limit_price: float | None = None
    stop_price: float | None = None
    status: str = "new"
    filled_qty: float = 0.0
    filled_avg_price: float | None = None
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    updated_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    filled_at: datetime | None = None
    canceled_at: datetime | None = None
    legs: list[FakeOrder] = field(default_factory=list)
    parent: FakeOrder | None = None

    @property
    def is_crypto(self) -> bool:
        return "/" in self.symbol

    @property
    def is_open(self) -> bool:
        return self.status in {"new", "accepted", "pending_new", "partially_filled", "held", "pending_cancel"}

    def to_json(self, nested: bool = True) -> dict[str, Any]:
        created = _iso(self.created_at)
        data = {
            "id": self.id,
            "client_order_id": self.client_order_id,
            "created_at": created,
            "updated_at": _iso(self.updated_at),
            "submitted_at": created,
            "filled_at": _iso(self.filled_at) if self.filled_at else None,
            "expired_at": None,
            "canceled_at": _iso(self.canceled_at) if self.canceled_at else None,
            "failed_at": None,
            "replaced_at": None,
            "replaced_by": None,
            "replaces": None,
            "asset_id": str(uuid.uuid5(uuid.NAMESPACE_DNS, self.symbol)),
            "symbol": self.symbol,
            "asset_class": "crypto" if self.is_crypto else "us_equity",
            "notional": None,
            "qty": _num(self.qty),
            "filled_qty": _num(self.filled_qty),
            "filled_avg_price": _num(self.filled_avg_price),
            "order_class": self.order_class,
            "order_type": self.type,
            "type": self.type,
            "side": self.side,
            "time_in_force": self.time_in_force,
            "limit_price": _num(self.limit_price),
            "stop_price": _num(self.stop_price),
            "status": self.status,
            "extended_hours": False,
            "legs": [leg.to_json() for leg in self.legs] if (nested and self.legs) else None,
            "trail_percent": None,
            "trail_price": None,
            "hwm": None,
            "position_intent": None,
        }
        return data


@dataclass
class FakePosition:
    symbol: str
    qty: float
    avg_entry_price: float
    current_price: float | None = None

    def to_json(self) -> dict[str, Any]:
        crypto = "/" in self.symbol
        price = self.current_price if self.current_price is not None else self.avg_entry_price
        return {
            "asset_id": str(uuid.uuid5(uuid.NAMESPACE_DNS, self.symbol)),
            "symbol": _compact(self.symbol),  # Alpaca answers BTCUSD for crypto positions
            "exchange": "CRYPTO" if crypto else "NASDAQ",
            "asset_class": "crypto" if crypto else "us_equity",
            "asset_marginable": not crypto,
            "avg_entry_price": _num(self.avg_entry_price),
            "qty": _num(self.qty),
            "qty_available": _num(self.qty),
            "side": "long" if self.qty >= 0 else "short",
            "market_value": _num(self.qty * price),
            "cost_basis": _num(self.qty * self.avg_entry_price),
            "unrealized_pl": _num((price - self.avg_entry_price) * self.qty),
            "unrealized_plpc": "0",
            "unrealized_intraday_pl": "0",
            "unrealized_intraday_plpc": "0",
            "current_price": _num(price),
            "lastday_price": _num(price),
            "change_today": "0",
        }


class FakeAlpaca:
    """The fake server and its state. Use as a context manager or call ``start``/``stop``."""

    def __init__(
        self, *, key: str = "test-key", secret: str = "test-secret", page_size: int = 10_000
    ) -> None:
        self.keys = (key, secret)
        self.page_size = page_size  # data API page size (items across all symbols per page)
        self.lock = threading.RLock()
        self.requests: list[Recorded] = []
        self.orders: list[FakeOrder] = []
        self.positions: dict[str, FakePosition] = {}
        self.activities: list[dict[str, Any]] = []
        self.bars: dict[str, list[tuple[int, float, float, float, float, float]]] = {}
        self.prices: dict[str, float] = {}
        self.cash = 100_000.0
        self.pattern_day_trader = False
        self.daytrade_count = 0
        self.multiplier = "1"
        self.clock_open = True
        self.assets: dict[str, dict[str, Any]] = {}
        self.auto_fill = False
        # failure switches
        self.fail_after_accept: list[int | str] = []
        self.fail_before_accept: list[int] = []
        self.hang_seconds = 0.0
        self.data_outage = False
        self.read_failures = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------- lifecycle
    def start(self) -> FakeAlpaca:
        fake = self

        class Handler(_Handler):
            server_state = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-alpaca", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
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
            rows = list(
                zip(
                    (int(t) for t in bars.time),
                    *(map(float, getattr(bars, c)) for c in ("open", "high", "low", "close", "volume")),
                    strict=True,
                )
            )
        else:
            rows = [tuple(r) for r in bars]
        with self.lock:
            self.bars[symbol] = sorted(rows)

    def add_position(self, symbol: str, qty: float, avg_price: float, current: float | None = None) -> None:
        with self.lock:
            self.positions[symbol] = FakePosition(symbol, qty, avg_price, current)

    def set_asset(self, symbol: str, **fields: Any) -> None:
        with self.lock:
            self.assets.setdefault(symbol, {}).update(fields)

    def requests_to(self, method: str, path: str) -> list[Recorded]:
        with self.lock:
            return [r for r in self.requests if r.method == method and r.path == path]

    def order(self, client_order_id: str) -> FakeOrder:
        with self.lock:
            for order in self._all_orders():
                if order.client_order_id == client_order_id:
                    return order
        raise KeyError(client_order_id)

    def top_orders(self) -> list[FakeOrder]:
        with self.lock:
            return list(self.orders)

    def fill(self, client_order_id: str, price: float | None = None, qty: float | None = None) -> FakeOrder:
        """Fill (or partially fill) an order; updates the position and the FILL activities."""
        with self.lock:
            order = self.order(client_order_id)
            self._fill(order, price, qty)
            return order

    def _last_price(self, symbol: str) -> float:
        if symbol in self.prices:
            return self.prices[symbol]
        rows = self.bars.get(symbol)
        if rows:
            return rows[-1][4]
        position = self.positions.get(symbol)
        if position is not None:
            return position.current_price or position.avg_entry_price
        return 100.0

    def _fill(self, order: FakeOrder, price: float | None, qty: float | None) -> None:
        price = price if price is not None else (order.limit_price or self._last_price(order.symbol))
        remaining = order.qty - order.filled_qty
        qty = remaining if qty is None else min(qty, remaining)
        now = datetime.now(UTC)
        total = order.filled_qty + qty
        avg = ((order.filled_avg_price or 0.0) * order.filled_qty + price * qty) / total
        order.filled_qty, order.filled_avg_price = total, avg
        order.status = "filled" if math.isclose(total, order.qty) else "partially_filled"
        order.updated_at = now
        if order.status == "filled":
            order.filled_at = now
        signed = qty if order.side == "buy" else -qty
        position = self.positions.get(order.symbol)
        if position is None:
            self.positions[order.symbol] = FakePosition(order.symbol, signed, price)
        else:
            new_qty = position.qty + signed
            if abs(new_qty) < 1e-12:
                del self.positions[order.symbol]
            else:
                if (position.qty > 0) == (signed > 0):
                    position.avg_entry_price = (
                        position.avg_entry_price * position.qty + price * signed
                    ) / new_qty
                position.qty = new_qty
        self.cash -= signed * price
        stamp = now.strftime("%Y%m%d%H%M%S%f")[:-3]
        self.activities.append(
            {
                "id": f"{stamp}::{uuid.uuid4()}",
                "account_id": ACCOUNT_ID,
                "activity_type": "FILL",
                "transaction_time": _iso(now),
                "type": "fill" if order.status == "filled" else "partial_fill",
                "price": _num(price),
                "qty": _num(qty),
                "side": order.side,
                "symbol": order.symbol,
                "leaves_qty": _num(order.qty - total),
                "order_id": order.id,
                "cum_qty": _num(total),
                "order_status": order.status,
            }
        )
        if order.status == "filled":
            for leg in order.legs:
                if leg.status == "held":
                    leg.status = "new"
                    leg.updated_at = now
            if order.parent is not None:  # one leg filled: the other is canceled (OCO)
                for sibling in order.parent.legs:
                    if sibling is not order and sibling.is_open:
                        sibling.status, sibling.canceled_at, sibling.updated_at = "canceled", now, now

    def _all_orders(self) -> list[FakeOrder]:
        out: list[FakeOrder] = []
        for order in self.orders:
            out.append(order)
            out.extend(order.legs)
        return out

    # ----------------------------------------------------------------- API
    def handle(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int | str, Any]:
        if path.startswith("/v2/stocks/") or path.startswith("/v1beta3/crypto/"):
            if self.data_outage:
                return 503, {"message": "service unavailable"}
            return self._data(path, query)
        if method == "GET" and self.read_failures > 0:
            self.read_failures -= 1
            return 503, {"code": 50300000, "message": "service unavailable"}
        with self.lock:
            return self._trading(method, path, query, body)

    def _trading(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int | str, Any]:
        if path == "/v2/account" and method == "GET":
            equity = self.cash + sum(p.qty * self._last_price(s) for s, p in self.positions.items())
            return 200, {
                "id": ACCOUNT_ID,
                "account_number": "PA000FAKE",
                "status": "ACTIVE",
                "crypto_status": "ACTIVE",
                "currency": "USD",
                "buying_power": _num(max(self.cash, 0.0) * float(self.multiplier)),
                "regt_buying_power": _num(max(self.cash, 0.0)),
                "daytrading_buying_power": "0",
                "non_marginable_buying_power": _num(max(self.cash, 0.0)),
                "cash": _num(self.cash),
                "portfolio_value": _num(equity),
                "equity": _num(equity),
                "last_equity": _num(equity),
                "pattern_day_trader": self.pattern_day_trader,
                "daytrade_count": self.daytrade_count,
                "multiplier": self.multiplier,
                "trading_blocked": False,
                "transfers_blocked": False,
                "account_blocked": False,
                "trade_suspended_by_user": False,
                "shorting_enabled": False,
                "created_at": "2024-01-01T00:00:00Z",
            }
        if path == "/v2/clock" and method == "GET":
            now = datetime.now(UTC)
            return 200, {
                "timestamp": _iso(now),
                "is_open": self.clock_open,
                "next_open": "2099-01-02T14:30:00Z",
                "next_close": "2099-01-02T21:00:00Z",
            }
        if path.startswith("/v2/assets/") and method == "GET":
            symbol = path[len("/v2/assets/") :].replace("%2F", "/")
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
                "shortable": False,
                "easy_to_borrow": False,
                "fractionable": True,
                "min_order_size": "0.0001" if crypto else None,
                "min_trade_increment": "0.000000001" if crypto else None,
                "price_increment": "0.01",
            }
            asset.update(self.assets.get(symbol, {}))
            return 200, asset
        if path == "/v2/orders" and method == "POST":
            return self._submit(body)
        if path == "/v2/orders" and method == "GET":
            status = query.get("status", "open")
            nested = query.get("nested", "false").lower() == "true"
            limit = int(query.get("limit", "50"))
            symbols = set(query["symbols"].split(",")) if query.get("symbols") else None
            source = self.orders if nested else self._all_orders()
            picked = []
            for order in sorted(source, key=lambda o: o.created_at, reverse=True):
                family = [order, *order.legs] if nested else [order]
                is_open = any(o.is_open for o in family)
                if (status == "open" and not is_open) or (status == "closed" and is_open):
                    continue
                if symbols and order.symbol not in symbols:
                    continue
                picked.append(order.to_json(nested=nested))
            return 200, picked[:limit]
        if path == "/v2/orders:by_client_order_id" and method == "GET":
            wanted = query.get("client_order_id", "")
            for order in self._all_orders():
                if order.client_order_id == wanted:
                    return 200, order.to_json()
            return 404, {"code": 40410000, "message": "order not found for " + wanted}
        if path.startswith("/v2/orders/") and method == "GET":
            order_id = path.rsplit("/", 1)[1]
            for order in self._all_orders():
                if order.id == order_id:
                    return 200, order.to_json()
            return 404, {"code": 40410000, "message": "order not found"}
        if path.startswith("/v2/orders/") and method == "DELETE":
            order_id = path.rsplit("/", 1)[1]
            for order in self._all_orders():
                if order.id == order_id:
                    if not order.is_open:
                        return 422, {
                            "code": 42210000,
                            "message": f'order is already in "{order.status}" state',
                        }
                    now = datetime.now(UTC)
                    order.status, order.canceled_at, order.updated_at = "canceled", now, now
                    siblings = order.parent.legs if order.parent else order.legs
                    for other in siblings:
                        if other.is_open:
                            other.status, other.canceled_at, other.updated_at = "canceled", now, now
                    return 204, None
            return 404, {"code": 40410000, "message": "order not found"}
        if path == "/v2/orders" and method == "DELETE":
            out = []
            for order in self._all_orders():
                if order.is_open:
                    order.status = "canceled"
                    out.append({"id": order.id, "status": 200})
            return 207, out
        if path == "/v2/positions" and method == "GET":
            return 200, [p.to_json() for p in self.positions.values()]
        if path.startswith("/v2/positions/") and method == "DELETE":
            symbol = path[len("/v2/positions/") :]
            for key, position in list(self.positions.items()):
                if _compact(key) == _compact(symbol):
                    side = "sell" if position.qty > 0 else "buy"
                    order = self._new_order(str(uuid.uuid4()), key, side, abs(position.qty), "market", "gtc")
                    self.orders.append(order)
                    self._fill(order, None, None)
                    return 200, order.to_json()
            return 404, {"code": 40410000, "message": "position does not exist"}
        if path == "/v2/account/activities/FILL" and method == "GET":
            after = _parse_time(query["after"]) if query.get("after") else None
            rows = [a for a in self.activities if after is None or _parse_time(a["transaction_time"]) > after]
            if query.get("direction", "desc") == "desc":
                rows = rows[::-1]
            if query.get("page_token"):
                ids = [a["id"] for a in rows]
                if query["page_token"] in ids:
                    rows = rows[ids.index(query["page_token"]) + 1 :]
            size = int(query.get("page_size", "100"))
            return 200, rows[:size]
        return 404, {"code": 40410000, "message": f"endpoint not found: {method} {path}"}

    def _new_order(self, coid: str, symbol: str, side: str, qty: float, type_: str, tif: str) -> FakeOrder:
        return FakeOrder(str(uuid.uuid4()), coid, symbol, side, qty, type_, tif)

    def _submit(self, body: dict[str, Any]) -> tuple[int | str, Any]:
        if self.fail_before_accept:
            return self.fail_before_accept.pop(0), {"code": 50000000, "message": "internal server error"}
        coid = body.get("client_order_id") or str(uuid.uuid4())
        if len(coid) > 128:
            return 422, {"code": 40010001, "message": "client_order_id must be no more than 128 characters"}
        if any(o.client_order_id == coid for o in self._all_orders()):
            return 422, {"code": 40010001, "message": "client_order_id must be unique"}
        symbol = body["symbol"]
        crypto = "/" in symbol
        qty = float(body["qty"])
        type_ = body["type"]
        tif = body["time_in_force"]
        order_class = body.get("order_class", "simple") or "simple"
        if crypto and order_class != "simple":
            return 422, {
                "code": 42210000,
                "message": "crypto orders not allowed for advanced order_class: otoco",
            }
        if crypto and tif not in ("gtc", "ioc"):
            return 422, {"code": 42210000, "message": "invalid crypto time_in_force"}
        if order_class == "bracket" and not float(qty).is_integer():
            return 422, {"code": 42210000, "message": "fractional orders must be simple orders"}
        for price_key in ("limit_price", "stop_price"):
            if body.get(price_key) is not None:
                price = float(body[price_key])
                if price >= 1 and round(price, 2) != price:
                    return 422, {
                        "code": 42210000,
                        "message": "sub-penny increment does not fulfill minimum pricing criteria",
                    }
        order = self._new_order(coid, symbol, body["side"], qty, type_, tif)
        order.order_class = order_class
        order.limit_price = float(body["limit_price"]) if body.get("limit_price") else None
        order.stop_price = float(body["stop_price"]) if body.get("stop_price") else None
        order.status = "accepted" if crypto else "new"
        exit_side = "sell" if order.side == "buy" else "buy"
        if order_class == "bracket":
            take, stop = body.get("take_profit") or {}, body.get("stop_loss") or {}
            for price in (take.get("limit_price"), stop.get("stop_price"), stop.get("limit_price")):
                if price is not None and float(price) >= 1 and round(float(price), 2) != float(price):
                    return 422, {
                        "code": 42210000,
                        "message": "sub-penny increment does not fulfill minimum pricing criteria",
                    }
            tp = self._new_order(str(uuid.uuid4()), symbol, exit_side, qty, "limit", tif)
            tp.order_class, tp.limit_price, tp.status, tp.parent = (
                "bracket",
                float(take["limit_price"]),
                "held",
                order,
            )
            sl_type = "stop_limit" if stop.get("limit_price") else "stop"
            sl = self._new_order(str(uuid.uuid4()), symbol, exit_side, qty, sl_type, tif)
            sl.order_class, sl.stop_price, sl.status, sl.parent = (
                "bracket",
                float(stop["stop_price"]),
                "held",
                order,
            )
            sl.limit_price = float(stop["limit_price"]) if stop.get("limit_price") else None
            order.legs = [tp, sl]
        self.orders.append(order)
        if self.auto_fill and type_ == "market":
            self._fill(order, None, None)
        if self.hang_seconds:  # accepted, then no answer in time: the caller's timeout fires
            self.lock.release()
            try:
                time.sleep(self.hang_seconds)
            finally:
                self.lock.acquire()
        if self.fail_after_accept:
            return self.fail_after_accept.pop(0), {"code": 50000000, "message": "internal server error"}
        return 200, order.to_json()

    def _data(self, path: str, query: dict[str, str]) -> tuple[int, Any]:
        if path.endswith("/bars"):
            symbols = [s for s in query.get("symbols", "").split(",") if s]
            start = _parse_time(query["start"]) if query.get("start") else None
            end = _parse_time(query["end"]) if query.get("end") else None
            limit = min(int(query.get("limit") or self.page_size), self.page_size)
            offset = int(query.get("page_token") or 0)
            rows: list[tuple[str, tuple]] = []
            with self.lock:
                for symbol in sorted(symbols):
                    for row in self.bars.get(symbol, []):
                        when = datetime.fromtimestamp(row[0] / 1e9, tz=UTC)
                        if (start is None or when >= start) and (end is None or when <= end):
                            rows.append((symbol, row))
            page = rows[offset : offset + limit]
            out: dict[str, list[dict[str, Any]]] = {}
            for symbol, (t, o, h, low, c, v) in page:
                out.setdefault(symbol, []).append(
                    {"t": _bar_iso(t), "o": o, "h": h, "l": low, "c": c, "v": v, "n": 1, "vw": c}
                )
            token = str(offset + limit) if offset + limit < len(rows) else None
            return 200, {"bars": out, "next_page_token": token}
        if path.endswith(("/trades/latest", "/latest/trades")):
            symbols = [s for s in query.get("symbols", "").split(",") if s]
            with self.lock:
                trades = {
                    s: {
                        "t": _iso(datetime.now(UTC)),
                        "x": "V",
                        "p": self._last_price(s),
                        "s": 1,
                        "c": [],
                        "i": 1,
                        "z": "C",
                    }
                    for s in symbols
                    if s in self.bars or s in self.prices
                }
            return 200, {"trades": trades}
        return 404, {"message": "not found"}


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
        record = Recorded(method, parts.path, query, body)
        with fake.lock:
            fake.requests.append(record)
        if (self.headers.get("APCA-API-KEY-ID"), self.headers.get("APCA-API-SECRET-KEY")) != fake.keys:
            status: int | str = 401
            payload: Any = {"code": 40110000, "message": "request is not authorized"}
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
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
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
