"""Alert groups and preferences: which event kinds push transports (Telegram) send.

Every event is in the feed; a push transport sends those whose group is on. The defaults come
from configuration (the TELEGRAM_ALERT_* variables); ``/alerts NAME on|off`` changes a group at
run time, stored in the settings table (``alerts``), so the change survives restarts. Kinds
that belong to no group are always sent.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping

from bot.domain import EventKind as K
from bot.service.store import SettingsStore

PREFS_KEY = "alerts"

# group -> (what it covers, event kinds)
GROUPS: dict[str, tuple[str, frozenset[K]]] = {
    "orders": ("order placed or canceled", frozenset({K.ORDER_PLACED, K.ORDER_CANCELED})),
    "fills": ("order filled", frozenset({K.ORDER_FILLED})),
    "rejections": ("order rejected, entry blocked by risk", frozenset({K.ORDER_REJECTED, K.RISK_BLOCKED})),
    "stops": ("stop-loss or take-profit hit", frozenset({K.STOP_HIT, K.TARGET_HIT})),
    "errors": (
        "strategy, broker, database and reconciliation problems",
        frozenset(
            {
                K.STRATEGY_ERROR,
                K.BROKER_ERROR,
                K.ORDER_FAILED,
                K.CYCLE_FAILED,
                K.RECONCILE_DIFF,
                K.RECONCILIATION_FAILED,
                K.BOOKS_BEHIND,
                K.BOOKS_CAUGHT_UP,
                K.LEASE_LOST,
                K.DATABASE_DOWN,
                K.DATABASE_BACK,
            }
        ),
    ),
    "data": ("market data outage and recovery", frozenset({K.DATA_OUTAGE, K.DATA_RECOVERED})),
    "state": (
        "start, stop, pause, resume, risk changes",
        frozenset({K.STARTED, K.STOPPED, K.PAUSED, K.RESUMED, K.RISK_CHANGED, K.INFO}),
    ),
    "security": ("refused users", frozenset({K.UNAUTHORIZED})),
    "daily": ("daily summary", frozenset({K.DAILY_SUMMARY})),
}
_GROUP_OF = {kind: group for group, (_, kinds) in GROUPS.items() for kind in kinds}


def group_of(kind: K) -> str | None:
    return _GROUP_OF.get(kind)


class AlertPrefs:
    def __init__(self, store: SettingsStore, defaults: Mapping[str, bool]) -> None:
        self.store = store
        self.defaults = {group: bool(defaults.get(group, True)) for group in GROUPS}
        stored = store.get(PREFS_KEY, {})
        self._current = {**self.defaults, **{k: bool(v) for k, v in stored.items() if k in GROUPS}}
        self._lock = threading.Lock()

    def current(self) -> dict[str, bool]:
        return dict(self._current)

    def allows(self, kind: K) -> bool:
        group = _GROUP_OF.get(kind)
        return group is None or self._current.get(group, True)

    def set(self, groups: Iterable[str], on: bool) -> None:
        """Switch groups on or off; raises ValueError naming an unknown group."""
        groups = list(groups)
        unknown = [g for g in groups if g not in GROUPS]
        if unknown:
            raise ValueError(f"unknown alert group {unknown[0]!r}: one of {', '.join(GROUPS)}")
        with self._lock:
            current = dict(self._current)
            current.update(dict.fromkeys(groups, on))
            self.store.set(PREFS_KEY, current)
            self._current = current
