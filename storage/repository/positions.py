"""Open positions and the closed trades they became."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from sqlalchemy import bindparam, update
from sqlmodel import Session, col, delete, select

from bot.domain import Position, Trade
from storage.models import PositionRow, TradeRow
from storage.repository._times import aware, utc


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


def mark_prices(session: Session, prices: Mapping[str, float]) -> None:
    """Each held position's last price, in one statement (the engine marks every position after
    every fill); a symbol with no position is left alone."""
    if not prices:
        return
    session.flush()  # positions added in this session are rows before the update
    table = PositionRow.__table__  # type: ignore[attr-defined]
    statement = (
        update(table).where(table.c.symbol == bindparam("b_symbol")).values(last_price=bindparam("b_price"))
    )
    session.execute(statement, [{"b_symbol": symbol, "b_price": price} for symbol, price in prices.items()])


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
