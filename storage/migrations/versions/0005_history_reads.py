"""history reads: indexes in the order the API reads, and running totals for /pnl

A year of trading (100,000 trades, 200,000 orders, 400,000 events) made each read cost what the
history holds (issue 19, section 6). Each list the API shows newest first, filtered or not, now
has an index in exactly that order, so a page reads its own rows and stops:

- orders by ``id`` within a symbol or a strategy (``status`` keeps its own index; the ``id``
  order is the primary key);
- trades by ``(exit_time, id)``, alone and within a symbol or a strategy (the cursor of the
  trades list is that pair);
- events by ``id`` within a kind, and by ``time`` within a kind (how many risk blocks today);
- fills by ``time`` (where the broker's fills are read back from after a restart).

The single-column indexes these begin with (``orders.symbol``, ``trades.symbol``,
``trades.strategy``, ``trades.exit_time``, ``events.kind``) are dropped: the composite ones
serve every query they served.

Two tables of running totals spare /pnl from reading every trade and every equity snapshot:
``trade_totals`` (per strategy: trades, wins, P&L) and ``equity_totals`` (one row: first and last
point, peak, deepest drawdown, the returns' count, mean and spreads); ``equity_days`` keeps each
UTC day's first, last and highest equity, so /equity draws a year as 365 points and the last
days in full; ``trade_days`` each UTC day's closed trades, wins and P&L, for /profit. They are created empty and
filled from the trades and snapshots when the bot starts (``storage.repository.totals``), which
checks them against the books at every start.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# table -> (new composite indexes: name -> columns), (single-column indexes they replace)
CHANGES: dict[str, tuple[dict[str, list[str]], dict[str, list[str]]]] = {
    "orders": (
        {"ix_orders_symbol_id": ["symbol", "id"], "ix_orders_strategy_id": ["strategy", "id"]},
        {"ix_orders_symbol": ["symbol"]},
    ),
    "trades": (
        {
            "ix_trades_exit_time_id": ["exit_time", "id"],
            "ix_trades_symbol_exit_time_id": ["symbol", "exit_time", "id"],
            "ix_trades_strategy_exit_time_id": ["strategy", "exit_time", "id"],
        },
        {
            "ix_trades_symbol": ["symbol"],
            "ix_trades_strategy": ["strategy"],
            "ix_trades_exit_time": ["exit_time"],
        },
    ),
    "events": (
        {"ix_events_kind_id": ["kind", "id"], "ix_events_kind_time": ["kind", "time"]},
        {"ix_events_kind": ["kind"]},
    ),
    "fills": ({"ix_fills_time": ["time"]}, {}),
}


def upgrade() -> None:
    op.create_table(
        "equity_days",
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("open_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("open", sa.Float(), nullable=False),
        sa.Column("close_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("close", sa.Float(), nullable=False),
        sa.Column("high", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("day"),
    )
    op.create_table(
        "trade_days",
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("trades", sa.Integer(), nullable=False),
        sa.Column("wins", sa.Integer(), nullable=False),
        sa.Column("pnl", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("day"),
    )
    op.create_table(
        "trade_totals",
        sa.Column("strategy", sa.String(length=200), nullable=False),
        sa.Column("trades", sa.Integer(), nullable=False),
        sa.Column("wins", sa.Integer(), nullable=False),
        sa.Column("pnl", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("strategy"),
    )
    op.create_table(
        "equity_totals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("snapshots", sa.Integer(), nullable=False),
        sa.Column("first_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("first_equity", sa.Float(), nullable=True),
        sa.Column("last_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_equity", sa.Float(), nullable=True),
        sa.Column("peak", sa.Float(), nullable=True),
        sa.Column("max_drawdown_pct", sa.Float(), nullable=False),
        sa.Column("returns", sa.Integer(), nullable=False),
        sa.Column("mean_return", sa.Float(), nullable=False),
        sa.Column("m2_return", sa.Float(), nullable=False),
        sa.Column("down2_return", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    for table, (added, replaced) in CHANGES.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for name, columns in added.items():
                batch_op.create_index(name, columns, unique=False)
            for name in replaced:
                batch_op.drop_index(name)


def downgrade() -> None:
    op.drop_table("trade_days")
    op.drop_table("equity_days")
    op.drop_table("equity_totals")
    op.drop_table("trade_totals")
    for table, (added, replaced) in CHANGES.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for name, columns in replaced.items():
                batch_op.create_index(name, columns, unique=False)
            for name in added:
                batch_op.drop_index(name)
