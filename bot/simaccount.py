"""The simulated account: how far its clock is ahead of real time, and starting it afresh.

The simulated market's clock never runs backwards across restarts, so after accelerated runs the
account lives hours or days in the future. Between processes it moves at real speed: each
process leaves the clock's state (the simulated time and the real time then: ``save_clock``, at
every cycle and when `run` stops), and the next one resumes from it plus the real time since
(``resume_time``). So `tradebot tick` from cron after an accelerated `run` computes a new
simulated minute each real minute, instead of the last cycle's minute again and again.
``tradebot sim reset`` deletes the account's books, both the bot's (orders, fills, positions,
trades, equity, signals) and the simulated exchange's (``sim_*``), and the clock restarts at real
time. Kept: the audit log (events), risk overrides, the pause, Telegram alert settings.

It refuses a database that also holds records from a real broker (an order or a fill whose id
did not come from the simulator): those books are not the simulator's to delete.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import delete, func, not_
from sqlmodel import Session, col, select

from bot.domain import Event, EventKind, Severity
from bot.service.store import CLOCK_STATE, LAST_TICK, PAUSED, PAUSED_AT
from storage import repository as repo
from storage.db import Database, DatabaseError, safe_url
from storage.models import (
    EquitySnapshotRow,
    FillRow,
    OrderRow,
    PositionRow,
    SignalRow,
    SimAccountRow,
    SimFillRow,
    SimOrderRow,
    SimPositionRow,
    TradeRow,
)
from storage.revisions import ensure_newest

BOOKS = (
    FillRow,
    TradeRow,
    PositionRow,
    OrderRow,
    EquitySnapshotRow,
    SignalRow,
    SimFillRow,
    SimOrderRow,
    SimPositionRow,
)
SIM_PREFIX = "sim-"  # the simulator's broker order ids and fill ids

if TYPE_CHECKING:
    from bot.config import Settings


class Refused(Exception):
    """The reset was not done; the message says why, ``status`` is the exit status."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class AccountBooks:
    orders: int
    trades: int
    positions: int
    signals: int
    clock: datetime | None  # the simulated clock's last cycle, if any
    foreign: int  # orders and fills that came from another broker

    def describe(self) -> str:
        from bot.formatting import plural, when

        return (
            f"{plural(self.orders, 'order')}, {plural(self.trades, 'closed trade')}, "
            f"{plural(self.positions, 'open position')}, {plural(self.signals, 'signal')}; "
            f"last cycle {when(self.clock, simulated=True)}"
        )


def books(db: Database) -> AccountBooks:
    with db.session() as s:
        foreign = _count(
            s,
            select(func.count())
            .select_from(OrderRow)
            .where(col(OrderRow.broker_order_id).is_not(None))
            .where(not_(col(OrderRow.broker_order_id).startswith(SIM_PREFIX))),
        ) + _count(
            s,
            select(func.count())
            .select_from(FillRow)
            .where(not_(col(FillRow.fill_id).startswith(SIM_PREFIX))),
        )
        return AccountBooks(
            orders=_count(s, select(func.count()).select_from(OrderRow)),
            trades=_count(s, select(func.count()).select_from(TradeRow)),
            positions=_count(s, select(func.count()).select_from(PositionRow)),
            signals=_count(s, select(func.count()).select_from(SignalRow)),
            clock=_last_tick(db),
            foreign=foreign,
        )


def reset(db: Database, now: datetime, by: str) -> None:
    """Delete the simulated account's books in one transaction; the clock restarts at ``now``.

    The caller holds the trading lease (no process trades meanwhile) and has checked
    ``books(db).foreign == 0``; this checks again inside the transaction. The event log keeps a
    record of the reset (and alerts it, like any event).
    """
    before = books(db)
    with db.session() as s:
        stray = _count(
            s,
            select(func.count())
            .select_from(FillRow)
            .where(not_(col(FillRow.fill_id).startswith(SIM_PREFIX))),
        )
        if stray:
            raise ValueError(f"{stray} fills did not come from the simulator: not resetting")
        for table in BOOKS:
            s.exec(delete(table))
        s.exec(delete(SimAccountRow))
        repo.set_setting(s, LAST_TICK, now.isoformat())
        repo.set_setting(s, CLOCK_STATE, {"simulated": now.isoformat(), "wall": now.isoformat()})
        if repo.get_setting(s, PAUSED, False):
            repo.set_setting(s, PAUSED_AT, now.isoformat())  # the old time was on the old clock
        message = f"Simulated account reset by {by}: deleted {before.describe()}."
        repo.add_event(s, Event(kind=EventKind.INFO, message=message, time=now, severity=Severity.WARNING))


@dataclass(frozen=True, slots=True)
class ClockState:
    """Where the simulated clock was (``simulated``) at real time ``wall``."""

    simulated: datetime
    wall: datetime

    def at(self, wall: datetime) -> datetime:
        """The simulated time at real time ``wall``, the clock having moved at real speed since."""
        return self.simulated + (wall - self.wall)


def clock_state(db: Database) -> ClockState | None:
    with db.session() as s:
        stored = repo.get_setting(s, CLOCK_STATE)
    if not isinstance(stored, dict):
        return None
    try:
        return ClockState(datetime.fromisoformat(stored["simulated"]), datetime.fromisoformat(stored["wall"]))
    except (KeyError, TypeError, ValueError):
        return None


def save_clock(db: Database, simulated: datetime, wall: datetime) -> None:
    """Leave the clock's state for the next process (``run`` calls it when it stops)."""
    with db.session() as s:
        repo.set_setting(s, CLOCK_STATE, {"simulated": simulated.isoformat(), "wall": wall.isoformat()})


def resume_time(db: Database, wall: datetime) -> datetime:
    """Where the simulated clock starts at real time ``wall``: where the last process left it plus
    the real time since; never before the last cycle, never before real time."""
    candidates = [wall]
    last = _last_tick(db)
    if last is not None:
        candidates.append(last)
    state = clock_state(db)
    if state is not None:
        candidates.append(state.at(wall))
    return max(candidates)


def _last_tick(db: Database) -> datetime | None:
    with db.session() as s:
        text = repo.get_setting(s, LAST_TICK)
    return datetime.fromisoformat(text) if text else None


def _count(session: Session, statement: object) -> int:
    return int(session.exec(statement).one())  # type: ignore[call-overload]


def reset_command(settings: Settings, *, assume_yes: bool) -> int:
    """``tradebot sim reset``: show the books, ask (unless ``assume_yes``), reset under the lease."""
    from bot import formatting as fmt
    from bot.console import is_terminal
    from bot.lease import Lease

    if settings.alpaca_enabled:
        raise Refused("ALPACA_API_KEY is set, so this configuration trades Alpaca, not the simulator", 2)
    where = safe_url(settings.database_url)
    db = Database(settings.database_url)
    try:
        ensure_newest(db, auto_migrate=settings.tradebot_auto_migrate)
        before = books(db)
        if before.foreign:
            raise Refused(
                f"{where} also holds {fmt.plural(before.foreign, 'order or fill', 'orders or fills')} from a "
                "real broker (Alpaca); give the simulator a DATABASE_URL of its own"
            )
        print(f"Simulated account in {where}: {before.describe()}.")
        print(
            "A reset deletes these books (the bot's and the simulated exchange's): cash starts again at "
            f"{fmt.money(settings.tradebot_sim_cash)} and the simulated clock at real time. "
            "Kept: the event log, risk overrides, the pause, alert settings."
        )
        if not assume_yes:
            if not is_terminal(sys.stdin):
                raise Refused(
                    "no terminal to confirm on; `tradebot sim reset --yes` resets without asking", 2
                )
            try:
                answer = input("Type 'reset' to delete them: ")
            except EOFError:
                answer = ""
            if answer.strip().lower() != "reset":
                print("Nothing changed.")
                return 1
        lease = Lease(db, seconds=settings.tradebot_lease_seconds)
        if not lease.try_acquire():  # nobody trades while the books go
            raise Refused(f"{lease.standby_reason()}; stop it first")
        try:
            reset(db, datetime.now(UTC), by="tradebot sim reset")
        finally:
            lease.release()
        print("Done: a fresh simulated account. `tradebot run` or `tradebot tick` starts trading it.")
        return 0
    except DatabaseError as exc:
        raise Refused(str(exc)) from None
    finally:
        db.dispose()
