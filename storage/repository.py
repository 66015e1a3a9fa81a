"""Rows <-> domain types. Every function takes the session explicitly; none commits."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlmodel import Session, col, delete, func, select

from bot.domain import (
    Event,
    EventKind,
    ExitReason,
    Fill,
    Order,
    OrderStatus,
    OrderType,
    Position,
    Severity,
    Side,
    Signal,
    Trade,
)
from bot.views import SignalRecord
from storage.models import (
    EquitySnapshotRow,
    EventRow,
    FeedCursorRow,
    FillRow,
    OrderRow,
    PositionRow,
    SettingRow,
    SignalRow,
    TradeRow,
)


def utc(when: datetime) -> datetime:
    """Aware UTC, as stored (a naive value is taken to be UTC already)."""
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def aware(when: datetime | None) -> datetime | None:
    """Rows read back from databases without time zones come naive: they hold UTC."""
    return None if when is None else utc(when)


# --- settings ---


def get_setting(session: Session, key: str, default: Any = None) -> Any:
    row = session.get(SettingRow, key)
    return default if row is None else json.loads(row.value)


def set_setting(session: Session, key: str, value: Any) -> None:
    row = session.get(SettingRow, key)
    if row is None:
        session.add(SettingRow(key=key, value=json.dumps(value)))
    else:
        row.value = json.dumps(value)
        session.add(row)


# --- orders ---


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


# --- fills ---


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


# --- positions ---


def _position(row: PositionRow) -> Position:
    return Position(
        symbol=row.symbol,
        qty=row.qty,
        avg_price=row.avg_price,
        market_price=row.last_price,
        stop_loss=row.stop_loss,
        take_profit=row.take_profit,
        strategy=row.strategy,
        opened_at=aware(row.opened_at),
    )


def get_position(session: Session, symbol: str) -> Position | None:
    row = session.get(PositionRow, symbol)
    return None if row is None else _position(row)


def position_commission(session: Session, symbol: str) -> float:
    row = session.get(PositionRow, symbol)
    return 0.0 if row is None else row.commission


def list_positions(session: Session) -> list[Position]:
    return [_position(row) for row in session.exec(select(PositionRow).order_by(PositionRow.symbol))]


def save_position(session: Session, position: Position, commission: float = 0.0) -> None:
    row = session.get(PositionRow, position.symbol)
    if row is None:
        row = PositionRow(
            symbol=position.symbol, qty=0, avg_price=0, opened_at=utc(position.opened_at or datetime.now(UTC))
        )
    row.qty = position.qty
    row.avg_price = position.avg_price
    row.stop_loss = position.stop_loss
    row.take_profit = position.take_profit
    row.strategy = position.strategy
    row.last_price = position.market_price
    row.commission = commission
    if position.opened_at is not None:
        row.opened_at = utc(position.opened_at)
    session.add(row)


def delete_position(session: Session, symbol: str) -> None:
    session.exec(delete(PositionRow).where(col(PositionRow.symbol) == symbol))


def mark_price(session: Session, symbol: str, price: float) -> None:
    row = session.get(PositionRow, symbol)
    if row is not None:
        row.last_price = price
        session.add(row)


# --- trades ---


def add_trade(session: Session, trade: Trade) -> None:
    session.add(
        TradeRow(
            symbol=trade.symbol,
            strategy=trade.strategy,
            qty=trade.qty,
            entry_time=utc(trade.entry_time),
            entry_price=trade.entry_price,
            exit_time=utc(trade.exit_time),
            exit_price=trade.exit_price,
            pnl=trade.pnl,
            commission=trade.commission,
            exit_reason=trade.exit_reason,
        )
    )


def list_trades(session: Session, *, limit: int | None = None, since: datetime | None = None) -> list[Trade]:
    """Newest first."""
    query = select(TradeRow).order_by(col(TradeRow.exit_time).desc(), col(TradeRow.id).desc())
    if since is not None:
        query = query.where(TradeRow.exit_time >= utc(since))
    if limit is not None:
        query = query.limit(limit)
    return [
        Trade(
            symbol=r.symbol,
            strategy=r.strategy,
            qty=r.qty,
            entry_time=aware(r.entry_time),  # type: ignore[arg-type]
            entry_price=r.entry_price,
            exit_time=aware(r.exit_time),  # type: ignore[arg-type]
            exit_price=r.exit_price,
            pnl=r.pnl,
            exit_reason=r.exit_reason,
            commission=r.commission,
        )
        for r in session.exec(query)
    ]


# --- equity ---


def add_equity_snapshot(session: Session, when: datetime, equity: float, cash: float) -> None:
    session.add(EquitySnapshotRow(time=utc(when), equity=equity, cash=cash))


def equity_curve(session: Session, since: datetime | None = None) -> list[tuple[datetime, float]]:
    query = select(EquitySnapshotRow.time, EquitySnapshotRow.equity).order_by(col(EquitySnapshotRow.time))
    if since is not None:
        query = query.where(EquitySnapshotRow.time >= utc(since))
    return [(aware(t), e) for t, e in session.exec(query)]  # type: ignore[misc]


def first_equity_since(session: Session, since: datetime) -> float | None:
    query = (
        select(EquitySnapshotRow.equity)
        .where(EquitySnapshotRow.time >= utc(since))
        .order_by(col(EquitySnapshotRow.time))
        .limit(1)
    )
    return session.exec(query).first()


def last_equity_before(session: Session, before: datetime) -> float | None:
    query = (
        select(EquitySnapshotRow.equity)
        .where(EquitySnapshotRow.time < utc(before))
        .order_by(col(EquitySnapshotRow.time).desc())
        .limit(1)
    )
    return session.exec(query).first()


# --- signals ---


def add_signal(session: Session, signal: Signal, outcome: str, now: datetime) -> None:
    session.add(
        SignalRow(
            strategy=signal.strategy,
            symbol=signal.symbol,
            side=signal.side.value,
            bar_time=utc(signal.bar_time),
            price=signal.price,
            reason=signal.reason,
            outcome=outcome,
            created_at=utc(now),
        )
    )


def recent_signals(session: Session, limit: int = 100) -> list[SignalRecord]:
    query = select(SignalRow).order_by(col(SignalRow.id).desc()).limit(limit)
    return [
        SignalRecord(
            strategy=row.strategy,
            symbol=row.symbol,
            side=row.side,
            bar_time=aware(row.bar_time),  # type: ignore[arg-type]
            price=row.price,
            outcome=row.outcome,
            created_at=aware(row.created_at),  # type: ignore[arg-type]
        )
        for row in session.exec(query)
    ]


# --- events (audit log and alert outbox) ---


def _event(row: EventRow) -> Event:
    return Event(
        kind=EventKind(row.kind),
        message=row.message,
        time=aware(row.time),  # type: ignore[arg-type]
        severity=Severity(row.severity),
        symbol=row.symbol,
        data=json.loads(row.data or "{}"),
        id=row.id,
    )


def add_event(session: Session, event: Event) -> Event:
    """Insert an event. Ids are handed out in commit order, so a feed reading "after id N" never
    skips an event that commits late: on Postgres (where sequence values are taken before commit)
    event writers queue on a transaction-scoped advisory lock; SQLite has one writer at a time."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(hashtext('tradebot-events'))"))
    row = EventRow(
        time=utc(event.time),
        kind=event.kind.value,
        severity=event.severity.value,
        symbol=event.symbol,
        message=event.message,
        data=json.dumps(event.data, default=str),
    )
    session.add(row)
    session.flush()
    return _event(row)


def events_after(session: Session, after_id: int, limit: int = 100) -> list[Event]:
    query = select(EventRow).where(col(EventRow.id) > after_id).order_by(col(EventRow.id)).limit(limit)
    return [_event(row) for row in session.exec(query)]


def recent_events(session: Session, limit: int = 20, kind: EventKind | None = None) -> list[Event]:
    query = select(EventRow).order_by(col(EventRow.id).desc()).limit(limit)
    if kind is not None:
        query = query.where(EventRow.kind == kind.value)
    return [_event(row) for row in session.exec(query)]


def count_events(session: Session, kind: EventKind, since: datetime) -> int:
    query = (
        select(func.count())
        .select_from(EventRow)
        .where(EventRow.kind == kind.value, EventRow.time >= utc(since))
    )
    return session.exec(query).one()


def latest_event_id(session: Session) -> int:
    """The newest event's id (0: no events yet)."""
    return session.exec(select(func.max(EventRow.id))).one() or 0


# --- event feed cursors ---


def get_cursor(session: Session, consumer: str) -> int | None:
    row = session.get(FeedCursorRow, consumer)
    return None if row is None else row.event_id


def list_cursors(session: Session, prefix: str = "") -> dict[str, int]:
    query = select(FeedCursorRow)
    if prefix:
        query = query.where(col(FeedCursorRow.consumer).startswith(prefix))
    return {row.consumer: row.event_id for row in session.exec(query)}


def advance_cursor(session: Session, consumer: str, event_id: int, now: datetime) -> bool:
    """Move ``consumer``'s cursor forward to ``event_id``; never back. True if it moved."""
    row = session.get(FeedCursorRow, consumer)
    if row is None:
        session.add(FeedCursorRow(consumer=consumer, event_id=event_id, updated_at=utc(now)))
        return True
    if row.event_id >= event_id:
        return False
    row.event_id = event_id
    row.updated_at = utc(now)
    session.add(row)
    return True
