"""A short-lived memo of the service's reads, shared by every request of the web server.

Fifty requests a second for the same status would otherwise each ask the broker for the account
and read every trade. The memo keeps each answer for ``TTL_SECONDS`` and forgets everything the
moment an event is recorded (a fill, a pause...) or a cycle ends, so a page refreshed after an
event never shows the state from before it. Concurrent misses of one read wait for a single
computation instead of all running it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

TTL_SECONDS = 1.0
READS = frozenset(
    {
        "status",
        "pnl",
        "positions",
        "marked_positions",
        "orders",
        "order_page",
        "trades",
        "trade_page",
        "equity_curve",
        "equity_history",
        "recent_events",
        "recent_signals",
        "risk_view",
        "profit",
    }
)


class ReadCache:
    """Wraps a ``TradingService``: its read methods memoized, everything else passed through."""

    def __init__(self, service: Any, clock: Callable[[], float] = time.monotonic) -> None:
        self._service = service
        self._clock = clock
        self._values: dict[tuple[Any, ...], tuple[float, Any]] = {}
        self._flights: dict[tuple[Any, ...], threading.Lock] = {}
        self._lock = threading.Lock()
        self._generation = 0

    def clear(self, *_: object) -> None:
        """Forget every answer (an event was recorded, a cycle ended). Any thread."""
        with self._lock:
            self._values.clear()
            # One lock per read ever asked (each page of /trades is a read of its own): dropped
            # with the answers, or a long-running server would keep every key it ever saw.
            self._flights = {}
            self._generation += 1

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._service, name)
        if name not in READS:
            return attribute

        def read(*args: Any, **kwargs: Any) -> Any:
            key = (name, args, tuple(sorted(kwargs.items())))
            found = self._fresh(key)
            if found is not None:
                return found[0]
            with self._lock:
                flight = self._flights.setdefault(key, threading.Lock())
            with flight:
                found = self._fresh(key)  # computed by another request meanwhile
                if found is not None:
                    return found[0]
                generation = self._generation
                value = attribute(*args, **kwargs)
                with self._lock:
                    if generation == self._generation:  # not stale already
                        self._values[key] = (self._clock(), value)
                return value

        return read

    def _fresh(self, key: tuple[Any, ...]) -> tuple[Any] | None:
        with self._lock:
            hit = self._values.get(key)
            if hit is not None and self._clock() - hit[0] < TTL_SECONDS:
                return (hit[1],)
        return None
