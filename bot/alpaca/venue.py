"""Alpaca's trading API as the broker and its protection read and write it.

- **Reads** retry through ``bot.retry`` on 429, 5xx and transport errors, waiting for
  ``X-RateLimit-Reset`` on a 429, within the cycle's stall budget. A few are cached briefly (the
  clock, the account and its flags, assets, latest prices); ``forget`` drops one after an action.
- **One submit, sent once** (``submit_raw``): a 422 "client_order_id must be unique" means the
  order is there (None is returned); a 5xx, a timeout or a dropped connection means "unknown": the
  order is looked up by client id, and only when Alpaca has none is ``BrokerError(retriable=True)``
  raised.
- **The truth about orders** (``orders_since``): ``status=all&nested=true``, so a bracket's legs come
  under their parent whatever their status; a stop leg waits in ``held`` after its entry filled
  and ``status=open`` never lists it (alpaca-py#198; alpaca-trade-api-js#80, #87;
  alpaca-trade-api-python#322). ``order(..., nested=True)`` reads one order with its legs.
- **The order memory**: every order seen, by id (client id, symbol, why it exits), for the fills,
  and the ids still open, for the sync.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any, Protocol, TypeVar

import requests
from alpaca.common.enums import Sort
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import QueryOrderStatus
from alpaca.trading.requests import GetOrderByIdRequest, GetOrdersRequest

from bot.alpaca import convert, rules
from bot.alpaca.convert import as_float, is_open, symbol_of
from bot.alpaca.http import AlpacaHttp, NotSent, api_message, auth_message, describe, is_transient, status_of
from bot.brokers.base import AuthenticationError, BrokerError, OrderRejected
from bot.domain import ExitReason
from bot.domain import is_crypto as crypto_symbol
from bot.retry import RetryPolicy

log = logging.getLogger(__name__)

T = TypeVar("T")

READS = RetryPolicy(attempts=4, base=0.5, cap=4.0, budget=15.0)
PAGE = 500  # GET /v2/orders answers at most 500 orders (orders.yaml, ``limit``)


class LatestPrices(Protocol):
    """Latest trade prices, from the market data API (``AlpacaBarSource`` implements it)."""

    def latest_prices(self, symbols: list[str]) -> dict[str, float]: ...


@dataclass(frozen=True, slots=True)
class AccountFlags:
    """The account's trading flags (alpaca-docs ``account-v2.yaml``)."""

    trading_blocked: bool = False
    account_blocked: bool = False
    trade_suspended_by_user: bool = False
    shorting_enabled: bool = False

    @classmethod
    def of(cls, raw: Any) -> AccountFlags:
        return cls(
            trading_blocked=bool(getattr(raw, "trading_blocked", False)),
            account_blocked=bool(getattr(raw, "account_blocked", False)),
            trade_suspended_by_user=bool(getattr(raw, "trade_suspended_by_user", False)),
            shorting_enabled=bool(getattr(raw, "shorting_enabled", False)),
        )

    @property
    def refusal(self) -> str | None:
        """Why Alpaca takes no order now ("the account is not allowed to place orders"); None: it does."""
        set_flags = [
            name
            for name in ("trading_blocked", "account_blocked", "trade_suspended_by_user")
            if getattr(self, name)
        ]
        if not set_flags:
            return None
        return f"the Alpaca account takes no orders ({', '.join(set_flags)})"

    def describe(self) -> str:
        """One line for the start-up banner and ``tradebot doctor``."""
        trading = self.refusal or "orders allowed"
        shorting = (
            "shorting enabled (a sell beyond the position would open a short)"
            if self.shorting_enabled
            else ("shorting disabled")
        )
        return f"{trading}; {shorting}"


class AlpacaVenue:
    def __init__(
        self,
        client: TradingClient,
        *,
        paper: bool,
        http: AlpacaHttp | None = None,
        prices: LatestPrices | None = None,
        policy: RetryPolicy = READS,
        ttl: dict[str, float] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.paper = paper
        self.http = http or AlpacaHttp(sleep=sleep)
        self.prices = prices
        self.policy = policy
        self.ttl = {"clock": 30.0, "account": 3.0, "asset": 3600.0, "price": 2.0} | (ttl or {})
        self.sleep = sleep
        self._cache: dict[str, tuple[float, Any]] = {}
        self.state = threading.Lock()  # the trading stream remembers orders while a sync runs
        self.info: dict[str, tuple[str, str, ExitReason | None]] = {}  # order id -> (coid, symbol, reason)
        self.tracked_open: set[str] = set()

    # ------------------------------------------------------------------ plumbing
    def read(self, what: str, call: Callable[[], T], *, auth_on_403: bool = False) -> T:
        try:
            return self.policy.call(
                call,
                retry_if=is_transient,
                hint=self.http.wait_hint,
                sleep=self.http.sleep,
                what=f"Alpaca {what}",
            )
        except (APIError, requests.RequestException) as exc:
            status = status_of(exc)
            if status == 401 or (status == 403 and auth_on_403):
                raise AuthenticationError(auth_message(status, self.paper)) from None
            if status == 404:
                raise
            raise BrokerError(f"Alpaca {what} failed: {describe(exc)}", retriable=is_transient(exc)) from None

    def cached(self, key: str, ttl: str, load: Callable[[], T]) -> T:
        hit = self._cache.get(key)
        if hit is None or time.monotonic() - hit[0] > self.ttl[ttl]:
            hit = self._cache[key] = (time.monotonic(), load())
        return hit[1]

    def forget(self, key: str) -> None:
        self._cache.pop(key, None)

    def clear(self) -> None:
        self._cache.clear()

    # ------------------------------------------------------------------ orders
    def find(self, client_order_id: str) -> Any | None:
        try:
            raw = self.read("order lookup", lambda: self.client.get_order_by_client_id(client_order_id))
        except APIError:  # 404: no such order
            return None
        self.remember(raw)
        return raw

    def order(self, order_id: str, *, nested: bool = False) -> Any:
        """One order by Alpaca's id; with ``nested``, its legs under ``legs`` (held ones included)."""
        request = GetOrderByIdRequest(nested=True) if nested else None
        try:
            raw = self.read("order", lambda: self.client.get_order_by_id(order_id, request))
        except APIError as exc:
            raise BrokerError(f"Alpaca order {order_id}: {describe(exc)}") from None
        self.remember(raw)
        return raw

    def remember(self, raw: Any) -> None:
        for order in convert.flatten([raw]):
            reason = convert.exit_reason_of(order)
            with self.state:
                if reason is None and order.replaces is not None:  # a replacement exits as its original
                    reason = self.info.get(str(order.replaces), ("", "", None))[2]
                self.info[str(order.id)] = (str(order.client_order_id), symbol_of(order), reason)
                if is_open(order) and str(getattr(order.status, "value", order.status)) != "held":
                    self.tracked_open.add(str(order.id))  # a held leg's fill comes as an activity

    def working(self, symbol: str | None = None) -> list[Any]:
        """Every open order, legs included, each judged by its own status (``nested=false`` lists
        each order of a group on its own: orders.md, "Bracket Orders"). A held stop is not among
        them: ``orders_since`` reads it."""
        request = GetOrdersRequest(
            status=QueryOrderStatus.OPEN, nested=False, limit=PAGE, symbols=[symbol] if symbol else None
        )
        orders = self.read("open orders", lambda: self.client.get_orders(request))
        working = [o for o in convert.flatten(orders) if is_open(o)]
        for order in working:
            self.remember(order)
        return working

    def orders_since(self, after: datetime, symbols: list[str] | None = None) -> list[Any]:
        """Every order submitted after ``after``, whatever its status, legs with their parents
        (``status=all&nested=true``), flattened, each once; page by page (``until``) past 500."""
        out: list[Any] = []
        until: datetime | None = None
        while True:
            request = GetOrdersRequest(
                status=QueryOrderStatus.ALL,
                nested=True,
                limit=PAGE,
                after=after,
                until=until,
                direction=Sort.DESC,
                symbols=symbols,
            )
            page: list[Any] = list(self._page(request))
            out.extend(page)
            if len(page) < PAGE:
                break
            oldest = min(o.submitted_at or o.created_at for o in page)
            if until is not None and oldest >= until:
                break  # 500 orders in one instant: nothing older can be reached this way
            until = oldest
        flat = convert.flatten(out)
        for order in flat:
            self.remember(order)
        return flat

    def _page(self, request: GetOrdersRequest) -> list[Any]:
        return list(self.read("orders", lambda: self.client.get_orders(request)))

    def submit_raw(self, request: Any) -> Any | None:
        """Send one order. None when Alpaca already has its client id (422 "unique")."""
        coid = str(request.client_order_id)
        try:
            raw = self.client.submit_order(request)
        except APIError as exc:
            status, message = exc.status_code, api_message(exc)
            if status == 422 and "client_order_id" in message and "unique" in message:
                return None
            if status == 401:
                raise AuthenticationError(auth_message(status, self.paper)) from None
            if status == 429:  # rate limited: refused before it was processed, so not placed
                raise BrokerError(
                    f"order {coid} not placed: Alpaca's rate limit is spent", retriable=True
                ) from None
            if status is not None and 400 <= status < 500:
                raise OrderRejected(f"Alpaca refused {coid}: {message}") from None
            return self._after_failure(coid, f"submit answered HTTP {status}: {message}")
        except NotSent as exc:
            raise BrokerError(f"order {coid} not sent: {exc}", retriable=True) from None
        except Exception as exc:  # transport, or an answer the SDK could not parse: it may exist
            return self._after_failure(coid, f"submit failed: {describe(exc)}")
        self.forget("account")
        self.remember(raw)
        return raw

    def _after_failure(self, coid: str, why: str) -> Any:
        try:
            raw = self.find(coid)
        except BrokerError as exc:
            raise BrokerError(
                f"{why}; whether order {coid} exists is unknown ({exc})", retriable=True
            ) from None
        if raw is None:
            raise BrokerError(f"{why}; Alpaca has no order {coid}", retriable=True)
        log.warning("%s: order %s exists at Alpaca, treated as placed", why, coid)
        return raw

    def cancel_raw(self, order: Any, what: str) -> str:
        """Ask Alpaca to cancel ``order`` (it answers 204 and cancels asynchronously, with the rest
        of its group). Returns "" when asked, or why it was not: "gone" (404), "not cancelable"
        (422: final already, or ``pending_replace``, which "will reject cancel request"). Raises
        ``BrokerError`` (retriable) on 429, 5xx and transport failures: it may not have arrived."""
        try:
            self.client.cancel_order_by_id(order.id)
        except APIError as exc:
            if exc.status_code == 404:
                return "gone"
            if exc.status_code == 422:
                return "not cancelable"
            raise BrokerError(f"cannot cancel {what}: {describe(exc)}", retriable=True) from None
        except requests.RequestException as exc:
            raise BrokerError(f"cannot cancel {what}: {describe(exc)}", retriable=True) from None
        return ""

    # ------------------------------------------------------------------ the account and positions
    def raw_account(self) -> Any:
        return self.cached(
            "account", "account", lambda: self.read("account", self.client.get_account, auth_on_403=True)
        )

    def flags(self) -> AccountFlags:
        """The account's trading flags, from the briefly cached account."""
        return AccountFlags.of(self.raw_account())

    def position_rows(self) -> list[Any]:
        return list(self.read("positions", self.client.get_all_positions))

    def held(self, symbol: str) -> float:
        """What Alpaca holds of ``symbol`` now, signed: a short is negative."""
        return next((signed_qty(r) for r in self.position_rows() if symbol_of(r) == symbol), 0.0)

    # ------------------------------------------------------------------ assets, clock, prices
    def clock(self) -> Any:
        return self.cached("clock", "clock", lambda: self.read("clock", self.client.get_clock))

    def asset(self, symbol: str) -> Any:
        """The asset (cached), whichever name Alpaca answers a crypto pair under."""

        def load() -> Any:
            for name in convert.asset_names(symbol):
                try:
                    found = self.read("asset", partial(self.client.get_asset, name))
                except APIError:  # 404
                    continue
                if convert.asset_is(found, symbol):
                    return found
            raise OrderRejected(f"Alpaca does not know the symbol {symbol}")

        return self.cached(f"asset:{symbol}", "asset", load)

    def grid(self, symbol: str, price: float) -> float:
        crypto = crypto_symbol(symbol)
        increment = as_float(self.asset(symbol).price_increment) if crypto else None
        return rules.round_price(price, rules.price_step(price, crypto=crypto, increment=increment))

    def step(self, symbol: str) -> tuple[float, float]:
        """A crypto pair's (quantity increment, smallest order), from its asset."""
        asset = self.asset(symbol)
        step = as_float(asset.min_trade_increment) or 10.0**-rules.QTY_DECIMALS
        return step, as_float(asset.min_order_size) or step

    def price(self, symbol: str) -> float | None:
        prices = self.prices
        if prices is None:
            return None
        try:
            return self.cached(f"price:{symbol}", "price", lambda: prices.latest_prices([symbol]).get(symbol))
        except Exception as exc:  # a price is a nicety for marking; its absence is reported as None
            log.warning("latest price for %s unavailable: %s", symbol, exc)
            return None

    def now(self) -> datetime:
        """Alpaca's time (its clock's ``timestamp``, cached like the clock): order windows are
        measured on the broker's clock, not this machine's."""
        try:
            stamp = self.clock().timestamp
        except BrokerError:
            return datetime.now(UTC)
        return stamp if isinstance(stamp, datetime) else datetime.now(UTC)


def signed_qty(row: Any) -> float:
    """A position row's quantity, negative for a short (whichever sign Alpaca's ``qty`` carries)."""
    qty = as_float(row.qty) or 0.0
    return -abs(qty) if str(getattr(row.side, "value", row.side)) == "short" else qty
