"""history indexes: every read the API pages through walks an index in its own order

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

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

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
    for table, (added, replaced) in CHANGES.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for name, columns in added.items():
                batch_op.create_index(name, columns, unique=False)
            for name in replaced:
                batch_op.drop_index(name)


def downgrade() -> None:
    for table, (added, replaced) in CHANGES.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for name, columns in replaced.items():
                batch_op.create_index(name, columns, unique=False)
            for name in added:
                batch_op.drop_index(name)
