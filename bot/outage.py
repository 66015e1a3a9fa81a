"""The database going away under a running bot (issue 12): said once, retried with backoff, and
said again when it is back.

Postgres stopped or refusing connections, its connections killed, a SQLite file locked by another
process: every cycle would fail, every lease renewal too. Without this, each failure logged a
traceback and tried to record an alert in the very database that was gone, once per cycle (ten
times a second at the default simulated speed). Instead:

- the first failure is reported once: one log line and one alert to the live listeners (the
  console); it cannot be stored, the events table being what failed;
- cycles wait on the shared retry policy (``bot/retry.py``): each failed attempt doubles the wait,
  up to ``OUTAGE_POLICY.cap``; the cycles in between are skipped without a word;
- the first cycle that succeeds again records "the database is back" with how long it was gone
  and why, so every transport (Telegram reads the events table) hears of the outage once.

The event loop is never blocked: cycles and renewals run in worker threads, so the console,
Telegram and the web keep answering (with the one-line error, for what needs the database).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy.exc import InterfaceError, OperationalError

from bot.domain import Event, EventKind, Severity
from bot.logs import ALERT
from bot.retry import RetryPolicy
from storage.db import DatabaseError

log = logging.getLogger(__name__)

# Waits between attempts while the database is gone: 1, 2, 4 ... 30 s (plus jitter). Attempts
# and budget do not apply: an outage is retried for as long as it lasts.
OUTAGE_POLICY = RetryPolicy(base=1.0, cap=30.0)


def is_database_failure(exc: BaseException) -> bool:
    """The database failed (unreachable, connection killed, locked, refused), not our code."""
    return isinstance(exc, DatabaseError | OperationalError | InterfaceError)


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


class DatabaseOutage:
    """Whether the database is down, since when, and when to try it again. Thread-safe."""

    def __init__(
        self,
        publish: Callable[[Event], None],
        *,
        policy: RetryPolicy = OUTAGE_POLICY,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """``publish``: the live listeners (``Notifier.publish``), for the alert that cannot be stored."""
        self.publish = publish
        self.policy = policy
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._since: datetime | None = None  # wall clock, for the messages
        self._started = 0.0  # monotonic, for the duration
        self._reason = ""
        self._failures = 0
        self._retry_at = 0.0
        self._recovered_at = float("-inf")  # monotonic: when the last outage ended

    @property
    def down(self) -> bool:
        return self._since is not None

    def waiting(self) -> bool:
        """True while backing off: skip this attempt quietly."""
        with self._lock:
            return self._since is not None and self._monotonic() < self._retry_at

    def failed(
        self, exc: BaseException, what: str = "a cycle", *, backoff: bool = True, began: float | None = None
    ) -> None:
        """``what`` failed on the database: report it if this starts an outage. ``backoff``: this
        was an attempt the caller will only repeat after ``waiting()`` is over (the cycles); a
        caller with its own slow cadence (the lease's heartbeat) passes False. ``began``: when the
        attempt started (this clock); one that started before the last outage ended failed in
        that outage (a statement sent into a dead network is answered by nothing, ever, and gives
        up only at its deadline): logged, not said again as a new outage."""
        with self._lock:
            now = self._monotonic()
            if began is not None and began < self._recovered_at and self._since is None:
                log.warning("%s, begun before the database answered again, failed: %s", what, one_line(exc))
                return
            if backoff:
                self._failures += 1
                self._retry_at = now + self.policy.backoff(self._failures)
            if self._since is not None:
                log.debug("database still failing (%s): %s", what, one_line(exc))
                return
            self._since = datetime.now(UTC)
            self._started = now
            self._reason = one_line(exc)
            since = self._since
        message = (
            f"Trading suspended: {self._reason}. Retrying with backoff; trading resumes when it answers."
        )
        log.error("%s", message, extra=ALERT)  # the console shows the alert, not the log line too
        self.publish(Event(EventKind.DATABASE_DOWN, message, since, Severity.ERROR))

    def recovered(self) -> str | None:
        """Called after a database round trip succeeded: the "back" message if an outage ended."""
        with self._lock:
            if self._since is None:
                return None
            seconds = self._monotonic() - self._started
            message = (
                f"The database answers again after {seconds:.0f} s (it failed at "
                f"{self._since:%H:%M:%S} UTC: {self._reason}); trading resumes."
            )
            self._since = None
            self._failures = 0
            self._retry_at = 0.0
            self._reason = ""
            self._recovered_at = self._monotonic()
        return message
