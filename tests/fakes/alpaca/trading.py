"""The fake's trading API: what ``POST /v2/orders`` accepts and refuses, and the order listing.

Every refusal names its source; status codes and messages are Alpaca's where a source shows them.

- 422 ``40010001`` "client_order_id must be unique": a client id is never reused, even after the
  order was canceled (orders.md: "Each order has a unique identifier provided by the client").
  Longer than 48 characters: 422 (orders.yaml: ``client_order_id`` "string (<= 48 characters)";
  docs.alpaca.markets now says 128, so the fake keeps the stricter, older limit).
- 403 ``40310000`` "potential wash trade detected. use complex orders" for a simple order while an
  opposite-side order on the symbol is live (forum.alpaca.markets threads 13817 and 18200;
  422/42210000 in Petersoj/alpaca-java#145). A complex order (bracket, OCO, OTO) is what the
  refusal points to and is not checked: an OCO sell beside a working bracket entry is accepted.
- 403 ``40310000`` "insufficient qty available for order (requested: X, available: Y)" for a
  stock sell beyond ``qty_available`` while open orders hold part of the position (Alpaca-API#90,
  QuantConnect/Lean#3875); crypto: "insufficient balance for BTC (requested: X, available: Y)"
  (issue 9's review; the wording is not in a public page).
- **Shorting** (trading-api ``_index.md``, "Notes on Orders and Positions"): the account has
  ``shorting_enabled: true`` by default (a paper account does), so a stock sell while flat or
  short **opens or adds to a short** on an easy-to-borrow asset; with ``shorting_enabled`` off it is
  refused as above. A sell beyond a long position that no order holds: the document says 403
  ("an order that would flip your position ... is not supported"), issue 17 saw it open a short;
  the fake takes the harsher reading (the excess opens a short) unless ``flip_refused``.
- **Account flags** (``data/webapi/entities/account-v2.yaml``: ``trading_blocked``,
  ``account_blocked``, ``trade_suspended_by_user`` "the account is not allowed to place
  orders"): every submit is refused 403 (the text is the fake's own); cancels are allowed.
- **Market orders fill inside the POST** (issue 17; orders.md "Market orders fill nearly
  instantaneously"): with ``auto_fill`` (on by default), a market order on a symbol not in
  ``illiquid`` has filled by the time the POST is answered, while the answer still says ``new``
  ("Submitting is not filling": a caller must read the order or the position again).
- 403 ``40310000`` "insufficient buying power" for a stock buy beyond the buying power; a crypto
  buy is held to ``non_marginable_buying_power`` (``crypto``).
- 422 ``42210000`` "invalid limit_price X. sub-penny increment does not fulfill minimum pricing
  criteria": stock prices >= $1 take 2 decimals, below $1 4 (orders.md, "Sub-penny increments").
  Crypto prices must sit on the pair's ``price_increment``; crypto quantities at least
  ``min_order_size`` and a multiple of ``min_trade_increment`` (docs.alpaca.markets "Crypto
  Spot Trading", asset fields; the refusal texts here are the fake's own).
- Crypto: ``time_in_force`` gtc or ioc only; no bracket/OCO/OTO (orders.md "Time in Force";
  "crypto orders not allowed for advanced order_class").
- Fractional quantities only for fractionable stocks on simple market orders (orders.yaml:
  "Can be fractionable for only market and day order types"); brackets whole shares.
- A bracket's ``take_profit.limit_price`` must be above ``stop_loss.stop_price`` for a buy, and
  a stop leg at least $0.01 below the base price, the current price included (orders.md,
  "Threshold on stop price of stop-loss orders").
- An order for a stock while the market is closed is accepted (``accepted``) and waits for the
  next session (orders.md, "Orders Submitted Outside of Eligible Trading Hours"; lifecycle
  ``accepted``: "often outside of trading session hours").
- ``GET /v2/orders``: ``status`` open/closed/all (``held`` is not open: a bracket's held stop is
  listed under ``closed``, alpaca-trade-api-python#322), ``nested`` (true: parents with their legs
  under ``legs``, each parent judged by its own status, so a bracket whose entry filled is not
  listed as open and its legs are reached through ``status=all``; false: every order, legs
  included, on its own), ``after``/``until`` on the submission time, ``limit`` at most 500,
  newest first (orders.yaml).
- **Cancels are asynchronous** (orders.md, ``pending_cancel`` "The order is waiting to be
  canceled"; ``DELETE /v2/orders/{id}`` answers 204 before the cancel is done): the order and its
  group read ``pending_cancel`` until ``cancel_latency`` more trading requests have arrived (2 by
  default; 0 cancels at once). ``pending_replace`` refuses the cancel (422; the rest of the group
  is canceled). ``on_cancel(order)`` runs as a cancel is accepted, and ``stop_fires_on_cancel``
  makes the group's stop fill while the cancel is in flight (the race of issue 17).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from tests.fakes.alpaca.crypto import buy_refusal, settle
from tests.fakes.alpaca.orders import (
    OPEN,
    FakeOrder,
    FakePosition,
    begin_cancel,
    can_execute,
    execute,
    finish_cancels,
    replacement,
)

if TYPE_CHECKING:
    from tests.fakes.alpaca.server import FakeAlpaca

Answer = tuple[int | str, Any]


def _err(status: int, code: int, message: str) -> Answer:
    return status, {"code": code, "message": message}


def _on_grid(value: float, step: float) -> bool:
    return Decimal(repr(value)) % Decimal(str(step)) == 0


def _price_problem(fake: FakeAlpaca, symbol: str, key: str, price: float) -> Answer | None:
    if "/" in symbol:
        step = float(fake.asset(symbol)["price_increment"])
        if not _on_grid(price, step):
            return _err(422, 42210000, f"invalid {key} {price}. must be a multiple of price_increment {step}")
        return None
    step = 0.01 if price >= 1 else 0.0001
    if not _on_grid(price, step):
        return _err(
            422,
            42210000,
            f"invalid {key} {price}. sub-penny increment does not fulfill minimum pricing criteria",
        )
    return None


def qty_available(fake: FakeAlpaca, symbol: str) -> float:
    """The position less what live sell orders hold (a held stop leg too); a group counts once."""
    position = fake.positions.get(symbol)
    held = position.qty if position else 0.0
    counted: set[str] = set()
    for order in fake.all_orders():
        top = order.parent or order
        if order.symbol != symbol or order.side != "sell" or not order.is_live or top.id in counted:
            continue
        if order.parent is not None and order.parent.side == "buy" and order.parent.status != "filled":
            continue  # a bracket's exit legs hold nothing until their entry has filled
        counted.add(top.id)
        held -= order.remaining
    return max(held, 0.0)


def submit(fake: FakeAlpaca, body: dict[str, Any]) -> Answer:
    coid = body.get("client_order_id") or str(uuid.uuid4())
    if len(coid) > 48:
        return _err(422, 40010001, "client_order_id must be no more than 48 characters")
    if any(o.client_order_id == coid for o in fake.all_orders()):
        return _err(422, 40010001, "client_order_id must be unique")
    if fake.trading_blocked or fake.account_blocked:
        return _err(403, 40310000, "trading is blocked for this account")
    if fake.trade_suspended_by_user:
        return _err(403, 40310000, "trading is suspended for this account by its owner")
    symbol, side, type_, tif = body["symbol"], body["side"], body["type"], body["time_in_force"]
    crypto = "/" in symbol
    asset = fake.asset(symbol)
    qty = float(body["qty"])
    order_class = body.get("order_class") or "simple"
    take, stop = body.get("take_profit") or {}, body.get("stop_loss") or {}
    if crypto and order_class != "simple":
        return _err(422, 42210000, f"crypto orders not allowed for advanced order_class: {order_class}")
    if crypto and tif not in ("gtc", "ioc"):
        return _err(422, 42210000, "invalid crypto time_in_force")
    if crypto:
        if qty + 1e-12 < float(asset["min_order_size"]):
            return _err(422, 42210000, f"qty must be >= {asset['min_order_size']}")
        if not _on_grid(qty, float(asset["min_trade_increment"])):
            return _err(422, 42210000, f"qty must be a multiple of {asset['min_trade_increment']}")
    elif not qty.is_integer():
        if order_class != "simple":
            return _err(422, 42210000, "fractional orders must be simple orders")
        if not asset["fractionable"] or type_ != "market" or tif != "day":
            return _err(422, 42210000, "fractional orders must be market orders with time_in_force day")
    prices = [(k, body[k]) for k in ("limit_price", "stop_price") if body.get(k) is not None]
    prices += [
        ("take_profit.limit_price", take.get("limit_price")),
        ("stop_loss.stop_price", stop.get("stop_price")),
    ]
    prices += [("stop_loss.limit_price", stop.get("limit_price"))]
    for key, value in prices:
        if value is not None and (problem := _price_problem(fake, symbol, key, float(value))):
            return problem
    market = fake.last_price(symbol)
    if order_class in ("bracket", "oco") and (
        take.get("limit_price") is None or stop.get("stop_price") is None
    ):
        return _err(
            422,
            42210000,
            f"{order_class} orders require take_profit.limit_price and stop_loss.stop_price",
        )
    if order_class in ("bracket", "oco", "oto"):
        if tif not in ("day", "gtc"):
            return _err(422, 42210000, f"{order_class} orders must be day or gtc")
        exit_side = "sell" if (side == "buy" or order_class == "oco") else "buy"
        if stop.get("stop_price") is not None and exit_side == "sell":
            base = min(market, float(take["limit_price"])) if take.get("limit_price") else market
            if float(stop["stop_price"]) > base - 0.01 + 1e-9:
                return _err(422, 42210000, "stop_loss.stop_price must be at least 0.01 below the base price")
        if (
            take.get("limit_price")
            and stop.get("stop_price")
            and float(take["limit_price"]) <= float(stop["stop_price"])
        ):
            return _err(422, 42210000, "take_profit.limit_price must be higher than stop_loss.stop_price")
    if order_class == "oco" and type_ != "limit":
        return _err(422, 42210000, "oco orders must be limit orders")
    # wash trades: an open order on the other side; a complex order (bracket, OCO, OTO) is the way
    # around it, as the refusal itself says, so it is not checked (the harsher reading for the bot)
    for other in fake.all_orders():
        if order_class == "simple" and other.symbol == symbol and other.is_live and other.side != side:
            return _err(403, 40310000, "potential wash trade detected. use complex orders")
    if side == "sell":
        refusal = _sell_refusal(fake, symbol, qty, asset)
        if refusal:
            return refusal
    elif refusal := buy_refusal(fake, symbol, qty, float(body.get("limit_price") or market)):
        return refusal
    return 200, _create(fake, body, coid, qty, order_class, take, stop)


def _sell_refusal(fake: FakeAlpaca, symbol: str, qty: float, asset: dict[str, Any]) -> Answer | None:
    available = qty_available(fake, symbol)
    if qty <= available + 1e-12:
        return None
    if "/" in symbol:  # no crypto shorting
        base_ccy = symbol.split("/")[0]
        return _err(
            403,
            40310000,
            f"insufficient balance for {base_ccy} (requested: {qty:g}, available: {available:g})",
        )
    position = fake.positions.get(symbol)
    held = position.qty if position else 0.0
    shortable = fake.shorting_enabled and asset["shortable"] and asset["easy_to_borrow"]
    if shortable and (held <= 0 or (available >= held - 1e-12 and not fake.flip_refused)):
        return None  # opens (or adds to) a short
    return _err(
        403,
        40310000,
        f"insufficient qty available for order (requested: {qty:g}, available: {available:g})",
    )


def _create(
    fake: FakeAlpaca, body: dict[str, Any], coid: str, qty: float, order_class: str, take: dict, stop: dict
) -> dict[str, Any]:
    """Store the order; answer what it was on arrival (a market order may have filled since)."""
    now = fake.clock.now()
    symbol, side, tif = body["symbol"], body["side"], body["time_in_force"]
    waiting = "/" not in symbol and not fake.market_open()
    order = FakeOrder(str(uuid.uuid4()), coid, symbol, side, float(qty), body["type"], tif, now, order_class)
    order.limit_price = float(body["limit_price"]) if body.get("limit_price") else None
    order.stop_price = float(body["stop_price"]) if body.get("stop_price") else None
    if order_class == "oco":
        order.limit_price = float(take["limit_price"])
    order.status = "accepted" if waiting else "new"
    exit_side = "sell" if side == "buy" else "buy"
    legs: list[FakeOrder] = []
    if order_class in ("bracket", "oto") and take.get("limit_price"):
        legs.append(
            FakeOrder(
                str(uuid.uuid4()), str(uuid.uuid4()), symbol, exit_side, qty, "limit", tif, now, order_class
            )
        )
        legs[-1].limit_price = float(take["limit_price"])
    if stop.get("stop_price") and order_class in ("bracket", "oto", "oco"):
        leg_side = side if order_class == "oco" else exit_side
        kind = "stop_limit" if stop.get("limit_price") else "stop"
        legs.append(
            FakeOrder(
                str(uuid.uuid4()), str(uuid.uuid4()), symbol, leg_side, qty, kind, tif, now, order_class
            )
        )
        legs[-1].stop_price = float(stop["stop_price"])
        legs[-1].limit_price = float(stop["limit_price"]) if stop.get("limit_price") else None
    for leg in legs:
        leg.parent = order
        leg.status = "held"  # until the entry fills; a stop leg (OCO too) stays held (orders.py)
    order.legs = legs
    fake.orders.append(order)
    fake.emit("new", order)
    answer = order.to_json(now=now)
    if fake.auto_fill and order.type == "market" and not waiting and symbol not in fake.illiquid:
        fake.execute(order, None, fake.fill_step)
    return answer


def list_orders(fake: FakeAlpaca, query: dict[str, str]) -> Answer:
    status = query.get("status", "open")
    nested = query.get("nested", "false").lower() == "true"
    limit = min(int(query.get("limit", "50")), 500)
    symbols = {s.replace("/", "") for s in query["symbols"].split(",")} if query.get("symbols") else None
    after = _when(query.get("after"))
    until = _when(query.get("until"))
    source = fake.orders if nested else fake.all_orders()
    now = fake.clock.now()
    picked = []
    for order in sorted(source, key=lambda o: o.created_at, reverse=query.get("direction", "desc") == "desc"):
        shown = order.visible(now, fake.calculated_now)
        if (status == "open") != (shown in OPEN) and status != "all":
            continue
        if symbols and order.symbol.replace("/", "") not in symbols:
            continue
        if (after and order.created_at <= after) or (until and order.created_at > until):
            continue
        picked.append(order.to_json(nested, now, fake.calculated_now))
    return 200, picked[:limit]


def _when(text: str | None) -> datetime | None:
    if not text:
        return None
    when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def cancel_order(fake: FakeAlpaca, order_id: str) -> Answer:
    order = next((o for o in fake.all_orders() if o.id == order_id), None)
    if order is None:
        return _err(404, 40410000, "order not found")
    shown = order.visible(fake.clock.now(), fake.calculated_now)
    if order.status == "pending_replace":
        return _err(422, 42210000, 'order is in "pending_replace" state and cannot be canceled')
    if not order.is_live:
        return _err(422, 42210000, f'order is already in "{shown}" state')
    now = fake.clock.now()
    pending, _refused = begin_cancel(order, now, fake.trading_requests + fake.cancel_latency)
    for one in pending:
        fake.emit("pending_cancel", one)
    if fake.stop_fires_on_cancel:
        stop = next((o for o in order.family() if o.is_stop and can_execute(o)), None)
        if stop is not None:
            fake.stop_fires_on_cancel = False
            trigger_stop(fake, stop, stop.stop_price)
    if fake.on_cancel is not None:
        fake.on_cancel(order)
    if fake.cancel_latency <= 0:
        settle_cancels(fake, None)
    return 204, None


def trigger_stop(fake: FakeAlpaca, stop: FakeOrder, price: float | None) -> FakeOrder:
    """The stop of a group fires at ``price``: it fills (through a replacement order of a new id
    with ``stop_replacement``), and the take-profit beside it turns ``replaced``."""
    executing = stop
    if fake.stop_replacement:
        executing = replacement(stop, fake.clock.now())
        if executing.parent is None:  # a lone stop's replacement is an order of its own
            fake.orders.append(executing)
        fake.emit("replaced", stop)
    run_execution(fake, executing, price if price is not None else stop.stop_price, None)
    return executing


def settle_cancels(fake: FakeAlpaca, count: int | None) -> None:
    for done in finish_cancels(fake.all_orders(), fake.clock.now(), count):
        fake.emit("canceled", done)


def run_execution(fake: FakeAlpaca, order: FakeOrder, price: float | None, qty: float | None) -> None:
    if not can_execute(order):
        raise AssertionError(f"order {order.client_order_id} is {order.status}: it cannot fill")
    price = price if price is not None else (order.limit_price or fake.last_price(order.symbol))
    qty = order.remaining if qty is None else min(qty, order.remaining)
    row, events = execute(order, qty, price, fake.clock.now())
    signed, cash = settle(fake, order, qty, price)  # a crypto fee comes out of what is received
    position = fake.positions.get(order.symbol)
    if position is None:
        fake.positions[order.symbol] = FakePosition(order.symbol, signed, price)
    else:
        new_qty = round(position.qty + signed, 9)
        if abs(new_qty) < 1e-12:
            del fake.positions[order.symbol]
        else:
            if (position.qty > 0) == (signed > 0):  # adding to the position
                position.avg_entry_price = (
                    position.avg_entry_price * position.qty + price * signed
                ) / new_qty
            elif (new_qty > 0) != (position.qty > 0):  # through zero: the rest opened the other side
                position.avg_entry_price = price
            position.qty = new_qty
    fake.cash += cash
    fake.add_activity(row)
    fake.emit("fill" if order.status == "filled" else "partial_fill", order, qty=qty, price=price)
    for event, other in events:
        fake.emit(event, other)
