"""Alpaca broker: the ``Broker`` interface on alpaca-py's ``TradingClient``.

Safety rules this adapter keeps, whatever the SDK does:

- **Never a duplicate order.** Every submit carries ``intent.client_order_id`` and is sent once
  (``bot.alpaca.http`` switches off alpaca-py's own resend). A 422 "client_order_id must be
  unique" means the order is there and it is returned as placed; a 5xx, a timeout or a dropped
  connection means "unknown": the order is looked up by client id, and only when Alpaca has none
  is ``BrokerError(retriable=True)`` raised.
- **Reads** retry through ``bot.retry`` on 429, 5xx and transport errors, waiting for
  ``X-RateLimit-Reset`` on a 429, within the cycle's stall budget.
- **Say why before Alpaca refuses** (``bot.alpaca.rules``).
- **Never a naked position** (``bot.alpaca.protect``): an exit cancels the symbol's stop and
  target first (they hold the shares); if the exit then fails, protection is put back and the
  error says so; a partial stock sell re-protects the remainder; reconciliation re-protects a
  stock position whose legs are gone, and re-arms the crypto guard after a restart.
- **Fills** (``bot.alpaca.fills``): each execution once, reported until acknowledged.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Protocol, TypeVar

import requests
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderClass, QueryOrderStatus, TimeInForce
from alpaca.trading.enums import OrderSide as AlpacaSide
from alpaca.trading.requests import (
    GetOrdersRequest,
    LimitOrderRequest,
    MarketOrderRequest,
    StopLossRequest,
    TakeProfitRequest,
)

from bot.alpaca import convert, protect, rules
from bot.alpaca.convert import STOP_TYPES, as_float, is_open, qty_key, symbol_of, to_order
from bot.alpaca.fees import DEFAULT_CRYPTO_FEE_BPS
from bot.alpaca.fills import FillLedger
from bot.alpaca.http import AlpacaHttp, NotSent, api_message, auth_message, describe, is_transient, status_of
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
)
from bot.domain import is_crypto as crypto_symbol
from bot.retry import RetryPolicy
from bot.risk import QtyRules

log = logging.getLogger(__name__)

T = TypeVar("T")

READS = RetryPolicy(attempts=4, base=0.5, cap=4.0, budget=15.0)


class LatestPrices(Protocol):
    """Latest trade prices, from the market data API (``AlpacaBarSource`` implements it)."""

    def latest_prices(self, symbols: list[str]) -> dict[str, float]: ...


@dataclass
class _Released:
    """The protection an exit canceled, to put back if the exit fails."""

    symbol: str
    stop: float | None
    target: float | None
    guards: list[protect.CryptoGuard] = field(default_factory=list)


class AlpacaBroker:
    name = "alpaca"

    def __init__(
        self,
        client: TradingClient,
        *,
        paper: bool,
        http: AlpacaHttp | None = None,
        prices: LatestPrices | None = None,
        policy: RetryPolicy = READS,
        clock_ttl: float = 30.0,
        account_ttl: float = 3.0,
        asset_ttl: float = 3600.0,
        fill_lookback: timedelta = timedelta(days=1),
        cancel_wait: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
        crypto_fee_bps: float = DEFAULT_CRYPTO_FEE_BPS,
    ) -> None:
        self.client = client
        self.paper = paper
        self.mode = "paper" if paper else "live"
        self.http = http or AlpacaHttp(sleep=sleep)
        self.prices = prices
        self.policy = policy
        self.ttl = {"clock": clock_ttl, "account": account_ttl, "asset": asset_ttl, "price": 2.0}
        self.cancel_wait = cancel_wait
        self._sleep = sleep
        self._cache: dict[str, tuple[float, Any]] = {}
        self.fills = FillLedger(fill_lookback, crypto_fee_bps=crypto_fee_bps)  # fees: bot.alpaca.fees
        self._state = threading.Lock()  # the trading stream remembers orders while a sync runs
        self._info: dict[str, tuple[str, str, ExitReason | None]] = {}  # order id -> (coid, symbol, reason)
        self._tracked_open: set[str] = set()
        self._reported: dict[str, tuple[OrderStatus, float]] = {}
        self.guards: dict[str, protect.CryptoGuard] = {}
        self._alerts: list[str] = []
        self._released: _Released | None = None

    # ------------------------------------------------------------------ plumbing
    def _read(self, what: str, call: Callable[[], T], *, auth_on_403: bool = False) -> T:
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

    def _cached(self, key: str, ttl: str, load: Callable[[], T]) -> T:
        hit = self._cache.get(key)
        if hit is None or time.monotonic() - hit[0] > self.ttl[ttl]:
            hit = self._cache[key] = (time.monotonic(), load())
        return hit[1]

    def find(self, client_order_id: str) -> Any | None:
        try:
            raw = self._read("order lookup", lambda: self.client.get_order_by_client_id(client_order_id))
        except APIError:  # 404: no such order
            return None
        self._remember(raw)
        return raw

    def order_by_id(self, order_id: str) -> Any:
        try:
            return self._read("order", lambda: self.client.get_order_by_id(order_id))
        except APIError as exc:
            raise BrokerError(f"Alpaca order {order_id}: {describe(exc)}") from None

    def _remember(self, raw: Any) -> None:
        for order in convert.flatten([raw]):
            with self._state:
                self._info[str(order.id)] = (
                    str(order.client_order_id),
                    symbol_of(order),
                    convert.exit_reason_of(order),
                )
                if is_open(order):
                    self._tracked_open.add(str(order.id))

    # ------------------------------------------------------------------ reads
    def check_credentials(self) -> Account:
        self._cache.pop("account", None)
        return self.account()

    def _raw_account(self) -> Any:
        return self._cached(
            "account", "account", lambda: self._read("account", self.client.get_account, auth_on_403=True)
        )

    def account(self) -> Account:
        raw = self._raw_account()
        return Account(
            cash=as_float(raw.cash) or 0.0,
            equity=as_float(raw.equity) or 0.0,
            buying_power=as_float(raw.buying_power) or 0.0,
            currency=raw.currency or "USD",
        )

    def _rows(self) -> list[Any]:
        return list(self._read("positions", self.client.get_all_positions))

    def held(self, symbol: str) -> float:
        return next((as_float(r.qty) or 0.0 for r in self._rows() if symbol_of(r) == symbol), 0.0)

    def positions(self) -> list[Position]:
        rows = self._rows()
        levels: dict[str, tuple[float | None, float | None]] = {}
        for order in self._working() if rows else []:
            if order.side != AlpacaSide.SELL:
                continue
            stop, take = levels.get(symbol_of(order), (None, None))
            reason = convert.exit_reason_of(order)
            if order.type in STOP_TYPES:
                stop = as_float(order.stop_price)
            elif reason is ExitReason.TAKE_PROFIT:
                take = as_float(order.limit_price)
            levels[symbol_of(order)] = (stop, take)
        for guard in self.guards.values():
            stop, take = levels.get(guard.symbol, (None, None))
            levels[guard.symbol] = (stop or guard.stop, take or guard.target)
        out = []
        for row in rows:
            symbol, qty = symbol_of(row), as_float(row.qty) or 0.0
            if str(getattr(row.side, "value", row.side)) == "short":
                qty = -abs(qty)
            stop, take = levels.get(symbol, (None, None))
            out.append(
                Position(
                    symbol=symbol,
                    qty=qty,
                    avg_price=as_float(row.avg_entry_price) or 0.0,
                    market_price=as_float(row.current_price),
                    stop_loss=stop,
                    take_profit=take,
                    strategy="external",
                )
            )
        return out

    def _working(self, symbol: str | None = None) -> list[Any]:
        """Every open order, legs included, each judged by its own status: ``nested=false``
        lists each order of a group on its own (orders.md, "Bracket Orders"); a nested listing
        would hide the legs of a bracket whose entry has filled."""
        request = GetOrdersRequest(
            status=QueryOrderStatus.OPEN, nested=False, limit=500, symbols=[symbol] if symbol else None
        )
        orders = self._read("open orders", lambda: self.client.get_orders(request))
        working = [o for o in convert.flatten(orders) if is_open(o)]
        for order in working:
            self._remember(order)
        return working

    def open_orders(self) -> list[Order]:
        return [to_order(o) for o in self._working()]

    def get_order_by_client_id(self, client_order_id: str) -> Order | None:
        raw = self.find(client_order_id)
        return None if raw is None else to_order(raw)

    def clock(self) -> Any:
        return self._cached("clock", "clock", lambda: self._read("clock", self.client.get_clock))

    def is_tradable_now(self, symbol: str, now: datetime) -> bool:
        if crypto_symbol(symbol):
            return True
        clock = self.clock()
        return bool(now < clock.next_close) if clock.is_open else bool(now >= clock.next_open)

    def latest_price(self, symbol: str, now: datetime) -> float | None:
        prices = self.prices
        if prices is None:
            return None
        try:
            return self._cached(
                f"price:{symbol}", "price", lambda: prices.latest_prices([symbol]).get(symbol)
            )
        except Exception as exc:  # a price is a nicety for marking; its absence is reported as None
            log.warning("latest price for %s unavailable: %s", symbol, exc)
            return None

    def price(self, symbol: str) -> float | None:
        return self.latest_price(symbol, datetime.now(UTC))

    def asset(self, symbol: str) -> Any:
        """The asset (cached), whichever name Alpaca answers a crypto pair under."""

        def load() -> Any:
            for name in convert.asset_names(symbol):
                try:
                    found = self._read("asset", partial(self.client.get_asset, name))
                except APIError:  # 404
                    continue
                if convert.asset_is(found, symbol):
                    return found
            raise OrderRejected(f"Alpaca does not know the symbol {symbol}")

        return self._cached(f"asset:{symbol}", "asset", load)

    def qty_rules(self, symbol: str) -> QtyRules:
        """From the asset: crypto at least ``min_order_size``, a multiple of ``min_trade_increment``
        (a smaller remainder cannot be sold: dust); stocks in whole shares (entries carry a
        bracket), a fractional remainder sold whole where the asset is fractionable."""
        asset = self.asset(symbol)
        if crypto_symbol(symbol):
            step = as_float(asset.min_trade_increment) or 10.0**-rules.QTY_DECIMALS  # as crypto_qty floors
            minimum = as_float(asset.min_order_size) or step
            return QtyRules(min_qty=minimum, step=step, sells_any_remainder=False)
        return QtyRules(min_qty=1.0, step=1.0, sells_any_remainder=bool(asset.fractionable))

    def grid(self, symbol: str, price: float) -> float:
        crypto = crypto_symbol(symbol)
        increment = as_float(self.asset(symbol).price_increment) if crypto else None
        return rules.round_price(price, rules.price_step(price, crypto=crypto, increment=increment))

    # ------------------------------------------------------------------ orders
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
        self._cache.pop("account", None)
        self._remember(raw)
        return raw

    def cancel(self, client_order_id: str) -> Order:
        """Cancel an open order (a bracket's legs go with it, orders.md "Bracket Orders"). Alpaca
        answers 204 and cancels asynchronously; the order is read back as it stands (``canceled``,
        or ``pending_cancel`` until the next sync reports it canceled). 422 "not cancelable": it
        is final already (filled first), returned as it is."""
        raw = self.find(client_order_id)
        if raw is None:
            raise OrderRejected(f"Alpaca has no order {client_order_id}")
        if is_open(raw):
            try:
                self.client.cancel_order_by_id(raw.id)
            except APIError as exc:
                if exc.status_code not in (404, 422):
                    raise BrokerError(
                        f"cannot cancel {client_order_id}: {describe(exc)}", retriable=True
                    ) from None
            except requests.RequestException as exc:
                raise BrokerError(
                    f"cannot cancel {client_order_id}: {describe(exc)}", retriable=True
                ) from None
            raw = self.order_by_id(str(raw.id))
            self._remember(raw)
        return to_order(raw)

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

    def submit(self, intent: OrderIntent) -> Order:
        self._released = None
        try:
            request = self._prepare(intent)
        except OrderRejected:
            # A resend of an order Alpaca already has fails the checks (its own legs look like a
            # wash trade, its fill emptied the position): the order exists, so it was placed.
            existing = self.find(intent.client_order_id)
            if existing is not None:
                return to_order(existing, intent)
            raise
        try:
            raw = self.submit_raw(request) or self.find(intent.client_order_id)
            if raw is None:
                raise BrokerError(
                    f"Alpaca says {intent.client_order_id} exists but cannot find it", retriable=True
                )
        except BrokerError as exc:
            if self._released is None:
                raise
            raise type(exc)(f"{exc}. {self._restore(self._released)}", retriable=exc.retriable) from None
        self._after_submit(intent, raw, request)
        log.info("Alpaca has %s %s %s as %s", intent.side.value, qty_key(intent.qty), intent.symbol, raw.id)
        return to_order(raw, intent)

    def _after_submit(self, intent: OrderIntent, raw: Any, request: Any) -> None:
        if (
            crypto_symbol(intent.symbol)
            and intent.side is Side.BUY
            and (intent.stop_loss or intent.take_profit)
        ):
            self.guards.setdefault(
                intent.client_order_id,
                protect.CryptoGuard(
                    intent.client_order_id, str(raw.id), intent.symbol, intent.stop_loss, intent.take_profit
                ),
            )
        released = self._released
        if released is None or crypto_symbol(intent.symbol):
            return
        remainder = self.held(intent.symbol) - float(request.qty)
        if remainder >= 1:  # a partial sell canceled the bracket legs: protect what stays
            try:
                protect.protect_stock(
                    self, intent.symbol, remainder, released.stop, released.target, intent.client_order_id
                )
                log.info(
                    "re-protected the %s %s left after a partial sell", qty_key(remainder), intent.symbol
                )
            except BrokerError as exc:
                self._alerts.append(
                    f"{intent.symbol}: the {qty_key(remainder)} left after the sell are unprotected: {exc}"
                )

    def _restore(self, released: _Released) -> str:
        """Put back the protection an exit canceled; say what happened, for the alert."""
        symbol = released.symbol
        try:
            if released.guards:
                for guard in released.guards:
                    guard.stop_client_order_id, guard.entry_order_id = None, ""
                    self.guards[guard.key] = guard
                    protect.run_guard(self, guard)
                return f"{symbol}'s stop was put back at Alpaca"
            protect.protect_stock(self, symbol, self.held(symbol), released.stop, released.target, "restore")
            return f"{symbol}'s stop {released.stop} and target {released.target} were put back at Alpaca"
        except BrokerError as exc:
            return f"{symbol} has NO stop at Alpaca: putting it back failed too ({exc}); protect it by hand"

    def _prepare(self, intent: OrderIntent) -> Any:
        """Check what Alpaca would refuse and say why; build the alpaca-py request."""
        symbol, qty, crypto = intent.symbol, intent.qty, crypto_symbol(intent.symbol)
        what = f"{intent.side.value} {qty_key(qty)} {symbol}"
        rules.check_positive(what, qty)
        asset = self.asset(symbol)
        rules.check_tradable(what, symbol, asset)
        buy = intent.side is Side.BUY
        bracket = not crypto and buy and (intent.stop_loss is not None or intent.take_profit is not None)
        if crypto:
            qty = rules.crypto_qty(what, symbol, qty, asset)
        else:
            qty = rules.stock_qty(
                what, symbol, qty, asset, bracket=bracket, market=intent.order_type is OrderType.MARKET
            )
        if intent.order_type is OrderType.LIMIT and intent.limit_price is None:
            raise OrderRejected(f"{what}: a limit order needs a limit price")
        if bracket:
            reference = intent.limit_price or self.latest_price(symbol, datetime.now(UTC))
            rules.check_levels(what, stop=intent.stop_loss, target=intent.take_profit, reference=reference)
        working = self._working(symbol)
        other = rules.wash_conflict(buy, working)
        if other is not None:
            raise OrderRejected(rules.wash_message(what, symbol, other))
        if not buy:
            qty = rules.sellable(what, symbol, qty, self.held(symbol))
            protective = [o for o in working if convert.is_protective(o)]
            if protective or any(g.symbol == symbol for g in self.guards.values()):
                self.release(symbol, protective)
        return self._request(intent, qty, bracket)

    def _request(self, intent: OrderIntent, qty: float, bracket: bool) -> Any:
        symbol = intent.symbol
        fields: dict[str, Any] = {
            "symbol": symbol,
            "qty": qty,
            "side": AlpacaSide.BUY if intent.side is Side.BUY else AlpacaSide.SELL,
            "client_order_id": intent.client_order_id,
            # crypto takes gtc or ioc; bracket legs should outlive the day; fractional orders are day orders
            "time_in_force": TimeInForce.GTC if crypto_symbol(symbol) or bracket else TimeInForce.DAY,
        }
        if bracket:
            both = intent.stop_loss is not None and intent.take_profit is not None
            fields["order_class"] = OrderClass.BRACKET if both else OrderClass.OTO
            if intent.take_profit is not None:
                fields["take_profit"] = TakeProfitRequest(limit_price=self.grid(symbol, intent.take_profit))
            if intent.stop_loss is not None:
                fields["stop_loss"] = StopLossRequest(stop_price=self.grid(symbol, intent.stop_loss))
        if intent.order_type is OrderType.LIMIT:
            return LimitOrderRequest(limit_price=self.grid(symbol, float(intent.limit_price or 0)), **fields)
        return MarketOrderRequest(**fields)

    def release(self, symbol: str, orders: list[Any]) -> None:
        """Cancel the stop/target orders that hold ``symbol``'s quantity, and wait until they are gone."""
        stop = next((as_float(o.stop_price) for o in orders if o.type in STOP_TYPES), None)
        target = next(
            (as_float(o.limit_price) for o in orders if convert.exit_reason_of(o) is ExitReason.TAKE_PROFIT),
            None,
        )
        guards = [g for g in self.guards.values() if g.symbol == symbol]
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
                    f"cannot cancel protective order on {symbol}: {describe(exc)}", retriable=True
                ) from None
        deadline = time.monotonic() + self.cancel_wait
        pending = list(orders)
        while pending:
            current = [self.order_by_id(str(o.id)) for o in pending]
            if any(
                convert.status(c) is OrderStatus.FILLED or (as_float(c.filled_qty) or 0) > 0 for c in current
            ):
                raise OrderRejected(f"sell {symbol}: its protective order filled first; nothing left to exit")
            pending = [o for o, c in zip(pending, current, strict=True) if is_open(c)]
            if pending and time.monotonic() > deadline:
                raise BrokerError(
                    f"protective orders on {symbol} are still being canceled; exit not sent", retriable=True
                )
            if pending:
                self._sleep(0.2)
        for guard in guards:
            self.guards.pop(guard.key, None)
        self._released = _Released(
            symbol,
            stop if stop is not None else next((g.stop for g in guards), None),
            target if target is not None else next((g.target for g in guards), None),
            guards,
        )

    # ------------------------------------------------------------------ sync
    def acknowledge(self, fill_ids: list[str]) -> None:
        """The service has recorded these fills: stop reporting them."""
        self.fills.acknowledge(fill_ids)

    def report_fills_since(self, since: datetime | None) -> None:
        """The books hold every fill up to ``since``: the next sync reads the FILL activities from
        there on, page by page, however long ago (a restart after a week's outage records every
        fill). None: the books hold nothing to resume from; look back ``fill_lookback``."""
        if since is not None:
            self.fills.resume_from(since)

    def push_trade_update(self, update: Any) -> BrokerUpdate:
        """A ``trade_updates`` event (alpaca-py ``TradeUpdate``): its fill joins the ledger under the
        id the activities give the same execution; the next ``sync`` reports it. No I/O: safe to
        call on the event loop while a sync runs in a worker thread."""
        self._remember(update.order)
        with self._state:
            coid, symbol, reason = self._info[str(update.order.id)]
        fill = self.fills.add_stream(update, client_order_id=coid, symbol=symbol, exit_reason=reason)
        return BrokerUpdate(fills=[fill] if fill else [], orders=[to_order(update.order)])

    def sync(self, now: datetime) -> BrokerUpdate:
        """A new cycle: new FILL activities join the ledger; every unacknowledged fill, the orders
        whose status or filled quantity changed, then the crypto guards' work."""
        self.http.begin_cycle()
        self._poll_fills(now)
        orders = self._changed_orders()
        alerts, self._alerts = self._alerts, []
        for guard in list(self.guards.values()):
            try:
                keep, note = protect.run_guard(self, guard)
            except BrokerError as exc:
                log.error("crypto protection for %s (%s): %s", guard.symbol, guard.key, exc)
                alerts.append(
                    f"{guard.symbol} may be unprotected: its stop or target could not be handled: {exc}"
                )
                continue
            if note:
                alerts.append(f"{guard.symbol}: {note.lstrip('; ')}")
            if not keep:
                self.guards.pop(guard.key, None)
        return BrokerUpdate(fills=self.fills.pending(), orders=orders, alerts=alerts)

    def _poll_fills(self, now: datetime) -> None:
        params: dict[str, Any] = {"after": self.fills.window_start(now), "direction": "asc", "page_size": 100}
        while True:
            page = (
                self._read(
                    "fill activities", lambda: self.client.get("/account/activities/FILL", dict(params))
                )
                or []
            )
            for row in page:
                if row.get("order_id"):
                    self.fills.add_activity(row, self._activity_fill(row))
            if len(page) < params["page_size"]:
                return
            params["page_token"] = page[-1]["id"]

    def _activity_fill(self, row: dict[str, Any]) -> Fill:
        order_id = str(row["order_id"])
        if order_id not in self._info:
            self._remember(self.order_by_id(order_id))
        coid, symbol, reason = self._info[order_id]
        return convert.activity_fill(row, coid, symbol, reason)

    def _changed_orders(self) -> list[Order]:
        current = {str(o.id): o for o in self._working()}
        with self._state:
            gone = self._tracked_open - current.keys()
        for order_id in gone:
            try:
                current[order_id] = self.order_by_id(order_id)
            except BrokerError as exc:
                log.warning("cannot read order %s: %s", order_id, exc)
        with self._state:
            self._tracked_open = {i for i, o in current.items() if is_open(o)} | (self._tracked_open - gone)
        changed = []
        for order_id, raw in current.items():
            order = to_order(raw)
            state = (order.status, order.filled_qty)
            if self._reported.get(order_id) != state:
                self._reported[order_id] = state
                changed.append(order)
        return changed

    def ensure_protection(self, positions: list[Position]) -> list[str]:
        """At start and on reconciliation: every position with a stop or target on record has it
        working at Alpaca. A crypto position's guard is re-armed (adopting its working stop); a
        stock position whose legs are gone is protected again by an OCO. Returns what was done or
        could not be, for an alert."""
        problems: list[str] = []
        guarded = {g.symbol for g in self.guards.values()}
        sells: dict[str, list[Any]] = {}
        for order in self._working():
            if order.side == AlpacaSide.SELL:
                sells.setdefault(symbol_of(order), []).append(order)
        for position in positions:
            symbol = position.symbol
            if (position.stop_loss is None and position.take_profit is None) or symbol in guarded:
                continue
            if not crypto_symbol(symbol):
                if not sells.get(symbol):
                    problems.append(self._reprotect_stock(position))
                continue
            key = client_order_id("guard", symbol, position.opened_at or "", position.qty)
            guard = protect.CryptoGuard(key, "", symbol, position.stop_loss, position.take_profit)
            stop = protect.working_stop(sells.get(symbol, []))
            if stop is not None:
                guard.stop_client_order_id, guard.qty = (
                    str(stop.client_order_id),
                    as_float(stop.qty) or position.qty,
                )
            self.guards[key] = guard
            log.warning(
                "re-armed the crypto guard of %s (stop %s, target %s)", symbol, guard.stop, guard.target
            )
        return problems

    def _reprotect_stock(self, position: Position) -> str:
        symbol = position.symbol
        try:
            held = self.held(symbol)
            protect.protect_stock(self, symbol, held, position.stop_loss, position.take_profit, "reconcile")
        except BrokerError as exc:
            return (
                f"{symbol} has a stop of {position.stop_loss} on record but no stop or target working at Alpaca, "
                f"and putting them back failed ({exc}): protect it there or close it (/sell)"
            )
        return (
            f"{symbol} had no stop or target working at Alpaca: put back (stop {position.stop_loss}, "
            f"target {position.take_profit}) for {qty_key(held)} shares"
        )
