"""alpaca-py objects and Alpaca's JSON turned into tradebot's domain types (no I/O here).

Every alpaca-py type stops at this package: the service sees ``Order``, ``Fill``, ``Position``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from alpaca.trading.enums import OrderClass
from alpaca.trading.enums import OrderSide as AlpacaSide
from alpaca.trading.enums import OrderStatus as AlpacaStatus
from alpaca.trading.enums import OrderType as AlpacaOrderType

from bot.domain import ExitReason, Fill, Order, OrderIntent, OrderStatus, OrderType, Side

CRYPTO_QUOTES = ("USDT", "USDC", "USD", "BTC")

STATUS = {
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
STOP_TYPES = {AlpacaOrderType.STOP, AlpacaOrderType.STOP_LIMIT, AlpacaOrderType.TRAILING_STOP}
LEG_CLASSES = (OrderClass.BRACKET, OrderClass.OCO, OrderClass.OTO)


def status(order: Any) -> OrderStatus:
    """Alpaca's status in tradebot's words. ``calculated`` ("completed for the day ..., settlement
    calculations still pending", orders.md) reads as what filled: a filled order never turns back
    to open; ``held`` (a bracket's waiting stop) is open: it still protects."""
    if order.status == AlpacaStatus.CALCULATED:
        qty, filled = as_float(order.qty) or 0.0, as_float(order.filled_qty) or 0.0
        if qty > 0 and filled >= qty - 1e-9:
            return OrderStatus.FILLED
        return OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.ACCEPTED
    return STATUS.get(order.status, OrderStatus.ACCEPTED)


def is_open(order: Any) -> bool:
    return status(order).is_open


def as_float(value: Any) -> float | None:
    if value is None or value == "":
        return None
    return float(value)


def qty_key(qty: float) -> str:
    return f"{qty:.9f}".rstrip("0").rstrip(".")


def fill_id(order_id: str, cum_qty: float) -> str:
    """One id per execution, the same whether seen in account activities or the trading stream:
    the order and its cumulative filled quantity after that execution."""
    return f"alpaca-{order_id}-{qty_key(cum_qty)}"


def from_alpaca_symbol(symbol: str, *, crypto: bool | None = None) -> str:
    """Alpaca answers ``BTCUSD`` for crypto positions; tradebot writes ``BTC/USD``."""
    if "/" in symbol or crypto is False:
        return symbol
    if crypto:
        for quote in CRYPTO_QUOTES:
            if symbol.endswith(quote) and len(symbol) > len(quote):
                return f"{symbol[: -len(quote)]}/{quote}"
    return symbol


def asset_class_is_crypto(row: Any) -> bool | None:
    value = str(getattr(row.asset_class, "value", row.asset_class))
    return True if value == "crypto" else (False if value == "us_equity" else None)


def symbol_of(row: Any) -> str:
    return from_alpaca_symbol(str(row.symbol), crypto=asset_class_is_crypto(row))


def flatten(orders: Iterable[Any]) -> list[Any]:
    """Orders with their legs, each once (a nested listing rolls legs up under the parent)."""
    out: list[Any] = []
    seen: set[str] = set()
    for order in orders:
        for one in (order, *(order.legs or [])):
            if str(one.id) not in seen:
                seen.add(str(one.id))
                out.append(one)
    return out


def is_leg(order: Any) -> bool:
    """A bracket/OCO/OTO child: Alpaca generated its client id, we never sent it ourselves."""
    return order.order_class in LEG_CLASSES and not str(order.client_order_id).startswith("tb-")


def exit_reason_of(order: Any) -> ExitReason | None:
    """Stop and target legs, and tradebot's own protective orders, say why they filled."""
    coid = str(order.client_order_id)
    if order.type in STOP_TYPES or coid.endswith(("-sl", "-sl-mkt")):
        return ExitReason.STOP_LOSS
    is_target = order.type == AlpacaOrderType.LIMIT and (is_leg(order) or order.order_class == OrderClass.OCO)
    if is_target or coid.endswith("-tp"):
        return ExitReason.TAKE_PROFIT
    return None


def is_protective(order: Any) -> bool:
    return order.side == AlpacaSide.SELL and exit_reason_of(order) is not None


def to_order(order: Any, intent: OrderIntent | None = None) -> Order:
    legs = order.legs or []
    stop = next((as_float(leg.stop_price) for leg in legs if leg.type in STOP_TYPES), None)
    take = next((as_float(leg.limit_price) for leg in legs if leg.type == AlpacaOrderType.LIMIT), None)
    limit_entry = order.type == AlpacaOrderType.LIMIT and exit_reason_of(order) is None
    return Order(
        client_order_id=str(order.client_order_id),
        symbol=symbol_of(order),
        side=Side.BUY if order.side == AlpacaSide.BUY else Side.SELL,
        qty=as_float(order.qty) or 0.0,
        status=status(order),
        order_type=OrderType.LIMIT if limit_entry else OrderType.MARKET,
        broker_order_id=str(order.id),
        limit_price=as_float(order.limit_price),
        stop_loss=stop if stop is not None else (intent.stop_loss if intent else None),
        take_profit=take if take is not None else (intent.take_profit if intent else None),
        filled_qty=as_float(order.filled_qty) or 0.0,
        filled_avg_price=as_float(order.filled_avg_price),
        strategy=intent.strategy if intent else "manual",
        reason=intent.reason if intent else "",
        exit_reason=intent.exit_reason if intent else exit_reason_of(order),
        created_at=order.created_at,
        updated_at=order.updated_at,
    )


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(str(text).replace("Z", "+00:00"))


def activity_fill(row: dict[str, Any], coid: str, symbol: str, reason: ExitReason | None) -> Fill:
    """A FILL account activity: one execution, its own ``qty`` and ``price``, and ``cum_qty``
    (alpaca-docs ``data/webapi/entities/account-trade-activity-v2.yaml``)."""
    return Fill(
        fill_id=fill_id(str(row["order_id"]), float(row["cum_qty"])),
        client_order_id=coid,
        symbol=symbol,
        side=Side.BUY if row.get("side") == "buy" else Side.SELL,
        qty=float(row["qty"]),
        price=float(row["price"]),
        time=parse_time(str(row["transaction_time"])),
        exit_reason=reason,
    )


def asset_names(symbol: str) -> list[str]:
    """The names to ask ``GET /v2/assets/{name}`` for ``symbol``, in order. A pair's slash is a
    path separator in the URL (alpaca-py#537: ``/v2/positions/BTC/USD`` is a 404 where ``BTCUSD``
    answers), so a pair is asked by its compact legacy name first, then as written."""
    if "/" not in symbol:
        return [symbol]
    return [symbol.replace("/", ""), symbol]


def asset_is(asset: Any, symbol: str) -> bool:
    """Whether the asset Alpaca answered is ``symbol`` (a compact name must come back a crypto
    pair with the same letters, never some other instrument)."""
    answered = str(getattr(asset, "symbol", "") or "")
    if "/" not in symbol:
        return answered.upper() == symbol.upper()
    crypto = str(getattr(asset.asset_class, "value", asset.asset_class)) == "crypto"
    return crypto and answered.replace("/", "").upper() == symbol.replace("/", "").upper()
