"""Open positions and the closed trades they became."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from sqlalchemy import bindparam, tuple_, update
from sqlmodel import Session, col, delete, select

from bot.domain import Position, Trade
from bot.views import Page
from storage.models import PositionRow, TradeRow
from storage.repository import totals
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
    totals.count_trade(session, trade.strategy, trade.pnl)  # same transaction: /pnl's running totals
    totals.count_trade_day(session, trade.exit_time, trade.pnl)  # and /profit's days


def _trade(r: TradeRow) -> Trade:
    return Trade(
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


def _newest_first() -> tuple[object, object]:
    return col(TradeRow.exit_time).desc(), col(TradeRow.id).desc()


def list_trades(session: Session, *, limit: int | None = None, since: datetime | None = None) -> list[Trade]:
    """Newest first."""
    query = select(TradeRow).order_by(*_newest_first())  # type: ignore[arg-type]
    if since is not None:
        query = query.where(TradeRow.exit_time >= utc(since))
    if limit is not None:
        query = query.limit(limit)
    return [_trade(r) for r in session.exec(query)]


class UnknownCursor(LookupError):
    """A ``before`` cursor that names no row (the message says which)."""


def trade_page(
    session: Session,
    *,
    limit: int,
    before: int | None = None,
    symbol: str | None = None,
    strategy: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    result: str | None = None,
) -> Page[Trade]:
    """One page of closed trades, newest first (by exit time, then id), filtered in the query and
    read through the ``(exit_time, id)`` indexes. ``before``: the id of the previous page's last
    trade; this page starts right after it in that order. ``result``: "win" (P&L above 0) or
    "loss" (the rest)."""
    query = select(TradeRow).order_by(*_newest_first()).limit(limit + 1)  # type: ignore[arg-type]
    if before is not None:
        anchor = session.get(TradeRow, before)
        if anchor is None:
            raise UnknownCursor(f"no trade {before} to continue from: start again without before=")
        query = query.where(
            tuple_(col(TradeRow.exit_time), col(TradeRow.id)) < tuple_(anchor.exit_time, anchor.id)
        )
    if symbol:
        query = query.where(TradeRow.symbol == symbol.strip().upper())
    if strategy:
        query = query.where(TradeRow.strategy == strategy.strip())
    if since is not None:
        query = query.where(TradeRow.exit_time >= utc(since))
    if until is not None:
        query = query.where(TradeRow.exit_time < utc(until))
    if result == "win":
        query = query.where(TradeRow.pnl > 0)
    elif result == "loss":
        query = query.where(TradeRow.pnl <= 0)
    rows = list(session.exec(query))
    more = len(rows) > limit
    rows = rows[:limit]
    return Page([_trade(r) for r in rows], rows[-1].id if more else None)
