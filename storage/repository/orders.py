"""Orders (written before the broker sees them) and the fills that come back, each fill once."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session, col, func, select

from bot.domain import ExitReason, Fill, Order, OrderStatus, OrderType, Side
from bot.views import Page
from storage.models import FillRow, OrderRow
from storage.repository._times import aware, utc


def _order(row: OrderRow) -> Order:
    return Order(
        client_order_id=row.client_order_id,
        symbol=row.symbol,
        side=Side(row.side),
        qty=row.qty,
        status=OrderStatus(row.status),
        order_type=OrderType(row.order_type),
        broker_order_id=row.broker_order_id,
        limit_price=row.limit_price,
        stop_loss=row.stop_loss,
        take_profit=row.take_profit,
        filled_qty=row.filled_qty,
        filled_avg_price=row.filled_avg_price,
        strategy=row.strategy,
        reason=row.reason,
        exit_reason=ExitReason(row.exit_reason) if row.exit_reason else None,
        created_at=aware(row.created_at),
        updated_at=aware(row.updated_at),
        error=row.error,
    )


def _order_row(session: Session, client_order_id: str) -> OrderRow | None:
    return session.exec(select(OrderRow).where(OrderRow.client_order_id == client_order_id)).first()


def get_order(session: Session, client_order_id: str) -> Order | None:
    row = _order_row(session, client_order_id)
    return None if row is None else _order(row)


def save_order(session: Session, order: Order, now: datetime) -> None:
    """Insert the order, or update the row with the same client order id."""
    row = _order_row(session, order.client_order_id)
    fields: dict[str, Any] = {
        "broker_order_id": order.broker_order_id,
        "symbol": order.symbol,
        "side": order.side.value,
        "qty": order.qty,
        "order_type": order.order_type.value,
        "limit_price": order.limit_price,
        "stop_loss": order.stop_loss,
        "take_profit": order.take_profit,
        "status": order.status.value,
        "filled_qty": order.filled_qty,
        "filled_avg_price": order.filled_avg_price,
        "strategy": order.strategy,
        "reason": order.reason,
        "exit_reason": order.exit_reason.value if order.exit_reason else None,
        "error": order.error,
        "updated_at": utc(now),
    }
    if row is None:
        row = OrderRow(
            client_order_id=order.client_order_id, created_at=utc(order.created_at or now), **fields
        )
    else:
        for key, value in fields.items():
            setattr(row, key, value)
    session.add(row)


def list_orders(session: Session, *, open_only: bool = False, limit: int = 50) -> list[Order]:
    query = select(OrderRow).order_by(col(OrderRow.id).desc()).limit(limit)
    if open_only:
        open_values = [s.value for s in OrderStatus if s.is_open]
        query = query.where(col(OrderRow.status).in_(open_values))
    return [_order(row) for row in session.exec(query)]


def order_page(
    session: Session,
    *,
    limit: int,
    before: int | None = None,
    open_only: bool = False,
    symbol: str | None = None,
    side: str | None = None,
    status: str | None = None,
    strategy: str | None = None,
) -> Page[Order]:
    """One page of orders, newest (highest id) first, filtered in the query: it reads the page's
    rows through an index (``id``, or ``(symbol, id)``, ``(strategy, id)``, ``status``), never
    the whole history. ``before``: only orders older than that id (the previous page's cursor)."""
    query = select(OrderRow).order_by(col(OrderRow.id).desc()).limit(limit + 1)
    if before is not None:
        query = query.where(col(OrderRow.id) < before)
    if open_only:
        query = query.where(col(OrderRow.status).in_([s.value for s in OrderStatus if s.is_open]))
    if symbol:
        query = query.where(OrderRow.symbol == symbol.strip().upper())
    if side:
        query = query.where(OrderRow.side == side.strip().lower())
    if status:
        query = query.where(OrderRow.status == status.strip().lower())
    if strategy:
        query = query.where(OrderRow.strategy == strategy.strip())
    rows = list(session.exec(query))
    more = len(rows) > limit
    rows = rows[:limit]
    return Page([_order(row) for row in rows], rows[-1].id if more else None)


def has_fill(session: Session, fill_id: str) -> bool:
    return session.exec(select(FillRow.id).where(FillRow.fill_id == fill_id)).first() is not None


def add_fill(session: Session, fill: Fill) -> None:
    session.add(
        FillRow(
            fill_id=fill.fill_id,
            client_order_id=fill.client_order_id,
            symbol=fill.symbol,
            side=fill.side.value,
            qty=fill.qty,
            price=fill.price,
            commission=fill.commission,
            exit_reason=fill.exit_reason.value if fill.exit_reason else None,
            time=utc(fill.time),
        )
    )


def count_fills(session: Session) -> int:
    return session.exec(select(func.count()).select_from(FillRow)).one()


def fills_resume_point(session: Session) -> datetime | None:
    """Where the broker's fills must be read back from after a restart: the time of the last fill
    on record, or the creation of the oldest order still open if that is earlier (None: neither)."""
    last_fill = session.exec(select(func.max(FillRow.time))).one()
    open_values = [s.value for s in OrderStatus if s.is_open]
    oldest_open = session.exec(
        select(func.min(OrderRow.created_at)).where(col(OrderRow.status).in_(open_values))
    ).one()
    known = [aware(t) for t in (last_fill, oldest_open) if t is not None]
    return min(known) if known else None  # type: ignore[type-var]
