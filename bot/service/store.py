"""The settings store: small persistent state the service keeps in the ``settings`` table.

Whether trading is paused, the risk limits changed at run time (``/risk set``, with who and
when; ``/risk reset`` drops them), when the last cycle finished, and (through ``get``/``set``)
the alert preferences and the daily summary's day. Every read goes to the database, so a
restart, or a second process such as ``tradebot tick``, sees the same state.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import fields
from datetime import datetime
from typing import Any

from bot.risk import RiskLimits
from bot.views import LimitOrigin, Pause
from storage import repository as repo
from storage.db import Database

log = logging.getLogger(__name__)

PAUSED = "paused"
PAUSED_AT = "paused_at"
PAUSED_BY = "paused_by"
PAUSE_BLOCKED = "pause_blocked"  # entries blocked since the pause began
RISK_OVERRIDES = "risk_overrides"
LAST_TICK = "last_tick"
# The simulated clock's state: {"simulated": ISO time, "wall": ISO time} read together, so the next
# process (`tradebot tick`, the next `run`) resumes where this one left it (bot/simaccount.py).
CLOCK_STATE = "sim_clock"


class SettingsStore:
    def __init__(
        self, db: Database, default_limits: RiskLimits, limit_sources: Mapping[str, str] | None = None
    ) -> None:
        self.db = db
        self.default_limits = default_limits  # as configured: environment, .env or default
        self.limit_sources = dict(limit_sources or {})  # limit name -> "default", ".env", "environment"

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

    def overrides(self) -> dict[str, dict[str, Any]]:
        """``{name: {"value", "by", "at"}}``; an older version stored the bare value."""
        with self.db.session() as s:
            stored: dict[str, Any] = repo.get_setting(s, RISK_OVERRIDES, {})
        return {
            name: entry if isinstance(entry, dict) else {"value": entry, "by": "", "at": None}
            for name, entry in stored.items()
        }

    def limits(self) -> RiskLimits:
        """The configured limits with the stored ``/risk set`` overrides applied."""
        limits = self.default_limits
        for name, entry in self.overrides().items():
            try:
                limits = limits.with_value(name, float(entry["value"]))
            except (ValueError, TypeError, KeyError) as exc:  # from an older version with other bounds
                log.warning("ignoring stored risk override %s=%s: %s", name, entry, exc)
        return limits

    def origins(self) -> dict[str, LimitOrigin]:
        """Where each limit in force came from: configuration, or an override (who, when)."""
        overrides = self.overrides()
        out = {}
        for f in fields(RiskLimits):
            name = f.name
            source = self.limit_sources.get(name, "default")
            configured = float(getattr(self.default_limits, name))
            entry = overrides.get(name)
            if entry is None:
                out[name] = LimitOrigin(source, configured)
            else:
                at = datetime.fromisoformat(entry["at"]) if entry.get("at") else None
                out[name] = LimitOrigin(source, configured, by=str(entry.get("by") or "someone"), at=at)
        return out

    def override_limit(self, name: str, value: float, by: str = "", at: datetime | None = None) -> RiskLimits:
        """Change one limit within ``risk.BOUNDS`` and persist it, with who and when. Raises
        ValueError with the reason."""
        limits = self.limits().with_value(name, value)
        key = name.strip().lower()
        with self.db.session() as s:
            overrides = repo.get_setting(s, RISK_OVERRIDES, {})
            overrides[key] = {"value": getattr(limits, key), "by": by, "at": at.isoformat() if at else None}
            repo.set_setting(s, RISK_OVERRIDES, overrides)
        return limits

    def reset_limits(self, names: Iterable[str] | None = None) -> list[str]:
        """Drop the overrides of ``names`` (None: all); returns the names that had one."""
        with self.db.session() as s:
            overrides = repo.get_setting(s, RISK_OVERRIDES, {})
            dropped = sorted(overrides if names is None else set(names) & set(overrides))
            for name in dropped:
                del overrides[name]
            repo.set_setting(s, RISK_OVERRIDES, overrides)
        return dropped

    def last_tick(self) -> datetime | None:
        with self.db.session() as s:
            text = repo.get_setting(s, LAST_TICK)
        return datetime.fromisoformat(text) if text else None

    def set_last_tick(self, when: datetime, wall: datetime | None = None) -> None:
        """The last cycle's time; with ``wall`` (real time then), the clock's state as well."""
        with self.db.session() as s:
            repo.set_setting(s, LAST_TICK, when.isoformat())
            if wall is not None:
                repo.set_setting(s, CLOCK_STATE, {"simulated": when.isoformat(), "wall": wall.isoformat()})

    def get(self, key: str, default: Any = None) -> Any:
        """A JSON value stored under ``key``."""
        with self.db.session() as s:
            return repo.get_setting(s, key, default)

    def set(self, key: str, value: Any) -> None:
        with self.db.session() as s:
            repo.set_setting(s, key, value)

    def random_key(self, key: str) -> bytes:
        """32 random bytes stored under ``key``, made by whichever instance asks first; the
        others (and later starts) read the same ones."""
        import secrets

        from storage.db import DatabaseError

        found = self.get(key)
        if found is None:
            try:
                with self.db.session() as s:
                    repo.insert_setting(s, key, secrets.token_hex(32))
            except DatabaseError:  # another instance stored one first: use that
                pass
            found = self.get(key)
        return bytes.fromhex(str(found))


def stored_overrides(database_url: str) -> dict[str, dict[str, Any]]:
    """The ``/risk set`` overrides a bot keeps in ``database_url`` (for ``tradebot config``),
    without creating or migrating anything: none when the database file does not exist yet."""
    from pathlib import Path

    if database_url.startswith("sqlite:///") and not Path(database_url.removeprefix("sqlite:///")).exists():
        return {}
    db = Database(database_url)
    try:
        return SettingsStore(db, RiskLimits()).overrides()
    finally:
        db.dispose()
