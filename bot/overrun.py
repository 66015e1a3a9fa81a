"""Cycles that take longer than their interval: said in one line, not a warning per skipped run.

A cycle never overlaps the next (the engine's lock), and a run that falls due while one is in
progress is skipped, not queued: the next cycle sees the newest bars anyway. The scheduler is set
up for that on purpose (``bot.engine.start_scheduler``): rather than letting APScheduler refuse
each such run with its "maximum number of running instances reached" warning, the engine counts
the runs it skipped and, when the long cycle ends, logs one line saying how long it took and how
many runs were skipped. Overruns that go on (an interval shorter than a cycle) are summed up at
most once every ``REPORT_EVERY_SECONDS``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from bot.formatting import plural

log = logging.getLogger(__name__)

REPORT_EVERY_SECONDS = 60.0


def _seconds(value: float) -> str:
    return f"{value:.3g} s"


class Overruns:
    """Counts the runs skipped while a cycle ran, and reports them. Thread-safe."""

    def __init__(
        self,
        *,
        interval: float | None = None,
        report_every: float = REPORT_EVERY_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """``interval``: the real seconds between cycles, for the message (None: not said)."""
        self.interval = interval
        self.report_every = report_every
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._due = 0  # runs that fell due while the current cycle ran
        self._overran = 0  # since the last report
        self._skipped = 0
        self._longest = 0.0
        self._next_report: float | None = None  # None: nothing reported yet
        self._since = datetime.now(UTC)

    def skipped(self) -> None:
        """A run fell due while a cycle was still running, and was skipped."""
        with self._lock:
            self._due += 1

    def finished(self, seconds: float) -> str | None:
        """A cycle ended after ``seconds``; returns the line it logged, if any."""
        with self._lock:
            if not self._due:
                return None
            self._overran += 1
            self._skipped += self._due
            self._longest = max(self._longest, seconds)
            self._due = 0
            now = self._monotonic()
            if self._next_report is not None and now < self._next_report:
                return None
            every = f", every {_seconds(self.interval)}" if self.interval else ""
            if self._next_report is None:
                line = (
                    f"a cycle overran its interval (it took {_seconds(seconds)}{every}): "
                    f"{plural(self._skipped, 'run')} due meanwhile skipped, not queued; the next runs on schedule. "
                    f"Further overruns are summed up at most every {self.report_every:.0f} s."
                )
            else:
                line = (
                    f"{plural(self._overran, 'cycle')} overran the interval since {self._since:%H:%M:%S} UTC "
                    f"(the longest took {_seconds(self._longest)}{every}): "
                    f"{plural(self._skipped, 'run')} due meanwhile skipped, not queued."
                )
            self._next_report = now + self.report_every
            self._overran = self._skipped = 0
            self._longest = 0.0
            self._since = datetime.now(UTC)
        log.warning("%s", line)
        return line
