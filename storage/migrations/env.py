"""Alembic's entry point, driven by ``storage.migrate`` (no alembic.ini: the configuration is built in code).

``storage.migrate`` passes an open connection in ``config.attributes["connection"]``, already inside
a transaction that holds the migration lock, so a whole upgrade commits or rolls back as one. Run
from the ``alembic`` command line instead, it opens its own engine from ``sqlalchemy.url``.
"""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

from storage import models  # noqa: F401  (registers every table on SQLModel.metadata)

config = context.config
target_metadata = SQLModel.metadata


def _render_item(kind: str, obj: Any, _context: Any) -> str | Literal[False]:
    """Write SQLModel's column types as plain SQLAlchemy ones, so revisions need no sqlmodel import."""
    if kind == "type":
        name = type(obj).__name__
        if name == "AutoString":
            return f"sa.String(length={obj.length})" if obj.length else "sa.String()"
        if name == "UTCDateTime":
            return "sa.DateTime(timezone=True)"
    return False


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        render_item=_render_item,
        # SQLite cannot ALTER most things: later revisions rebuild tables ("batch" mode).
        render_as_batch=connection.dialect.name == "sqlite",
    )


def run_offline() -> None:
    """``--sql``: print the SQL instead of running it (for a DBA to review)."""
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    from storage.db import make_engine

    engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
    try:
        with engine.connect() as connection:
            _configure(connection)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
