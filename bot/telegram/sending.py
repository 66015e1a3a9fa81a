"""Sending within Telegram's limits: a rate limiter, retry after 429, and splitting long texts.

Telegram allows about 30 messages a second overall, about one a second into one chat and
20 a minute into one group. Every request the bot sends (replies, alerts, edits, button answers,
error replies) first asks ``RateLimiter``. A 429 answer (``RetryAfter``) says how long to wait:
``with_retry`` waits that long and sends again, by the project's one retry policy
(``bot/retry.py``: a few attempts within a time budget, the sleep injectable), and never gives up
silently: the caller learns it failed. ``CONNECT`` is the same policy's schedule for loops that
retry until they succeed (connecting, delivering alerts).
"""

from __future__ import annotations

import asyncio
import logging
import time
import warnings
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

from telegram.error import RetryAfter

from bot.retry import RetryPolicy

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_TEXT = 4096  # characters in one message
MAX_CAPTION = 1024  # characters in a photo caption
# After a 429: wait as Telegram says (plus 0.1 s), five attempts in all, two minutes of waiting at most.
FLOOD_CONTROL = RetryPolicy(attempts=5, base=0.1, cap=1.0, budget=120.0, jitter=0.0)
# Connecting and delivering alerts: 1 s, 2 s, 4 s ... up to a minute between tries, for ever.
CONNECT = RetryPolicy(base=1.0, cap=60.0, jitter=0.1)


class RateLimiter:
    """``acquire(chat_id)`` waits until one more message may be sent (``chat_id=None``: global only)."""

    def __init__(
        self,
        per_second: int = 30,
        private_interval: float = 1.0,
        group_interval: float = 3.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_second = per_second
        self.private_interval = private_interval
        self.group_interval = group_interval
        self._monotonic = monotonic
        self._window: deque[float] = deque()
        self._next: dict[int, float] = {}

    def delay(self, chat_id: int | None) -> float:
        """Seconds to wait before the next message to ``chat_id`` may go (0: now)."""
        now = self._monotonic()
        while self._window and now - self._window[0] >= 1.0:
            self._window.popleft()
        wait = self._window[0] + 1.0 - now if len(self._window) >= self.per_second else 0.0
        if chat_id is not None:
            wait = max(wait, self._next.get(chat_id, 0.0) - now)
        return max(0.0, wait)

    def take(self, chat_id: int | None) -> None:
        now = self._monotonic()
        self._window.append(now)
        if chat_id is not None:
            self._next[chat_id] = now + (self.group_interval if chat_id < 0 else self.private_interval)

    async def acquire(self, chat_id: int | None = None) -> None:
        while (wait := self.delay(chat_id)) > 0:
            await asyncio.sleep(wait)
        self.take(chat_id)


def retry_after_seconds(exc: RetryAfter) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _flood_wait(exc: BaseException) -> float | None:
    return retry_after_seconds(exc) + 0.1 if isinstance(exc, RetryAfter) else None


async def with_retry(
    call: Callable[[], Awaitable[T]],
    what: str,
    *,
    policy: RetryPolicy = FLOOD_CONTROL,
    asleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    """Run ``call``; on 429 wait as told and run it again, within ``policy``. Other errors pass through."""
    return await policy.acall(
        call,
        retry_if=lambda exc: isinstance(exc, RetryAfter),
        hint=_flood_wait,
        asleep=asleep,
        what=f"Telegram {what} (flood control)",
    )


def split_text(text: str, limit: int = MAX_TEXT) -> list[str]:
    """Pieces of at most ``limit`` characters, cut at line ends where possible."""
    if len(text) <= limit:
        return [text]
    pieces: list[str] = []
    current = ""
    for line in text.splitlines(keepends=True):
        while len(line) > limit:  # one very long line: cut it hard
            if current:
                pieces.append(current)
                current = ""
            pieces.append(line[:limit])
            line = line[limit:]
        if len(current) + len(line) > limit:
            pieces.append(current)
            current = ""
        current += line
    if current:
        pieces.append(current)
    return [p.rstrip("\n") or p for p in pieces]
