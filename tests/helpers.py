"""Builders shared by the core tests: a real app on a temporary SQLite file and a hand-moved clock."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from bot.app import App, build_app
from bot.clock import ManualClock
from bot.config import Settings

START = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)


def settings_for(db_path: Path, **overrides: str) -> Settings:
    env = {"DATABASE_URL": f"sqlite:///{db_path}", "LOG_LEVEL": "WARNING"}
    env.update(overrides)
    return Settings.from_mapping(env)


def make_app(db_path: Path, clock: ManualClock | None = None, **overrides: str) -> tuple[App, ManualClock]:
    clock = clock or ManualClock(START)
    return build_app(settings_for(db_path, **overrides), accelerate=False, clock=clock), clock
