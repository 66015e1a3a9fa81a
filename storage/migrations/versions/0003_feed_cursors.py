"""event feed cursors: one row per consumer, in place of JSON in the settings table

Moves what the Telegram alerts kept in settings rows to transport-neutral places: the per-chat
cursors (``telegram.alert_cursors``) to ``feed_cursors`` rows named ``telegram:<chat id>``, the
alert groups (``telegram.alerts``) to ``alerts``, and the daily summary's last day
(``telegram.daily_summary_last``) to ``daily_summary.last``.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_CURSORS = "telegram.alert_cursors"
RENAMED = {"telegram.alerts": "alerts", "telegram.daily_summary_last": "daily_summary.last"}

settings = sa.table("settings", sa.column("key", sa.String()), sa.column("value", sa.String()))
cursors = sa.table(
    "feed_cursors",
    sa.column("consumer", sa.String()),
    sa.column("event_id", sa.Integer()),
    sa.column("updated_at", sa.DateTime(timezone=True)),
)


def upgrade() -> None:
    op.create_table(
        "feed_cursors",
        sa.Column("consumer", sa.String(length=100), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("consumer"),
    )
    connection = op.get_bind()
    stored = connection.execute(sa.select(settings.c.value).where(settings.c.key == OLD_CURSORS)).scalar()
    if stored:
        now = datetime.now(UTC)
        rows = [
            {"consumer": f"telegram:{int(chat)}", "event_id": int(last), "updated_at": now}
            for chat, last in json.loads(stored).items()
        ]
        if rows:
            connection.execute(sa.insert(cursors), rows)
        connection.execute(sa.delete(settings).where(settings.c.key == OLD_CURSORS))
    for old, new in RENAMED.items():
        connection.execute(sa.update(settings).where(settings.c.key == old).values(key=new))


def downgrade() -> None:
    connection = op.get_bind()
    for old, new in RENAMED.items():
        connection.execute(sa.update(settings).where(settings.c.key == new).values(key=old))
    stored = {
        consumer.split(":", 1)[1]: event_id
        for consumer, event_id in connection.execute(sa.select(cursors.c.consumer, cursors.c.event_id))
        if consumer.startswith("telegram:")
    }
    if stored:
        connection.execute(sa.insert(settings).values(key=OLD_CURSORS, value=json.dumps(stored)))
    op.drop_table("feed_cursors")
