"""One trading instance per database: a lease row with a heartbeat, on SQLite and Postgres alike.

Heroku runs the old and the new dyno side by side during a restart, and nothing stops someone
from starting a second ``tradebot run`` or a cron ``tradebot tick`` next to a running worker.
Only the holder of the lease trades; every other process waits (``tradebot run``) or gives up at
once (``tradebot tick``), and says why.

How it works. The ``leases`` table has one row per lease name, naming its holder (host, pid and
a random part, so a restarted process with a recycled pid is still someone else) and the moment
it expires. Taking and renewing are single conditional statements, atomic on both databases:

- take: ``UPDATE ... SET holder = me WHERE name = ? AND (holder = me OR expires_at <= now)``,
  or ``INSERT`` when there is no row yet (a unique-key clash means someone else was faster);
- renew (every third of the lease): ``UPDATE ... WHERE name = ? AND holder = me``: no row
  updated means another process took over, so this one must stop trading at once;
- release (clean shutdown): expire the row now, so a waiting process takes over without
  waiting for the lease to run out.

"Now" comes from the database server on Postgres (one clock for every dyno, whatever their
clocks say) and from the host on SQLite (every process is on that host). A holder trusts its
own lease only until ``last successful renewal + lease - margin`` by its monotonic clock, so
a process that cannot reach the database stops trading before anyone else can take over.

Besides the heartbeat, ``TradingService`` asks the lease before every order (``refusal``):
the order path renews in the database first, so a holder that was replaced while it stalled
(a long GC pause, a frozen VM) finds out before it sends anything.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy import Table, insert, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.sql import Executable

from storage.db import Database, DatabaseError, describe_error
from storage.models import LeaseRow

log = logging.getLogger(__name__)

LEASES: Table = LeaseRow.__table__  # type: ignore[attr-defined]  # SQLModel sets it at class creation
TRADER = "trader"  # the lease that lets a process trade
MARGIN_SECONDS = 1.0  # stop trusting our own lease this long before others may take it


class TradingLease(Protocol):
    """What ``TradingService`` asks before it acts: ``Lease`` below is the one in use."""

    def refusal(self, action: str) -> str | None:
        """Why ``action`` ("order": send an order; "books": sync or reconcile) may not run now, or None."""
        ...

    def describe(self) -> str:
        """One line for /status: active, standby (who trades), shutting down."""
        ...

    def standby(self) -> bool:
        """Another instance holds (or took over) the trading lease: this one does not trade."""
        ...


def holder_id() -> str:
    """host/pid/random: unique per process even when a pid is reused."""
    host = os.environ.get("DYNO") or socket.gethostname() or "host"
    return f"{host}/{os.getpid()}/{secrets.token_hex(3)}"


@dataclass(frozen=True, slots=True)
class LeaseInfo:
    """The lease row as read from the database."""

    holder: str
    acquired_at: float
    renewed_at: float
    expires_at: float
    now: float  # the database's time when read

    @property
    def expired(self) -> bool:
        return self.expires_at <= self.now

    @property
    def released(self) -> bool:
        """Given up by its holder (``Lease.release`` ends it at once), not left to expire by a crash."""
        return self.expires_at <= self.renewed_at

    @property
    def remaining(self) -> float:
        return max(0.0, self.expires_at - self.now)

    def describe(self) -> str:
        if self.expired:
            return f"free (last held by {self.holder}, expired {_clock(self.expires_at)})"
        return f"held by {self.holder} since {_clock(self.acquired_at)}, expires in {self.remaining:.0f} s"


def _clock(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


class Lease:
    """This process's claim on a lease. Thread-safe; every method may touch the database."""

    def __init__(
        self,
        db: Database,
        *,
        seconds: float = 30.0,
        name: str = TRADER,
        holder: str | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """``monotonic``: this process's clock for how long it may trust its own lease (tests
        pass one they move by hand)."""
        if seconds < 3:
            raise ValueError("a lease shorter than 3 s cannot be renewed reliably")
        self.db = db
        self.seconds = float(seconds)
        self.name = name
        self.holder = holder or holder_id()
        self._monotonic = monotonic
        self.draining = False  # shutting down: no new orders, book-keeping may finish
        self._lock = threading.Lock()
        self._valid_until = 0.0  # monotonic deadline of our own lease; 0: not held
        self._lost = False
        self._other: LeaseInfo | None = None  # who holds it, when we last failed to take it

    @property
    def heartbeat_seconds(self) -> float:
        return self.seconds / 3

    # ------------------------------------------------------------------ database

    def _now(self, connection: Connection) -> float:
        if connection.dialect.name == "postgresql":
            return float(
                connection.execute(text("SELECT extract(epoch FROM clock_timestamp())")).scalar_one()
            )
        return time.time()

    def _write(self, statement_for: Callable[[float], Executable]) -> tuple[int, float]:
        """Run one conditional statement in its own transaction; (rows changed, database now)."""
        try:
            with self.db.engine.begin() as connection:
                now = self._now(connection)
                return connection.execute(statement_for(now)).rowcount, now
        except IntegrityError:
            raise
        except SQLAlchemyError as exc:
            raise DatabaseError(f"{describe_error(self.db.url, exc)} (the trading lease)") from exc

    def info(self) -> LeaseInfo | None:
        """The lease as the database has it now (None: never taken)."""
        try:
            with self.db.engine.connect() as connection:
                now = self._now(connection)
                row = connection.execute(select(LEASES).where(LEASES.c.name == self.name)).first()
        except SQLAlchemyError as exc:
            raise DatabaseError(f"{describe_error(self.db.url, exc)} (the trading lease)") from exc
        if row is None:
            return None
        return LeaseInfo(row.holder, row.acquired_at, row.renewed_at, row.expires_at, now)

    def try_acquire(self) -> bool:
        """Take the lease if it is free or expired (or renew it if it is ours). Never blocks."""
        table = LEASES
        with self._lock:
            started = self._monotonic()
            changed, _ = self._write(
                lambda now: (
                    update(table)
                    .where(
                        table.c.name == self.name,
                        (table.c.holder == self.holder) | (table.c.expires_at <= now),
                    )
                    .values(
                        holder=self.holder, acquired_at=now, renewed_at=now, expires_at=now + self.seconds
                    )
                )
            )
            if not changed:
                try:
                    changed, _ = self._write(
                        lambda now: insert(table).values(
                            name=self.name,
                            holder=self.holder,
                            acquired_at=now,
                            renewed_at=now,
                            expires_at=now + self.seconds,
                        )
                    )
                except IntegrityError:
                    changed = 0  # the row exists: someone else holds it
            if changed:
                self._held_from(started)
                self._other = None
                return True
        self._other = self.info()
        return False

    def renew(self) -> bool:
        """Extend our lease. False: we do not hold it (never did, released, or someone took over)."""
        table = LEASES
        with self._lock:
            if self._valid_until == 0.0:
                return False
            started = self._monotonic()
            changed, _ = self._write(
                lambda now: (
                    update(table)
                    .where(table.c.name == self.name, table.c.holder == self.holder)
                    .values(renewed_at=now, expires_at=now + self.seconds)
                )
            )
            if changed:
                self._held_from(started)
                return True
            self._valid_until = 0.0
            self._lost = True
        log.error("lease %r was taken over by another instance: this one stops trading", self.name)
        return False

    def release(self) -> None:
        """Give the lease up now, so a waiting instance takes over at once."""
        table = LEASES
        with self._lock:
            if self._valid_until == 0.0:
                return
            self._valid_until = 0.0
            self._write(
                lambda now: (
                    update(table)
                    .where(table.c.name == self.name, table.c.holder == self.holder)
                    .values(expires_at=now, renewed_at=now)
                )
            )
        log.info("lease %r released by %s", self.name, self.holder)

    @contextmanager
    def renewing(self) -> Iterator[None]:
        """Renew from a background thread while the block runs (`tradebot tick`'s cycle)."""
        done = threading.Event()

        def beat() -> None:
            while not done.wait(self.heartbeat_seconds):
                try:
                    if not self.renew():
                        return
                except Exception as exc:
                    log.warning("cannot renew the trading lease: %s", exc)

        thread = threading.Thread(target=beat, name="lease-heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join(timeout=5)

    def _held_from(self, started: float) -> None:
        self._valid_until = started + self.seconds - MARGIN_SECONDS
        self._lost = False

    # ------------------------------------------------------------------ what the process may do

    @property
    def held(self) -> bool:
        """We hold the lease and it cannot have run out yet (by our own monotonic clock)."""
        return self._monotonic() < self._valid_until

    @property
    def lost(self) -> bool:
        return self._lost

    @property
    def other(self) -> LeaseInfo | None:
        """Who held the lease when we last failed to take it."""
        return self._other

    def refusal(self, action: str) -> str | None:
        """Why this process may not do ``action`` now ("order" or "books"); None when it may.

        Orders also renew the lease in the database first: a holder that was replaced while it
        stalled learns it here, before anything reaches the broker.
        """
        if action == "order" and self.draining:
            return "this instance is shutting down; the next one will pick up the signal"
        if not self.held:
            return self.standby_reason()
        if action == "order":
            try:
                if not self.renew():
                    return "another instance took over trading: this one has stopped"
            except DatabaseError as exc:
                return f"cannot confirm the trading lease: {exc}"
        return None

    def standby(self) -> bool:
        """Another instance holds or took over the lease (not merely: not taken yet)."""
        if self.held:
            return False
        other = self._other
        return self._lost or (other is not None and other.holder != self.holder)

    def standby_reason(self) -> str:
        if self._lost:
            return "another instance took over trading: this one has stopped"
        other = self._other
        if other is None or other.holder == self.holder:
            return "this instance does not hold the trading lease"
        return f"standby: instance {other.holder} is trading (its lease expires in {other.remaining:.0f} s)"

    def describe(self) -> str:
        """One line for /status and `tradebot doctor`."""
        if self.held:
            state = "shutting down" if self.draining else "active"
            return f"{state}: this instance ({self.holder}) holds the trading lease"
        return self.standby_reason()
