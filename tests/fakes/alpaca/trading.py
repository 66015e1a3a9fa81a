"""The fake's trading API: what ``POST /v2/orders`` accepts and refuses, and the order listing.

Every refusal names its source; status codes and messages are Alpaca's where a source shows them.

- 422 ``40010001`` "client_order_id must be unique": a client id is never reused, even after the
  order was canceled (orders.md: "Each order has a unique identifier provided by the client").
  Longer than 48 characters: 422 (orders.yaml: ``client_order_id`` "string (<= 48 characters)";
  docs.alpaca.markets now says 128, so the fake keeps the stricter, older limit).
- 403 ``40310000`` "potential wash trade detected. use complex orders" while an opposite-side
  order on the symbol is open (forum.alpaca.markets threads 13817 and 18200; 422/42210000 in
  Petersoj/alpaca-java#145). Orders of the same bracket/OCO group do not conflict.
- 403 ``40310000`` "insufficient qty available for order (requested: X, available: Y)" for a
  stock sell beyond ``qty_available`` (Alpaca-API#90, QuantConnect/Lean#3875); crypto:
  "insufficient balance for BTC (requested: X, available: Y)" (issue 9's review; the wording
  is not in a public page). Shorting is off (``shorting_enabled: false``): a sell with no position
  is refused the same way (trading-api ``_index.md``, "Notes on Orders and Positions").
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
- ``GET /v2/orders``: ``status`` open/closed/all, ``nested`` (true: parents with their legs under
  ``legs``, each parent judged by its own status, so a bracket whose entry filled is not listed
  as open and its working legs cannot be reached through it; false: every order, legs included,
  on its own), ``limit`` at most 500, newest first (orders.yaml).
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from tests.fakes.alpaca.crypto import buy_refusal, settle
from tests.fakes.alpaca.orders import FakeOrder, cancel, execute

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
    """The position less what open (or held-for-nothing) sell orders hold; a group counts once."""
    position = fake.positions.get(symbol)
    held = position.qty if position else 0.0
    counted: set[str] = set()
    for order in fake.all_orders():
        top = order.parent or order
        if order.symbol != symbol or order.side != "sell" or not order.is_open or top.id in counted:
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
    # wash trades: an open order on the other side (orders of one group do not count)
    for other in fake.all_orders():
        if other.symbol == symbol and other.is_open and other.side != side:
            return _err(403, 40310000, "potential wash trade detected. use complex orders")
    if side == "sell":
        available = qty_available(fake, symbol)
        if qty > available + 1e-12:
            if crypto:
                base_ccy = symbol.split("/")[0]
                return _err(
                    403,
                    40310000,
                    f"insufficient balance for {base_ccy} (requested: {qty:g}, available: {available:g})",
                )
            return _err(
                403,
                40310000,
                f"insufficient qty available for order (requested: {qty:g}, available: {available:g})",
            )
    elif refusal := buy_refusal(fake, symbol, qty, float(body.get("limit_price") or market)):
        return refusal
    return 200, _create(fake, body, coid, qty, order_class, take, stop)


def _create(
    fake: FakeAlpaca, body: dict[str, Any], coid: str, qty: float, order_class: str, take: dict, stop: dict
) -> FakeOrder:
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
        leg.status = "new" if order_class == "oco" else "held"
    order.legs = legs
    fake.orders.append(order)
    fake.emit("new", order)
    if fake.auto_fill and order.type == "market" and not waiting:
        fake.execute(order, None, fake.fill_step)
    return order


def list_orders(fake: FakeAlpaca, query: dict[str, str]) -> Answer:
    status = query.get("status", "open")
    nested = query.get("nested", "false").lower() == "true"
    limit = min(int(query.get("limit", "50")), 500)
    symbols = {s.replace("/", "") for s in query["symbols"].split(",")} if query.get("symbols") else None
    source = fake.orders if nested else fake.all_orders()
    picked = []
    for order in sorted(source, key=lambda o: o.created_at, reverse=query.get("direction", "desc") == "desc"):
        if status == "open" and not order.is_open:
            continue
        if status == "closed" and order.is_live:
            continue
        if symbols and order.symbol.replace("/", "") not in symbols:
            continue
        picked.append(order.to_json(nested=nested))
    return 200, picked[:limit]


def cancel_order(fake: FakeAlpaca, order_id: str) -> Answer:
    for order in fake.all_orders():
        if order.id == order_id:
            if not order.is_live:
                return _err(422, 42210000, f'order is already in "{order.status}" state')
            for done in cancel(order, fake.clock.now()):
                fake.emit("canceled", done)
            return 204, None
    return _err(404, 40410000, "order not found")


def run_execution(fake: FakeAlpaca, order: FakeOrder, price: float | None, qty: float | None) -> None:
    price = price if price is not None else (order.limit_price or fake.last_price(order.symbol))
    qty = order.remaining if qty is None else min(qty, order.remaining)
    row = execute(order, qty, price, fake.clock.now())
    signed, cash = settle(fake, order, qty, price)  # a crypto fee comes out of what is received
    position = fake.positions.get(order.symbol)
    if position is None:
        from tests.fakes.alpaca.orders import FakePosition

        fake.positions[order.symbol] = FakePosition(order.symbol, signed, price)
    else:
        new_qty = round(position.qty + signed, 9)
        if abs(new_qty) < 1e-12:
            del fake.positions[order.symbol]
        else:
            if (position.qty > 0) == (signed > 0):
                position.avg_entry_price = (
                    position.avg_entry_price * position.qty + price * signed
                ) / new_qty
            position.qty = new_qty
    fake.cash += cash
    fake.add_activity(row)
    fake.emit("fill" if order.status == "filled" else "partial_fill", order, qty=qty, price=price)
