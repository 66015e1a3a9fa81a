"""At start: /pnl's running totals checked against the books (``storage.repository.totals``)."""

from __future__ import annotations

import logging

from storage.db import Database, DatabaseError
from storage.repository import totals

log = logging.getLogger(__name__)


def verify_totals(db: Database) -> list[str]:
    """Recompute the running totals from the trades and equity snapshots and rewrite any that
    differ (logged: after migration 0005 they start empty; later, a difference means rows were
    written around the repository). A failure is logged and left for the next start: /pnl then
    shows the totals as they were, and another instance starting at the same moment may have
    written them already."""
    try:
        with db.session() as s:
            differences = totals.verify(s)
    except DatabaseError as exc:
        log.warning("P&L running totals not checked against the books: %s", exc)
        return []
    for difference in differences:
        log.warning("P&L running totals rebuilt from the books: %s", difference)
    return differences
