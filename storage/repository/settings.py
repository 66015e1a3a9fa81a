"""The settings table: small JSON values by key (pause state, risk overrides, alert groups,
the last cycle, the simulated clock)."""

from __future__ import annotations

import json
from typing import Any

from sqlmodel import Session

from storage.models import SettingRow


def get_setting(session: Session, key: str, default: Any = None) -> Any:
    row = session.get(SettingRow, key)
    return default if row is None else json.loads(row.value)


def set_setting(session: Session, key: str, value: Any) -> None:
    row = session.get(SettingRow, key)
    if row is None:
        session.add(SettingRow(key=key, value=json.dumps(value)))
    else:
        row.value = json.dumps(value)
        session.add(row)


def insert_setting(session: Session, key: str, value: Any) -> None:
    """Add ``key``; fails at commit (a unique violation) if another writer added it first."""
    session.add(SettingRow(key=key, value=json.dumps(value)))
