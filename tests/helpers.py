"""Builders shared by the core tests: a real app on a temporary SQLite file and a hand-moved clock.

The app holds the trading lease, as ``tradebot run`` does once it is the active instance: every
order the tests place goes through the lease check (``bot/lease.py``) like a real one.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import update

from bot.app import App, build_app
from bot.clock import ManualClock
from bot.config import Settings

START = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)


def settings_for(db_path: Path, **overrides: str) -> Settings:
    # A long lease: a slow test on a loaded machine must not lose it between two orders.
    env = {"DATABASE_URL": f"sqlite:///{db_path}", "LOG_LEVEL": "WARNING", "TRADEBOT_LEASE_SECONDS": "600"}
    env.update(overrides)
    return Settings.from_mapping(env)


def make_app(db_path: Path, clock: ManualClock | None = None, **overrides: str) -> tuple[App, ManualClock]:
    clock = clock or ManualClock(START)
    return take_lease(build_app(settings_for(db_path, **overrides), accelerate=False, clock=clock)), clock


def take_lease(app: App) -> App:
    """Make ``app`` the trading instance, taking over from any earlier app on the same database
    (as after a crash long ago: its lease has run out)."""
    from storage.models import LeaseRow

    with app.db.engine.begin() as connection:
        connection.execute(update(LeaseRow.__table__).values(expires_at=0))
    if not app.lease.try_acquire():
        raise AssertionError(f"could not take the trading lease: {app.lease.describe()}")
    return app
