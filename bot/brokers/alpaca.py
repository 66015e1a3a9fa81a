"""Alpaca broker: the ``Broker`` interface on alpaca-py's ``TradingClient``.

Every alpaca-py object is turned into a tradebot domain type inside this module.

Safety rules this adapter keeps, whatever the SDK does:

- **Never a duplicate order.** Every submit carries ``intent.client_order_id``. The SDK's own
  silent retries are switched off (it would resend a POST on 429/504); a 422 "client_order_id
  must be unique" means the order is already there and is returned as placed; a 5xx, a timeout
  or a dropped connection means "unknown": the order is looked up by client id first, and only
  when Alpaca has none is ``BrokerError(retriable=True)`` raised, so the service may send it again
  (with the same client id, which Alpaca would refuse to duplicate anyway).
- **Every request has a timeout** (alpaca-py has none by default); reads are retried with a
  bounded exponential backoff on 429, 5xx and transport errors.
- **Say why before Alpaca bounces an order**: opposite-side order open (wash trade), quantity
  below the asset's minimum, bracket on a fraction of a share, pattern-day-trader limits.
- **Protection**: stock entries carry the stop-loss and take-profit as a GTC bracket at Alpaca.
  Alpaca takes no brackets for crypto: after a crypto entry fills, a GTC stop-limit sell
  guards the stop at Alpaca (it keeps working while the bot is down); the take-profit is watched
  by ``sync`` against the latest trade price, which then cancels the stop and sells at market.
  An exit first cancels the protective orders on that symbol (they hold the quantity).
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

import requests
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderClass, QueryOrderStatus, TimeInForce
from alpaca.trading.enums import OrderSide as AlpacaSide
from alpaca.trading.enums import OrderStatus as AlpacaStatus
from alpaca.trading.enums import OrderType as AlpacaOrderType
from alpaca.trading.requests import (
    GetOrdersRequest,
    LimitOrderRequest,
    MarketOrderRequest,
    StopLimitOrderRequest,
    StopLossRequest,
    TakeProfitRequest,
)

from bot.brokers.base import AuthenticationError, BrokerError, BrokerUpdate, OrderRejected
from bot.domain import (
    Account,
    ExitReason,
    Fill,
    Order,
    OrderIntent,
    OrderStatus,
    OrderType,
    Position,
    Side,
    client_order_id,
    is_crypto,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_TIMEOUT = 10.0
PDT_EQUITY = 25_000.0
CRYPTO_QUOTES = ("USDT", "USDC", "USD", "BTC")
CRYPTO_STOP_LIMIT_SLIPPAGE = 0.01  # the crypto stop-limit's limit sits 1 % below its stop
QTY_DECIMALS = 9

_STATUS = {
    AlpacaStatus.NEW: OrderStatus.NEW,
    AlpacaStatus.PENDING_NEW: OrderStatus.NEW,
    AlpacaStatus.ACCEPTED: OrderStatus.ACCEPTED,
    AlpacaStatus.ACCEPTED_FOR_BIDDING: OrderStatus.ACCEPTED,
    AlpacaStatus.HELD: OrderStatus.ACCEPTED,
    AlpacaStatus.PENDING_REVIEW: OrderStatus.ACCEPTED,
    AlpacaStatus.PENDING_CANCEL: OrderStatus.ACCEPTED,
    AlpacaStatus.PENDING_REPLACE: OrderStatus.ACCEPTED,
    AlpacaStatus.DONE_FOR_DAY: OrderStatus.ACCEPTED,
    AlpacaStatus.STOPPED: OrderStatus.ACCEPTED,
    AlpacaStatus.SUSPENDED: OrderStatus.ACCEPTED,
    AlpacaStatus.CALCULATED: OrderStatus.ACCEPTED,
    AlpacaStatus.PARTIALLY_FILLED: OrderStatus.PARTIALLY_FILLED,
    AlpacaStatus.FILLED: OrderStatus.FILLED,
    AlpacaStatus.CANCELED: OrderStatus.CANCELED,
    AlpacaStatus.REPLACED: OrderStatus.CANCELED,
    AlpacaStatus.EXPIRED: OrderStatus.EXPIRED,
    AlpacaStatus.REJECTED: OrderStatus.REJECTED,
}
_STOP_TYPES = {AlpacaOrderType.STOP, AlpacaOrderType.STOP_LIMIT, AlpacaOrderType.TRAILING_STOP}


class LatestPrices(Protocol):
    """Latest trade prices, from the market data API (``AlpacaBarSource`` implements it)."""

    def latest_prices(self, symbols: list[str]) -> dict[str, float]: ...


# --------------------------------------------------------------------------- SDK hardening


def harden(client: Any, timeout: float = DEFAULT_TIMEOUT) -> Any:
    """Give an alpaca-py REST client a request timeout and switch off its own retries.

    alpaca-py sends every request through ``client._session.request`` (a ``requests.Session``)
    with no timeout, and retries any request, order submits included, on 429/504 after a fixed
    3 s sleep. Both are private attributes (alpaca-py 0.44 ``RESTClient``); the tests check
    they still behave as relied on here.
    """
    session: requests.Session = client._session
    original = session.request

    def request(method: str, url: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", timeout)
        return original(method, url, **kwargs)

    session.request = request  # type: ignore[method-assign]
    client._retry = 0
    return client


def api_message(exc: APIError) -> str:
    try:
        return str(exc.message)
    except Exception:
        return str(exc)[:300]


def status_of(exc: BaseException) -> int | None:
    return exc.status_code if isinstance(exc, APIError) else None


def retry_after(exc: BaseException, default: float) -> float:
    response = getattr(exc, "response", None) if isinstance(exc, APIError) else None
    header = response.headers.get("Retry-After") if response is not None else None
    try:
        return min(max(float(header), 0.0), 30.0) if header else default
    except ValueError:
        return default


def is_transient(exc: BaseException) -> bool:
    """429, 5xx or a transport failure: worth another try for a read."""
    if isinstance(exc, requests.RequestException):
        return True
    status = status_of(exc)
    return status is not None and (status == 429 or status >= 500)


def auth_message(status: int | None, paper: bool) -> str:
    kind = "paper" if paper else "live"
    return (
        f"Alpaca refused the API keys (HTTP {status}): check ALPACA_API_KEY and ALPACA_API_SECRET, "
        f"and that they are {kind}-trading keys (ALPACA_PAPER={'true' if paper else 'false'})"
    )


def to_alpaca_symbol(symbol: str) -> str:
    return symbol


def from_alpaca_symbol(symbol: str, *, crypto: bool | None = None) -> str:
    """Alpaca answers ``BTCUSD`` for crypto positions; tradebot writes ``BTC/USD``."""
    if "/" in symbol or crypto is False:
        return symbol
    if crypto:
        for quote in CRYPTO_QUOTES:
            if symbol.endswith(quote) and len(symbol) > len(quote):
                return f"{symbol[: -len(quote)]}/{quote}"
    return symbol


def round_price(price: float) -> float:
    """Alpaca rejects sub-penny prices at $1 and above; below $1 it takes 4 decimals."""
    return round(price, 2) if price >= 1 else round(price, 4)


def floor_qty(qty: float, step: float | None = None) -> float:
    if step and step > 0:
        return round(math.floor(qty / step + 1e-9) * step, QTY_DECIMALS)
    return math.floor(qty * 10**QTY_DECIMALS + 1e-6) / 10**QTY_DECIMALS


def _float(value: Any) -> float | None:
    if value is None or value == "":
        return None
    return float(value)


def _qty_key(qty: float) -> str:
    return f"{qty:.9f}".rstrip("0").rstrip(".")


def fill_id(order_id: str, cum_qty: float) -> str:
    """One id per execution, the same whether seen in account activities or the trading stream:
    the order and its cumulative filled quantity after that execution."""
    return f"alpaca-{order_id}-{_qty_key(cum_qty)}"


# --------------------------------------------------------------------------- conversion


def _flatten(orders: Iterable[Any]) -> list[Any]:
    out = []
    for order in orders:
        out.append(order)
        out.extend(order.legs or [])
    return out


def _is_leg(order: Any) -> bool:
    """A bracket/OCO/OTO child: Alpaca gave it the client id, we never sent it ourselves."""
    return order.order_class in (OrderClass.BRACKET, OrderClass.OCO, OrderClass.OTO) and not str(
        order.client_order_id
    ).startswith("tb-")


def exit_reason_of(order: Any) -> ExitReason | None:
    """Stop and target legs, and tradebot's own crypto stop (``...-sl``), say why they filled."""
    coid = str(order.client_order_id)
    if order.type in _STOP_TYPES or coid.endswith(("-sl", "-sl-mkt")):
        return ExitReason.STOP_LOSS
    if (_is_leg(order) and order.type == AlpacaOrderType.LIMIT) or coid.endswith("-tp"):
        return ExitReason.TAKE_PROFIT
    return None


def to_order(order: Any, intent: OrderIntent | None = None) -> Order:
    legs = order.legs or []
    stop = next((_float(leg.stop_price) for leg in legs if leg.type in _STOP_TYPES), None)
    take = next((_float(leg.limit_price) for leg in legs if leg.type == AlpacaOrderType.LIMIT), None)
    crypto = str(getattr(order.asset_class, "value", order.asset_class)) == "crypto"
    return Order(
        client_order_id=str(order.client_order_id),
        symbol=from_alpaca_symbol(str(order.symbol), crypto=crypto or None),
        side=Side.BUY if order.side == AlpacaSide.BUY else Side.SELL,
        qty=_float(order.qty) or 0.0,
        status=_STATUS.get(order.status, OrderStatus.ACCEPTED),
        order_type=OrderType.LIMIT
        if order.type == AlpacaOrderType.LIMIT and not _is_leg(order)
        else OrderType.MARKET,
        broker_order_id=str(order.id),
        limit_price=_float(order.limit_price),
        stop_loss=stop if stop is not None else (intent.stop_loss if intent else None),
        take_profit=take if take is not None else (intent.take_profit if intent else None),
        filled_qty=_float(order.filled_qty) or 0.0,
        filled_avg_price=_float(order.filled_avg_price),
        strategy=intent.strategy if intent else "manual",
        reason=intent.reason if intent else "",
        exit_reason=intent.exit_reason if intent else exit_reason_of(order),
        created_at=order.created_at,
        updated_at=order.updated_at,
    )


# --------------------------------------------------------------------------- the broker


@dataclass
class _CryptoGuard:
    """A crypto entry's protection, kept until the entry is final and its stop is placed."""

    entry_client_order_id: str
    entry_order_id: str
    symbol: str
    stop: float | None
    target: float | None
    stop_client_order_id: str | None = None
    qty: float = 0.0


class AlpacaBroker:
    name = "alpaca"

    def __init__(
        self,
        client: TradingClient,
        *,
        paper: bool,
        prices: LatestPrices | None = None,
        read_attempts: int = 4,
        backoff: float = 0.5,
        clock_ttl: float = 30.0,
        account_ttl: float = 3.0,
        asset_ttl: float = 3600.0,
        fill_lookback: timedelta = timedelta(days=1),
        cancel_wait: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.paper = paper
        self.mode = "paper" if paper else "live"
        self.prices = prices
        self.read_attempts = max(1, read_attempts)
        self.backoff = backoff
        self.clock_ttl = clock_ttl
        self.account_ttl = account_ttl
        self.asset_ttl = asset_ttl
        self.fill_lookback = fill_lookback
        self.cancel_wait = cancel_wait
        self._sleep = sleep
        self._clock: tuple[float, Any] | None = None
        self._account: tuple[float, Any] | None = None
        self._assets: dict[str, tuple[float, Any]] = {}
        self._price_cache: dict[str, tuple[float, float]] = {}
        self._fill_cursor: datetime | None = None
        self._seen_fills: set[str] = set()
        self._seen_order: deque[str] = deque()
        self._order_info: dict[str, tuple[str, str, ExitReason | None]] = {}  # id -> (coid, symbol, reason)
        self._tracked_open: set[str] = set()  # broker ids of orders open at the last look
        self._reported: dict[str, tuple[OrderStatus, float]] = {}
        self._guards: dict[str, _CryptoGuard] = {}  # entry client id -> guard
        self._pushed: list[BrokerUpdate] = []  # from the trading stream, handed out by sync
        self._released_for: str | None = None  # symbol whose protection this submit canceled

    # ------------------------------------------------------------------ plumbing
    def _read(self, what: str, call: Callable[[], T], *, auth_on_403: bool = False) -> T:
        """One read, retried with exponential backoff on 429/5xx/transport errors."""
        last: BaseException | None = None
        for attempt in range(self.read_attempts):
            try:
                return call()
            except (APIError, requests.RequestException) as exc:
                status = status_of(exc)
                if status == 401 or (status == 403 and auth_on_403):
                    raise AuthenticationError(auth_message(status, self.paper)) from None
                if not is_transient(exc):
                    raise
                last = exc
                if attempt + 1 < self.read_attempts:
                    delay = retry_after(exc, self.backoff * 2**attempt)
                    log.warning("Alpaca %s failed (%s), retrying in %.1fs", what, _describe(exc), delay)
                    self._sleep(delay)
        assert last is not None
        raise BrokerError(
            f"Alpaca {what} failed {self.read_attempts} times: {_describe(last)}", retriable=True
        )

    def _get(self, what: str, call: Callable[[], T], **kwargs: Any) -> T:
        """A read whose non-transient API errors become ``BrokerError``."""
        try:
            return self._read(what, call, **kwargs)
        except APIError as exc:
            raise BrokerError(f"Alpaca {what} failed: HTTP {exc.status_code}: {api_message(exc)}") from None

    # ------------------------------------------------------------------ reads
    def check_credentials(self) -> Account:
        """``get_account``; wrong keys raise ``AuthenticationError`` with a clear message."""
        self._account = None
        return self.account()

    def _raw_account(self) -> Any:
        now = time.monotonic()
        if self._account is None or now - self._account[0] > self.account_ttl:
            self._account = (now, self._get("account", self.client.get_account, auth_on_403=True))
        return self._account[1]

    def account(self) -> Account:
        raw = self._raw_account()
        return Account(
            cash=_float(raw.cash) or 0.0,
            equity=_float(raw.equity) or 0.0,
            buying_power=_float(raw.buying_power) or 0.0,
            currency=raw.currency or "USD",
        )

    def positions(self) -> list[Position]:
        rows = self._get("positions", self.client.get_all_positions)
        protective: dict[str, tuple[float | None, float | None]] = {}
        if rows:
            for order in self._open_alpaca_orders():
                if order.side != AlpacaSide.SELL:
                    continue
                symbol = from_alpaca_symbol(str(order.symbol))
                stop, take = protective.get(symbol, (None, None))
                if order.type in _STOP_TYPES:
                    stop = _float(order.stop_price)
                elif _is_leg(order):
                    take = _float(order.limit_price)
                protective[symbol] = (stop, take)
            for guard in self._guards.values():
                stop, take = protective.get(guard.symbol, (None, None))
                protective[guard.symbol] = (stop or guard.stop, take or guard.target)
        out = []
        for row in rows:
            crypto = str(getattr(row.asset_class, "value", row.asset_class)) == "crypto"
            symbol = from_alpaca_symbol(str(row.symbol), crypto=crypto)
            qty = _float(row.qty) or 0.0
            if str(getattr(row.side, "value", row.side)) == "short":
                qty = -abs(qty)
            stop, take = protective.get(symbol, (None, None))
            out.append(
                Position(
                    symbol=symbol,
                    qty=qty,
                    avg_price=_float(row.avg_entry_price) or 0.0,
                    market_price=_float(row.current_price),
                    stop_loss=stop,
                    take_profit=take,
                    strategy="external",
                )
            )
        return out

    def _open_alpaca_orders(self, symbol: str | None = None) -> list[Any]:
        request = GetOrdersRequest(
            status=QueryOrderStatus.OPEN, nested=True, limit=500, symbols=[symbol] if symbol else None
        )
        orders = self._get("open orders", lambda: self.client.get_orders(request))
        return [o for o in _flatten(orders) if _STATUS.get(o.status, OrderStatus.ACCEPTED).is_open]

    def open_orders(self) -> list[Order]:
        return [self._convert(o) for o in self._open_alpaca_orders()]

    def get_order_by_client_id(self, client_order_id: str) -> Order | None:
        raw = self._find(client_order_id)
        return None if raw is None else self._convert(raw)

    def _find(self, client_order_id: str) -> Any | None:
        try:
            return self._read("order lookup", lambda: self.client.get_order_by_client_id(client_order_id))
        except APIError as exc:
            if exc.status_code == 404:
                return None
            raise BrokerError(
                f"Alpaca order lookup failed: HTTP {exc.status_code}: {api_message(exc)}"
            ) from None

    def _convert(self, raw: Any, intent: OrderIntent | None = None) -> Order:
        self._remember(raw)
        return to_order(raw, intent)

    def _remember(self, raw: Any) -> None:
        for order in _flatten([raw]):
            self._order_info[str(order.id)] = (
                str(order.client_order_id),
                from_alpaca_symbol(str(order.symbol), crypto=_is_crypto_order(order)),
                exit_reason_of(order),
            )
            if _STATUS.get(order.status, OrderStatus.ACCEPTED).is_open:
                self._tracked_open.add(str(order.id))

    def clock(self) -> Any:
        now = time.monotonic()
        if self._clock is None or now - self._clock[0] > self.clock_ttl:
            self._clock = (now, self._get("clock", self.client.get_clock))
        return self._clock[1]

    def is_tradable_now(self, symbol: str, now: datetime) -> bool:
        if is_crypto(symbol):
            return True
        clock = self.clock()
        if clock.is_open:
            return now < clock.next_close
        return now >= clock.next_open

    def latest_price(self, symbol: str, now: datetime) -> float | None:
        cached = self._price_cache.get(symbol)
        if cached and time.monotonic() - cached[0] < 2.0:
            return cached[1]
        if self.prices is None:
            return None
        try:
            price = self.prices.latest_prices([symbol]).get(symbol)
        except Exception as exc:  # a price is a nicety for marking; its absence is reported as None
            log.warning("latest price for %s unavailable: %s", symbol, exc)
            return None
        if price is not None:
            self._price_cache[symbol] = (time.monotonic(), price)
        return price

    def asset(self, symbol: str) -> Any:
        now = time.monotonic()
        cached = self._assets.get(symbol)
        if cached is None or now - cached[0] > self.asset_ttl:
            try:
                asset = self._read("asset", lambda: self.client.get_asset(symbol))
            except APIError as exc:
                if exc.status_code == 404:
                    raise OrderRejected(f"Alpaca does not know the symbol {symbol}") from None
                raise BrokerError(
                    f"Alpaca asset lookup failed: HTTP {exc.status_code}: {api_message(exc)}"
                ) from None
            cached = self._assets[symbol] = (now, asset)
        return cached[1]

    # ------------------------------------------------------------------ orders
    def submit(self, intent: OrderIntent) -> Order:
        self._released_for = None
        try:
            request = self._prepare(intent)
        except OrderRejected:
            # A resend of an order Alpaca already has fails the checks (its own legs look like a
            # wash trade, its fill emptied the position): the order exists, so it was placed.
            existing = self._find(intent.client_order_id)
            if existing is not None:
                log.info("order %s is already at Alpaca: treated as placed", intent.client_order_id)
                return self._convert(existing, intent)
            raise
        try:
            return self._send(intent, request)
        except BrokerError as exc:
            if self._released_for != intent.symbol:
                raise
            raise type(exc)(
                f"{exc}. Its stop-loss/take-profit orders at Alpaca were already canceled: "
                f"{intent.symbol} has no broker-side protection until an exit is placed",
                retriable=exc.retriable,
            ) from None

    def _send(self, intent: OrderIntent, request: Any) -> Order:
        try:
            raw = self.client.submit_order(request)
        except APIError as exc:
            status, message = exc.status_code, api_message(exc)
            if status == 422 and "client_order_id" in message and "unique" in message:
                return self._existing(intent, "Alpaca already has this client order id")
            if status == 401:
                raise AuthenticationError(auth_message(status, self.paper)) from None
            if status is not None and 400 <= status < 500 and status != 429:
                raise OrderRejected(
                    f"Alpaca refused {intent.side.value} {_qty_key(intent.qty)} {intent.symbol}: {message}"
                ) from None
            return self._existing(intent, f"submit answered HTTP {status}: {message}", unknown=True)
        except requests.RequestException as exc:
            return self._existing(intent, f"submit failed in transport: {_describe(exc)}", unknown=True)
        except Exception as exc:  # e.g. an answer the SDK could not parse: the order may exist
            return self._existing(intent, f"submit failed: {_describe(exc)}", unknown=True)
        self._account = None
        order = self._convert(raw, intent)
        self._after_submit(intent, raw)
        log.info(
            "Alpaca accepted %s %s %s as %s",
            intent.side.value,
            _qty_key(intent.qty),
            intent.symbol,
            order.broker_order_id,
        )
        return order

    def _existing(self, intent: OrderIntent, why: str, *, unknown: bool = False) -> Order:
        """After a failed or duplicate submit: the order Alpaca has under this client id, if any."""
        try:
            raw = self._find(intent.client_order_id)
        except BrokerError as exc:
            raise BrokerError(
                f"{why}; whether order {intent.client_order_id} exists is unknown ({exc}): "
                "look it up before resending",
                retriable=True,
            ) from None
        if raw is None:
            if unknown:
                raise BrokerError(f"{why}; Alpaca has no order {intent.client_order_id}", retriable=True)
            raise BrokerError(f"{why}, but cannot find order {intent.client_order_id}", retriable=True)
        log.warning("%s: order %s exists at Alpaca, treated as placed", why, intent.client_order_id)
        self._account = None
        self._after_submit(intent, raw)
        return self._convert(raw, intent)

    def _after_submit(self, intent: OrderIntent, raw: Any) -> None:
        if is_crypto(intent.symbol) and intent.side is Side.BUY and (intent.stop_loss or intent.take_profit):
            self._guards.setdefault(
                intent.client_order_id,
                _CryptoGuard(
                    intent.client_order_id, str(raw.id), intent.symbol, intent.stop_loss, intent.take_profit
                ),
            )

    def _prepare(self, intent: OrderIntent) -> Any:
        """Check what Alpaca would refuse and say why; build the alpaca-py request."""
        symbol, qty, crypto = intent.symbol, intent.qty, is_crypto(intent.symbol)
        what = f"{intent.side.value} {_qty_key(qty)} {symbol}"
        if not math.isfinite(qty) or qty <= 0:
            raise OrderRejected(f"{what}: quantity must be positive")
        asset = self.asset(symbol)
        if not asset.tradable or str(getattr(asset.status, "value", asset.status)) != "active":
            raise OrderRejected(f"{what}: Alpaca lists {symbol} as not tradable")
        bracket = (
            not crypto
            and intent.side is Side.BUY
            and (intent.stop_loss is not None or intent.take_profit is not None)
        )
        if crypto:
            minimum = _float(asset.min_order_size)
            if minimum and qty + 1e-12 < minimum:
                raise OrderRejected(
                    f"{what}: below Alpaca's minimum order size of {_qty_key(minimum)} for {symbol}"
                )
            qty = floor_qty(qty, _float(asset.min_trade_increment))
            if qty <= 0:
                raise OrderRejected(f"{what}: rounds down to nothing at {symbol}'s quantity increment")
        elif not float(qty).is_integer():
            if bracket:
                raise OrderRejected(
                    f"{what}: a stop-loss/take-profit bracket needs whole shares "
                    "(Alpaca takes no fractional brackets)"
                )
            if not asset.fractionable:
                raise OrderRejected(f"{what}: {symbol} is not fractionable at Alpaca; use whole shares")
            if intent.order_type is not OrderType.MARKET:
                raise OrderRejected(f"{what}: Alpaca takes fractional quantities on market orders only")
            qty = floor_qty(qty)
        if intent.order_type is OrderType.LIMIT and intent.limit_price is None:
            raise OrderRejected(f"{what}: a limit order needs a limit price")
        reference = intent.limit_price or self.latest_price(symbol, datetime.now(UTC))
        if bracket and reference is not None:
            if intent.stop_loss is not None and intent.stop_loss >= reference:
                raise OrderRejected(
                    f"{what}: stop-loss {intent.stop_loss:g} is not below the price {reference:g}"
                )
            if intent.take_profit is not None and intent.take_profit <= reference:
                raise OrderRejected(
                    f"{what}: take-profit {intent.take_profit:g} is not above the price {reference:g}"
                )
        if not crypto and intent.side is Side.BUY:
            self._check_pattern_day_trader(what)
        working = self._open_alpaca_orders(symbol)
        opposite = [o for o in working if (o.side == AlpacaSide.BUY) != (intent.side is Side.BUY)]
        own_side_protection = [
            o
            for o in working
            if (o.side == AlpacaSide.BUY) == (intent.side is Side.BUY) and exit_reason_of(o) is not None
        ]
        if opposite:
            other = opposite[0]
            raise OrderRejected(
                f"{what}: an open {other.side.value} order ({other.client_order_id}, {other.status.value}) "
                f"for {symbol} is still working; Alpaca refuses opposite-side orders "
                "as potential wash trades. Cancel it first"
            )
        if intent.side is Side.SELL:
            qty = self._sellable(symbol, qty, what)
            if own_side_protection:
                self._release_protection(symbol, own_side_protection)
        return self._request(intent, qty, bracket)

    def _held(self, symbol: str) -> float:
        return next((qty for sym, qty in self._position_qtys() if sym == symbol), 0.0)

    def _position_qtys(self) -> list[tuple[str, float]]:
        rows = self._get("positions", self.client.get_all_positions)
        return [
            (from_alpaca_symbol(str(r.symbol), crypto=_is_crypto_order(r)), _float(r.qty) or 0.0)
            for r in rows
        ]

    def _sellable(self, symbol: str, qty: float, what: str) -> float:
        """An exit sells what is held: crypto buys pay their fee in the coin, so the position can be
        a hair smaller than the quantity bought."""
        held = self._held(symbol)
        if held <= 0:
            raise OrderRejected(
                f"{what}: no {symbol} position at Alpaca to sell (tradebot does not sell short)"
            )
        if qty > held:
            if (qty - held) / qty > 0.01:
                raise OrderRejected(f"{what}: only {_qty_key(held)} {symbol} held at Alpaca")
            log.info(
                "selling the %s %s held rather than %s (fees paid in the coin)",
                _qty_key(held),
                symbol,
                _qty_key(qty),
            )
            return held
        return qty

    def _check_pattern_day_trader(self, what: str) -> None:
        raw = self._raw_account()
        equity = _float(raw.equity) or 0.0
        margin = (_float(raw.multiplier) or 1.0) > 1.0
        if not margin or equity >= PDT_EQUITY:
            return
        if raw.pattern_day_trader:
            raise OrderRejected(
                f"{what}: the account is flagged as a pattern day trader with equity {equity:,.2f} below "
                f"{PDT_EQUITY:,.0f}; Alpaca blocks day trades, and a bracket can close the same day"
            )
        if (raw.daytrade_count or 0) >= 3:
            raise OrderRejected(
                f"{what}: {raw.daytrade_count} day trades in the last 5 business days on a margin account "
                f"with equity {equity:,.2f} below {PDT_EQUITY:,.0f}; "
                "a fourth would flag it as a pattern day trader"
            )

    def _request(self, intent: OrderIntent, qty: float, bracket: bool) -> Any:
        crypto = is_crypto(intent.symbol)
        fields: dict[str, Any] = {
            "symbol": to_alpaca_symbol(intent.symbol),
            "qty": qty,
            "side": AlpacaSide.BUY if intent.side is Side.BUY else AlpacaSide.SELL,
            "client_order_id": intent.client_order_id,
        }
        if crypto:
            fields["time_in_force"] = TimeInForce.GTC  # crypto takes gtc or ioc only
        elif bracket:
            fields["time_in_force"] = TimeInForce.GTC  # the legs then outlive the trading day
            if intent.stop_loss is not None and intent.take_profit is not None:
                fields["order_class"] = OrderClass.BRACKET
            else:
                fields["order_class"] = OrderClass.OTO
            if intent.take_profit is not None:
                fields["take_profit"] = TakeProfitRequest(limit_price=round_price(intent.take_profit))
            if intent.stop_loss is not None:
                fields["stop_loss"] = StopLossRequest(stop_price=round_price(intent.stop_loss))
        else:
            fields["time_in_force"] = TimeInForce.DAY  # fractional orders must be day orders
        if intent.order_type is OrderType.LIMIT:
            return LimitOrderRequest(limit_price=round_price(float(intent.limit_price or 0)), **fields)
        return MarketOrderRequest(**fields)

    def _release_protection(self, symbol: str, orders: list[Any]) -> None:
        """Cancel the stop/target orders that hold ``symbol``'s quantity, and wait until they are gone."""
        for order in orders:
            log.info(
                "canceling protective %s order %s on %s before the exit",
                order.type.value,
                order.client_order_id,
                symbol,
            )
            try:
                self.client.cancel_order_by_id(order.id)
            except APIError as exc:
                if exc.status_code not in (404, 422):  # 422: no longer cancelable; its status tells why
                    raise BrokerError(
                        f"cannot cancel protective order on {symbol}: {api_message(exc)}", retriable=True
                    ) from None
            except requests.RequestException as exc:
                raise BrokerError(
                    f"cannot cancel protective order on {symbol}: {_describe(exc)}", retriable=True
                ) from None
        deadline = time.monotonic() + self.cancel_wait
        pending = list(orders)
        while pending:
            still = []
            for order in pending:
                current = self._get("order", lambda order=order: self.client.get_order_by_id(order.id))
                status = _STATUS.get(current.status, OrderStatus.ACCEPTED)
                if status is OrderStatus.FILLED or (current.filled_qty and float(current.filled_qty) > 0):
                    raise OrderRejected(
                        f"sell {symbol}: its protective {current.type.value} order filled first; "
                        "nothing left to exit"
                    )
                if status.is_open:
                    still.append(order)
            pending = still
            if pending:
                if time.monotonic() > deadline:
                    raise BrokerError(
                        f"protective orders on {symbol} are still being canceled; exit not sent",
                        retriable=True,
                    )
                self._sleep(0.2)
        self._released_for = symbol
        for guard in [g for g in self._guards.values() if g.symbol == symbol]:
            self._guards.pop(guard.entry_client_order_id, None)

    def cancel_order(self, client_order_id: str) -> None:
        raw = self._find(client_order_id)
        if raw is None:
            raise BrokerError(f"Alpaca has no order {client_order_id}")
        try:
            self.client.cancel_order_by_id(raw.id)
        except APIError as exc:
            raise OrderRejected(f"cannot cancel {client_order_id}: {api_message(exc)}") from None
        except requests.RequestException as exc:
            raise BrokerError(f"cancel {client_order_id} failed: {_describe(exc)}", retriable=True) from None

    # ------------------------------------------------------------------ sync
    def acknowledge(self, fill_ids: list[str]) -> None:
        """The service recorded these fills. Alpaca keeps its own history; nothing to do."""

    def push_trade_update(self, update: Any) -> BrokerUpdate:
        """A ``trade_updates`` event from the trading stream (alpaca-py ``TradeUpdate``): its fill
        and order are handed out by the next ``sync``, under the same ``fill_id`` the account
        activities give that execution, so the service records it once whichever arrives first."""
        converted = trade_update_to_broker_update(update)
        self._remember(update.order)
        self._pushed.append(converted)
        return converted

    def sync(self, now: datetime) -> BrokerUpdate:
        """Fills since the last sync (account activities of type FILL, oldest first, plus any
        pushed by the trading stream) and the orders whose status or filled quantity changed;
        then the crypto protection."""
        pushed, self._pushed = self._pushed, []
        fills = []
        for update in pushed:
            for fill in update.fills:
                if fill.fill_id not in self._seen_fills:
                    self._mark_seen(fill.fill_id)
                    fills.append(fill)
        fills.extend(self._new_fills(now))
        orders = self._changed_orders()
        alerts = self._guard_crypto(now)
        return BrokerUpdate(fills=fills, orders=orders, alerts=alerts)

    def _new_fills(self, now: datetime) -> list[Fill]:
        if self._fill_cursor is None:
            self._fill_cursor = now - self.fill_lookback
        # activities can be posted a little after their transaction time: look back a minute
        params: dict[str, Any] = {
            "after": (self._fill_cursor - timedelta(minutes=1))
            .astimezone(UTC)
            .isoformat()
            .replace("+00:00", "Z"),
            "direction": "asc",
            "page_size": 100,
        }
        fills: list[Fill] = []
        newest = self._fill_cursor
        while True:
            page = self._get(
                "fill activities", lambda: self.client.get("/account/activities/FILL", dict(params))
            )
            page = page or []
            for row in page:
                fill = self._activity_fill(row)
                if fill is None:
                    continue
                newest = max(newest, fill.time)
                if fill.fill_id in self._seen_fills:
                    continue
                self._mark_seen(fill.fill_id)
                fills.append(fill)
            if len(page) < params["page_size"]:
                break
            params["page_token"] = page[-1]["id"]
        self._fill_cursor = newest
        return fills

    def _mark_seen(self, fid: str) -> None:
        self._seen_fills.add(fid)
        self._seen_order.append(fid)
        while len(self._seen_order) > 20_000:
            self._seen_fills.discard(self._seen_order.popleft())

    def _activity_fill(self, row: dict[str, Any]) -> Fill | None:
        order_id = str(row.get("order_id") or "")
        if not order_id:
            return None
        coid, symbol, reason = self._info(order_id, str(row.get("symbol", "")))
        when = datetime.fromisoformat(str(row["transaction_time"]).replace("Z", "+00:00"))
        return Fill(
            fill_id=fill_id(order_id, float(row["cum_qty"])),
            client_order_id=coid,
            symbol=symbol,
            side=Side.BUY if row.get("side") == "buy" else Side.SELL,
            qty=float(row["qty"]),
            price=float(row["price"]),
            time=when,
            exit_reason=reason,
        )

    def _info(self, order_id: str, symbol: str) -> tuple[str, str, ExitReason | None]:
        info = self._order_info.get(order_id)
        if info is None:
            raw = self._get("order", lambda: self.client.get_order_by_id(order_id))
            self._remember(raw)
            info = self._order_info.get(
                order_id, (str(raw.client_order_id), from_alpaca_symbol(symbol), None)
            )
        return info

    def _changed_orders(self) -> list[Order]:
        current = {str(o.id): o for o in self._open_alpaca_orders()}
        for order_id in self._tracked_open - current.keys():
            try:
                current[order_id] = self._get(
                    "order", lambda order_id=order_id: self.client.get_order_by_id(order_id)
                )
            except BrokerError as exc:
                log.warning("cannot read order %s: %s", order_id, exc)
        self._tracked_open = set()
        changed = []
        for order_id, raw in current.items():
            order = self._convert(raw)
            state = (order.status, order.filled_qty)
            if self._reported.get(order_id) != state:
                self._reported[order_id] = state
                changed.append(order)
        return changed

    # ------------------------------------------------------------------ crypto protection
    def ensure_protection(self, positions: list[Position]) -> list[str]:
        """After a restart: re-arm the guard of every crypto position whose stop or target is on
        record (the guards live in memory), adopting a stop order still open at Alpaca or placing
        one on the next sync. A stock position with a stop on record but no sell order working
        at Alpaca is reported: its bracket legs are gone (a partial sell cancels them)."""
        problems = []
        guarded = {g.symbol for g in self._guards.values()}
        open_sells: dict[str, list[Any]] = {}
        for order in self._open_alpaca_orders():
            if order.side == AlpacaSide.SELL:
                open_sells.setdefault(from_alpaca_symbol(str(order.symbol)), []).append(order)
        for position in positions:
            symbol = position.symbol
            if (position.stop_loss is None and position.take_profit is None) or symbol in guarded:
                continue
            sells = open_sells.get(symbol, [])
            if not is_crypto(symbol):
                if not sells:
                    problems.append(
                        f"{symbol} has a stop of {position.stop_loss} on record but no stop or target "
                        "working at Alpaca: protect it there or close it (/sell)"
                    )
                continue
            base = client_order_id("guard", symbol, position.opened_at or "", position.qty)
            guard = _CryptoGuard(base, "", symbol, position.stop_loss, position.take_profit)
            stop = next((o for o in sells if o.type in _STOP_TYPES), None)
            if stop is not None:
                guard.stop_client_order_id = str(stop.client_order_id)
                guard.qty = _float(stop.qty) or position.qty
            self._guards[base] = guard
            log.warning(
                "re-armed the crypto guard of %s (stop %s, target %s)", symbol, guard.stop, guard.target
            )
        return problems

    def _guard_crypto(self, now: datetime) -> list[str]:
        """Place the stop for filled crypto entries; exit at market on a target or a gapped stop.
        Returns what failed, for the service to alert."""
        alerts = []
        for guard in list(self._guards.values()):
            try:
                self._guard_one(guard, now)
            except (BrokerError, OrderRejected) as exc:
                log.error("crypto protection for %s (%s): %s", guard.symbol, guard.entry_client_order_id, exc)
                alerts.append(
                    f"{guard.symbol} may be unprotected: its stop or target could not be handled: {exc}"
                )
        return alerts

    def _guard_one(self, guard: _CryptoGuard, now: datetime) -> None:
        if guard.stop_client_order_id is None:
            held = self._held(guard.symbol)
            if guard.entry_order_id:
                entry = self._get("order", lambda: self.client.get_order_by_id(guard.entry_order_id))
                status = _STATUS.get(entry.status, OrderStatus.ACCEPTED)
                if status.is_open:
                    return  # wait until the entry is final, then protect what filled
                guard.qty = min(_float(entry.filled_qty) or 0.0, held)
            else:  # re-armed after a restart: protect what is held
                guard.qty = held
            if guard.qty <= 0:
                self._guards.pop(guard.entry_client_order_id, None)
                return
            if guard.stop is None:
                guard.stop_client_order_id = ""
            else:
                stop_id = f"{guard.entry_client_order_id}-sl"
                stop = round_price(guard.stop)
                request = StopLimitOrderRequest(
                    symbol=guard.symbol,
                    qty=guard.qty,
                    side=AlpacaSide.SELL,
                    time_in_force=TimeInForce.GTC,
                    stop_price=stop,
                    limit_price=round_price(stop * (1 - CRYPTO_STOP_LIMIT_SLIPPAGE)),
                    client_order_id=stop_id,
                )
                self._place_protective(request)  # raises: the next sync tries again
                guard.stop_client_order_id = stop_id
                log.info(
                    "crypto stop-limit %s placed for %s %s at %s",
                    guard.stop_client_order_id,
                    guard.qty,
                    guard.symbol,
                    stop,
                )
        price = self.latest_price(guard.symbol, now)
        if price is None:
            return
        stop_order = self._find(guard.stop_client_order_id) if guard.stop_client_order_id else None
        if stop_order is not None and not _STATUS.get(stop_order.status, OrderStatus.ACCEPTED).is_open:
            self._guards.pop(guard.entry_client_order_id, None)  # the stop filled or was canceled
            return
        reason = None
        if guard.target is not None and price >= guard.target:
            reason = ExitReason.TAKE_PROFIT
        elif stop_order is not None and price <= (_float(stop_order.limit_price) or 0.0):
            reason = ExitReason.STOP_LOSS  # gapped through the stop-limit's limit: get out at market
        if reason is None:
            return
        suffix = "tp" if reason is ExitReason.TAKE_PROFIT else "sl-mkt"
        if stop_order is not None:
            self._release_protection(guard.symbol, [stop_order])
        exit_request = MarketOrderRequest(
            symbol=guard.symbol,
            qty=guard.qty,
            side=AlpacaSide.SELL,
            time_in_force=TimeInForce.GTC,
            client_order_id=f"{guard.entry_client_order_id}-{suffix}",
        )
        self._place_protective(exit_request)
        self._guards.pop(guard.entry_client_order_id, None)
        log.info("crypto %s for %s at %s: market exit sent", reason.value, guard.symbol, price)

    def _place_protective(self, request: Any) -> None:
        try:
            raw = self.client.submit_order(request)
        except APIError as exc:
            message = api_message(exc)
            if exc.status_code == 422 and "unique" in message:
                return  # placed before
            if exc.status_code is not None and 400 <= exc.status_code < 500 and exc.status_code != 429:
                raise OrderRejected(
                    f"protective order {request.client_order_id} refused: {message}"
                ) from None
            raw = self._find(request.client_order_id)
            if raw is None:
                raise BrokerError(
                    f"protective order {request.client_order_id} not placed: {message}", retriable=True
                ) from None
        except requests.RequestException as exc:
            raw = self._find(request.client_order_id)
            if raw is None:
                raise BrokerError(
                    f"protective order {request.client_order_id} not placed: {_describe(exc)}", retriable=True
                ) from None
        self._remember(raw)


def trade_update_to_broker_update(update: Any) -> BrokerUpdate:
    """alpaca-py's ``TradeUpdate`` (``fill``/``partial_fill``/``canceled``/...) as tradebot types."""
    order = to_order(update.order)
    event = str(getattr(update.event, "value", update.event))
    fills = []
    if event in ("fill", "partial_fill") and update.qty and update.price:
        fills.append(
            Fill(
                fill_id=fill_id(str(update.order.id), _float(update.order.filled_qty) or float(update.qty)),
                client_order_id=order.client_order_id,
                symbol=order.symbol,
                side=order.side,
                qty=float(update.qty),
                price=float(update.price),
                time=update.timestamp,
                exit_reason=exit_reason_of(update.order),
            )
        )
    return BrokerUpdate(fills=fills, orders=[order])


def _is_crypto_order(order: Any) -> bool | None:
    value = str(getattr(order.asset_class, "value", order.asset_class))
    return True if value == "crypto" else (False if value == "us_equity" else None)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, APIError):
        return f"HTTP {exc.status_code}: {api_message(exc)}"
    return f"{type(exc).__name__}: {exc}"[:300]
