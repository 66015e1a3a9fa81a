"""One retry policy for every call that leaves the process (Alpaca, Polygon, Telegram, streams).

Built on tenacity. A ``RetryPolicy`` says how often and how long:

- at most ``attempts`` tries, waits growing exponentially from ``base`` (with jitter) up to ``cap``;
- a server's own hint wins when it asks for longer (``X-Ratelimit-Reset``, ``Retry-After``:
  the caller's ``hint`` turns an exception into seconds to wait, or None);
- never more than ``budget`` seconds of waiting in one call: a wait that would pass it ends the
  retries at once (the last error is raised) rather than stalling the caller;
- ``sleep`` is injectable (tests pass a recorder, nothing waits); ``asleep`` likewise for async.

``backoff(n)`` gives the n-th wait of the same schedule, for loops that retry forever (a stream
reconnecting) and reset after a success.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from tenacity import RetryCallState

# tenacity is imported where a call is retried, not here: the database outage policy
# (``bot/outage.py``) needs only ``backoff``, and tenacity imports tornado when it is installed,
# which ``tradebot tick`` on the simulated market would pay for nothing (issue 10).

log = logging.getLogger(__name__)

T = TypeVar("T")

Hint = Callable[[BaseException], float | None]


def _no_hint(exc: BaseException) -> float | None:
    return None


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 3
    base: float = 0.5  # the first wait, seconds
    cap: float = 8.0  # one backoff wait at most (a server's hint may ask for more, within budget)
    budget: float = 15.0  # all the waiting one call may do
    jitter: float = 0.25  # up to this fraction added at random, so clients do not retry in step

    def backoff(self, attempt: int) -> float:
        """The wait after failed attempt number ``attempt`` (1-based), jitter included."""
        delay = min(self.cap, self.base * 2.0 ** max(0, attempt - 1))
        return delay * (1 + random.random() * self.jitter)

    def _wait(self, hint: Hint) -> Callable[[RetryCallState], float]:
        def wait(state: RetryCallState) -> float:
            delay = self.backoff(state.attempt_number)
            exc = state.outcome.exception() if state.outcome is not None else None
            asked = hint(exc) if exc is not None else None
            return max(delay, asked) if asked is not None else delay

        return wait

    def _stop(self, state: RetryCallState) -> bool:
        if state.attempt_number >= self.attempts:
            return True
        upcoming = state.upcoming_sleep or 0.0
        return state.idle_for + upcoming > self.budget

    def call(
        self,
        fn: Callable[[], T],
        *,
        retry_if: Callable[[BaseException], bool],
        hint: Hint = _no_hint,
        sleep: Callable[[float], None] = time.sleep,
        what: str = "call",
    ) -> T:
        """``fn()``, retried while ``retry_if(error)``; the last error is raised as it was."""
        from tenacity import Retrying, retry_if_exception

        retrying = Retrying(
            stop=self._stop,
            wait=self._wait(hint),
            retry=retry_if_exception(retry_if),
            sleep=sleep,
            reraise=True,
            before_sleep=_log_retry(what),
        )
        return retrying(fn)

    async def acall(
        self,
        fn: Callable[[], Awaitable[T]],
        *,
        retry_if: Callable[[BaseException], bool],
        hint: Hint = _no_hint,
        asleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        what: str = "call",
    ) -> T:
        """The async form of ``call``: ``await fn()``, retried the same way. ``fn`` may be any
        callable returning an awaitable (a lambda too)."""

        async def attempt() -> T:
            # tenacity awaits only coroutine functions; a lambda's coroutine would come back unawaited.
            return await fn()

        from tenacity import AsyncRetrying, retry_if_exception

        retrying = AsyncRetrying(
            stop=self._stop,
            wait=self._wait(hint),
            retry=retry_if_exception(retry_if),
            sleep=asleep,
            reraise=True,
            before_sleep=_log_retry(what),
        )
        return await retrying(attempt)


def _log_retry(what: str) -> Callable[[RetryCallState], None]:
    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        log.warning(
            "%s failed (%s), attempt %d; retrying in %.1fs",
            what,
            f"{type(exc).__name__}: {exc}"[:200] if exc is not None else "?",
            state.attempt_number,
            state.upcoming_sleep,
        )

    return before_sleep
