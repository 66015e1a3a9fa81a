"""The one clock the engine, the service and the simulator read. Injectable, so tests and the
accelerated simulator decide what "now" is."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    """Wall-clock time, UTC."""

    speed = 1.0

    def now(self) -> datetime:
        return datetime.now(UTC)


class AcceleratedClock:
    """Starts at ``start`` and runs ``speed`` times faster than real time (the simulator's clock)."""

    def __init__(self, start: datetime, speed: float) -> None:
        self.start = start
        self.speed = speed
        self._t0 = time.monotonic()

    def now(self) -> datetime:
        return self.start + timedelta(seconds=(time.monotonic() - self._t0) * self.speed)


class ManualClock:
    """A clock tests move by hand."""

    speed = 1.0

    def __init__(self, start: datetime) -> None:
        self._now = start

    def now(self) -> datetime:
        return self._now

    def set(self, when: datetime) -> None:
        self._now = when

    def advance(self, **delta: float) -> datetime:
        self._now += timedelta(**delta)
        return self._now
