"""The settings store: small persistent state the service keeps in the ``settings`` table.

Whether trading is paused, the risk limits changed at run time (``/risk set``), when the last
cycle finished, and (through ``get``/``set``) the alert preferences and the daily summary's day. Every read goes to the database, so a restart, or a second process such as
``tradebot tick``, sees the same state.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from bot.risk import RiskLimits
from bot.views import Pause
from storage import repository as repo
from storage.db import Database

log = logging.getLogger(__name__)

PAUSED = "paused"
PAUSED_AT = "paused_at"
PAUSED_BY = "paused_by"
PAUSE_BLOCKED = "pause_blocked"  # entries blocked since the pause began
RISK_OVERRIDES = "risk_overrides"
LAST_TICK = "last_tick"


class SettingsStore:
    def __init__(self, db: Database, default_limits: RiskLimits) -> None:
        self.db = db
        self.default_limits = default_limits

    def paused(self) -> bool:
        with self.db.session() as s:
            return bool(repo.get_setting(s, PAUSED, False))

    def set_paused(self, paused: bool, at: datetime, by: str = "") -> None:
        with self.db.session() as s:
            repo.set_setting(s, PAUSED, paused)
            if paused:
                repo.set_setting(s, PAUSED_AT, at.isoformat())
                repo.set_setting(s, PAUSED_BY, by)
            repo.set_setting(s, PAUSE_BLOCKED, 0)

    def pause(self) -> Pause | None:
        """Who paused and when, and how many entries the pause has blocked; None when active."""
        with self.db.session() as s:
            if not repo.get_setting(s, PAUSED, False):
                return None
            since = repo.get_setting(s, PAUSED_AT)
            return Pause(
                since=datetime.fromisoformat(since) if since else None,
                by=repo.get_setting(s, PAUSED_BY, "") or "",
                blocked=int(repo.get_setting(s, PAUSE_BLOCKED, 0) or 0),
            )

    def count_blocked_while_paused(self) -> None:
        with self.db.session() as s:
            repo.set_setting(s, PAUSE_BLOCKED, int(repo.get_setting(s, PAUSE_BLOCKED, 0) or 0) + 1)

    def limits(self) -> RiskLimits:
        """The configured limits with the stored ``/risk set`` overrides applied."""
        with self.db.session() as s:
            overrides: dict[str, float] = repo.get_setting(s, RISK_OVERRIDES, {})
        limits = self.default_limits
        for name, value in overrides.items():
            try:
                limits = limits.with_value(name, value)
            except ValueError as exc:  # an override from an older version with other bounds
                log.warning("ignoring stored risk override %s=%s: %s", name, value, exc)
        return limits

    def override_limit(self, name: str, value: float) -> RiskLimits:
        """Change one limit within ``risk.BOUNDS`` and persist it. Raises ValueError with the reason."""
        limits = self.limits().with_value(name, value)
        key = name.strip().lower()
        with self.db.session() as s:
            overrides = repo.get_setting(s, RISK_OVERRIDES, {})
            overrides[key] = getattr(limits, key)
            repo.set_setting(s, RISK_OVERRIDES, overrides)
        return limits

    def last_tick(self) -> datetime | None:
        with self.db.session() as s:
            text = repo.get_setting(s, LAST_TICK)
        return datetime.fromisoformat(text) if text else None

    def set_last_tick(self, when: datetime) -> None:
        with self.db.session() as s:
            repo.set_setting(s, LAST_TICK, when.isoformat())

    def get(self, key: str, default: Any = None) -> Any:
        """A JSON value stored under ``key``."""
        with self.db.session() as s:
            return repo.get_setting(s, key, default)

    def set(self, key: str, value: Any) -> None:
        with self.db.session() as s:
            repo.set_setting(s, key, value)
