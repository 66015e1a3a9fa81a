"""simulated exchange: one row per execution (sim_fills), so an order can fill in parts

Until now the simulated exchange filled every order in one execution and reported it from the
order's row (``sim_orders.reported``). Executions move to ``sim_fills``, each reported until the
client acknowledges it; ``sim_orders.reported`` now says only whether the order's latest status
was reported. Orders already filled become one execution each, under the fill id the client
already knows them by (``sim-<client order id>``), acknowledged if they had been reported.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sim_fills",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("fill_id", sa.String(length=200), nullable=False),
        sa.Column("client_order_id", sa.String(length=128), nullable=False),
        sa.Column("qty", sa.Float(), nullable=False),
        sa.Column("price", sa.Float(), nullable=False),
        sa.Column("commission", sa.Float(), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("acknowledged", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("sim_fills", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sim_fills_fill_id"), ["fill_id"], unique=True)
        batch_op.create_index(batch_op.f("ix_sim_fills_client_order_id"), ["client_order_id"], unique=False)
    op.execute(
        "INSERT INTO sim_fills (fill_id, client_order_id, qty, price, commission, time, acknowledged) "
        "SELECT 'sim-' || client_order_id, client_order_id, filled_qty, filled_avg_price, commission, "
        "COALESCE(filled_at, submitted_at), reported FROM sim_orders "
        "WHERE status = 'filled' AND filled_avg_price IS NOT NULL"
    )


def downgrade() -> None:
    with op.batch_alter_table("sim_fills", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sim_fills_client_order_id"))
        batch_op.drop_index(batch_op.f("ix_sim_fills_fill_id"))
    op.drop_table("sim_fills")
