"""HTTP hardening for alpaca-py's REST clients: timeouts, no silent resends, rate limits, a stall bound.

alpaca-py 0.44 (``alpaca/common/rest.py``, ``RESTClient``) sends every request through
``client._session.request`` (a ``requests.Session``) with no timeout, and resends any request,
order submits included, after a 429 or 504 (``_retry`` = 3 tries, a fixed 3 s sleep, rate-limit
headers ignored). Both are private attributes: ``tests/test_alpaca_sdk.py`` fails if they move.

``AlpacaHttp.install(client)`` replaces that path for one client. One ``AlpacaHttp`` serves every
client of one account (trading and market data), so they share:

- **a timeout** on every request (``timeout`` seconds, 10 by default);
- **no SDK retries** (``client._retry = 0``): a 429 or 5xx reaches the caller as ``APIError``, and
  the caller decides (reads retry through ``bot.retry``; an order submit never resends blindly);
- **rate limits, one per API**: Alpaca counts the trading API and the market data API apart
  (200 requests a minute each on the free plans) and answers 429 with ``X-RateLimit-Limit``,
  ``X-RateLimit-Remaining`` and ``X-RateLimit-Reset`` (epoch seconds); every response carries
  them. After a 429, or a response with ``Remaining: 0``, no request *to that API* is sent before
  its reset: a request waits for it when the wait fits that API's own wait budget
  (``stall_budget`` seconds a cycle), and otherwise fails at once with ``RateLimited`` (never
  sent). A data 429 therefore never delays an order: exits go out while bars wait;
- **a stall budget**: the seconds this account may spend in requests that failed in transport
  or timed out, in 5xx answers and in retry backoff, per cycle (``begin_cycle``, called by the
  broker's ``sync`` at the start of every cycle). Each request's timeout is cut to what is left;
  once it is spent, requests fail at once with ``StallBudgetSpent`` (never sent) until the next
  cycle. A hung Alpaca therefore stalls one cycle ~``stall_budget`` seconds (15) in total.
  Waiting for a rate limit's reset counts against the limited API's own budget, not this one.

``install(client, api=...)`` says which API a client talks to (``TRADING`` or ``DATA``); the
retry policies of each side take ``sleeper(api)`` and ``wait_hint``.

``NotSent`` errors subclass ``requests.ConnectionError``, so every caller already treats them as
a transport failure; an order submit that gets one knows the order never left.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests
from alpaca.common.exceptions import APIError

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 10.0
DEFAULT_STALL_BUDGET = 15.0
TRADING = "trading"
DATA = "data"


class NotSent(requests.ConnectionError):
    """The request was never sent: the order (if it was one) does not exist because of it."""


class StallBudgetSpent(NotSent):
    """Alpaca has failed or hung for this cycle's whole stall budget."""


class RateLimited(NotSent):
    """Alpaca's rate limit is spent until ``reset`` (epoch seconds)."""

    def __init__(self, message: str, reset: float) -> None:
        super().__init__(message)
        self.reset = reset


@dataclass
class _Limit:
    """One API's rate limit as last seen, and this cycle's waits for its reset."""

    blocked_until: float = 0.0  # epoch seconds: X-RateLimit-Reset after a spent limit
    waited: float = 0.0  # seconds waited for this API's reset this cycle
    last: tuple[int, int, float] | None = None  # (limit, remaining, reset) last seen


class AlpacaHttp:
    def __init__(
        self,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        stall_budget: float = DEFAULT_STALL_BUDGET,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.timeout = timeout
        self.stall_budget = stall_budget
        self._wall = wall
        self._monotonic = monotonic
        self._sleep = sleep
        self._lock = threading.Lock()
        self._spent = 0.0
        self._limits = {TRADING: _Limit(), DATA: _Limit()}

    # ------------------------------------------------------------------ budget
    def begin_cycle(self) -> None:
        with self._lock:
            self._spent = 0.0
            for limit in self._limits.values():
                limit.waited = 0.0

    def last_limit(self, api: str = TRADING) -> tuple[int, int, float] | None:
        """(limit, remaining, reset) in the last answer from ``api``."""
        with self._lock:
            return self._limits[api].last

    @property
    def remaining(self) -> float:
        with self._lock:
            return max(0.0, self.stall_budget - self._spent)

    def spend(self, seconds: float) -> None:
        with self._lock:
            self._spent += max(0.0, seconds)

    def sleep(self, seconds: float, api: str = TRADING) -> None:
        """A retry wait before the next request to ``api``. While ``api``'s rate limit is spent it
        is a wait for its reset, counted against that API's own budget; otherwise a backoff,
        counted against the stall budget. Never longer than what is left of the budget it counts
        against (once spent the next request fails at once, so waiting longer would only stall)."""
        with self._lock:
            limit = self._limits[api]
            rate_wait = limit.blocked_until > self._wall()
            left = max(0.0, self.stall_budget - limit.waited) if rate_wait else None
        if left is None:
            seconds = min(seconds, self.remaining)
            if seconds <= 0:
                return
            self.spend(seconds)
        else:
            seconds = min(seconds, left)
            if seconds <= 0:
                return
            with self._lock:
                limit.waited += seconds
        self._sleep(seconds)

    def sleeper(self, api: str) -> Callable[[float], None]:
        """``sleep`` for the retry policy of ``api``'s calls."""
        return lambda seconds: self.sleep(seconds, api)

    def wait_hint(self, exc: BaseException) -> float | None:
        """Seconds until Alpaca's rate limit resets, for a 429 (the retry policy's ``hint``)."""
        if status_of(exc) != 429:
            return None
        reset = rate_limit_reset(exc)
        return None if reset is None else max(0.0, reset - self._wall())

    # ------------------------------------------------------------------ the request path
    def install(self, client: Any, api: str = TRADING) -> Any:
        """Route ``client``'s requests (to ``api``: ``TRADING`` or ``DATA``) through this guard and
        switch off its own retries."""
        if api not in self._limits:
            raise ValueError(f"unknown Alpaca API {api!r}: {TRADING} or {DATA}")
        session: requests.Session = client._session
        original = session.request

        def request(method: str, url: str, **kwargs: Any) -> requests.Response:
            return self._request(original, api, method, url, **kwargs)

        session.request = request  # type: ignore[method-assign, assignment]
        client._retry = 0
        return client

    def _request(
        self, send: Callable[..., requests.Response], api: str, method: str, url: str, **kwargs: Any
    ) -> requests.Response:
        self._respect_rate_limit(api, method)
        left = self.remaining
        if left <= 0:
            raise StallBudgetSpent(
                f"Alpaca failed or hung for {self.stall_budget:g} s this cycle: {method} not sent"
            )
        kwargs["timeout"] = min(self.timeout, left)
        started = self._monotonic()
        try:
            response = send(method, url, **kwargs)
        except requests.RequestException:
            self.spend(self._monotonic() - started)
            raise
        self._note_limits(api, response)
        if response.status_code >= 500:
            self.spend(self._monotonic() - started)
        return response

    def _respect_rate_limit(self, api: str, method: str) -> None:
        with self._lock:
            limit = self._limits[api]
            reset, left = limit.blocked_until, max(0.0, self.stall_budget - limit.waited)
        wait = reset - self._wall()
        if wait <= 0:
            return
        if wait > left:
            raise RateLimited(
                f"Alpaca's {api} rate limit is spent until {time.strftime('%H:%M:%S', time.gmtime(reset))} "
                f"UTC: {method} not sent",
                reset,
            )
        log.warning("Alpaca %s rate limit spent: waiting %.1fs for its reset", api, wait)
        self.sleep(wait, api)

    def _note_limits(self, api: str, response: requests.Response) -> None:
        headers = response.headers
        try:
            limit = int(headers["X-RateLimit-Limit"])
            remaining = int(headers["X-RateLimit-Remaining"])
            reset = float(headers["X-RateLimit-Reset"])
        except (KeyError, ValueError):
            if response.status_code != 429:
                return
            limit, remaining, reset = 0, 0, self._wall() + 1.0  # a 429 without headers: wait a second
        with self._lock:
            state = self._limits[api]
            state.last = (limit, remaining, reset)
            if response.status_code == 429 or remaining <= 0:
                state.blocked_until = max(state.blocked_until, reset)


# --------------------------------------------------------------------------- errors


def status_of(exc: BaseException | None) -> int | None:
    return exc.status_code if isinstance(exc, APIError) else None


def api_message(exc: APIError) -> str:
    try:
        return str(exc.message)
    except Exception:
        return str(exc)[:300]


def api_code(exc: APIError) -> int | None:
    try:
        return int(exc.code)
    except Exception:
        return None


def rate_limit_reset(exc: BaseException) -> float | None:
    response = getattr(exc, "response", None) if isinstance(exc, APIError) else None
    value = response.headers.get("X-RateLimit-Reset") if response is not None else None
    try:
        return float(value) if value else None
    except ValueError:
        return None


def is_transient(exc: BaseException) -> bool:
    """429, 5xx or a transport failure: worth another try for a read (``NotSent`` is not: it
    means the budget or the rate limit says stop)."""
    if isinstance(exc, NotSent):
        return False
    if isinstance(exc, requests.RequestException):
        return True
    status = status_of(exc)
    return status is not None and (status == 429 or status >= 500)


def describe(exc: BaseException) -> str:
    if isinstance(exc, APIError):
        return f"HTTP {exc.status_code}: {api_message(exc)}"
    return f"{type(exc).__name__}: {exc}"[:300]


def auth_message(status: int | None, paper: bool) -> str:
    kind = "paper" if paper else "live"
    return (
        f"Alpaca refused the API keys (HTTP {status}): check ALPACA_API_KEY and ALPACA_API_SECRET, "
        f"and that they are {kind}-trading keys (ALPACA_PAPER={'true' if paper else 'false'})"
    )
