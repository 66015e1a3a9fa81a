"""Who may use the dashboard: passwords, one-time login links, sessions, CSRF tokens, rate limits.

Plain logic, no HTTP (``bot/web/security.py`` applies it to requests):

* **Credentials.** ``TRADEBOT_WEB_PASSWORD`` on the login page; ``TRADEBOT_WEB_TOKEN`` as a bearer
  token for scripts (and also accepted on the login page). Without either, a random one-time
  login token is printed at start; it works once, then a new one is printed.
* **Sessions** live in memory (a restart logs everyone out; logging out really ends one): a random
  id in an HttpOnly cookie, a separate random CSRF token, 12 hours idle and 7 days at most.
* **Comparisons** are constant-time: both sides are hashed to equal length, then compared with
  ``hmac.compare_digest``.
* **Login attempts** are rate-limited: 5 failures per client per minute, 30 per minute overall.
  A client is an address (``bot.web.config.Proxies`` says which one to believe). Nobody else's
  failures lock the owner out:

  - a right API token always gets through (compared first; it is 16+ characters, and a wrong
    one counts as a failure and is answered 401, or 429 once its client is over the limit);
  - a browser that logged in before carries a device cookie (signed with a key kept in the
    database, 90 days), which takes it past the per-client and overall limits: only failures
    made with that cookie count against it (OWASP's "device cookies" defence);
  - the one-time login link is 192 random bits: it is never rate-limited, so guesses cannot
    lock it;
  - a logged-in session is never checked against the limits at all.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

SESSION_IDLE_SECONDS = 12 * 3600
SESSION_MAX_SECONDS = 7 * 86400
MAX_SESSIONS = 1000
FAILURES_PER_CLIENT = 5
FAILURES_OVERALL = 30
FAILURE_WINDOW_SECONDS = 60.0
MAX_CLIENTS_TRACKED = 10_000  # distinct clients with recent failures kept in memory; the oldest go first
DEVICE_SECONDS = 90 * 86400


def same_secret(given: str, expected: str) -> bool:
    """Constant-time equality that leaks neither content nor length; an empty secret never matches."""
    if not expected or not given:
        return False
    return hmac.compare_digest(
        hashlib.sha256(given.encode()).digest(), hashlib.sha256(expected.encode()).digest()
    )


@dataclass
class Session:
    id: str
    user: str
    csrf: str
    via: str  # password, token, link
    created: float
    last_seen: float

    @property
    def chat_id(self) -> int:
        """A stable number for this session: the command router ties confirmations to it."""
        return _number_of(self.id)


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller of one request."""

    user: str
    via: str  # session, bearer
    chat_id: int
    session: Session | None = None

    @property
    def label(self) -> str:
        return f"{self.user} (web)" if self.via == "session" else f"{self.user} (api)"


class TooManyAttempts(Exception):
    def __init__(self, retry_after: float) -> None:
        super().__init__(f"too many failed logins: try again in {retry_after:.0f} s")
        self.retry_after = retry_after


@dataclass
class LoginLimiter:
    """Sliding-window count of failed logins, per client and overall, in bounded memory: each
    client keeps its last ``per_client`` failure times, the overall count its last ``overall``."""

    per_client: int = FAILURES_PER_CLIENT
    overall: int = FAILURES_OVERALL
    window: float = FAILURE_WINDOW_SECONDS
    clock: Callable[[], float] = time.monotonic
    _clients: dict[str, deque[float]] = field(default_factory=dict)
    _all: deque[float] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._all = deque(maxlen=self.overall)

    def check(self, client: str, *, overall: bool = True) -> None:
        """Raise TooManyAttempts if this client (or, with ``overall``, everyone) failed too often lately."""
        with self._lock:
            now = self.clock()
            waits = []
            mine = self._clients.get(client)
            if mine is not None and len(mine) >= self.per_client and mine[0] > now - self.window:
                waits.append(mine[0] + self.window - now)
            if overall and len(self._all) >= self.overall and self._all[0] > now - self.window:
                waits.append(self._all[0] + self.window - now)
            if waits:
                raise TooManyAttempts(max(1.0, max(waits)))

    def failed(self, client: str, *, overall: bool = True) -> None:
        with self._lock:
            now = self.clock()
            mine = self._clients.pop(client, None) or deque(maxlen=self.per_client)
            mine.append(now)
            self._clients[client] = mine  # re-inserted: the dict stays ordered by last failure
            while len(self._clients) > MAX_CLIENTS_TRACKED:
                del self._clients[next(iter(self._clients))]
            if overall:
                self._all.append(now)


class DeviceCookies:
    """Signed random ids given to browsers that logged in, so that strangers' failures never
    lock them out (OWASP, "Slow Down Online Guessing Attacks with Device Cookies")."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def issue(self) -> str:
        nonce = secrets.token_urlsafe(18)
        return f"{nonce}.{self._sign(nonce)}"

    def verify(self, cookie: str) -> str:
        """The cookie's id if its signature holds, else empty."""
        nonce, _, signature = cookie.partition(".")
        if not nonce or len(cookie) > 100 or not hmac.compare_digest(signature, self._sign(nonce)):
            return ""
        return nonce

    def _sign(self, nonce: str) -> str:
        return hmac.new(self._key, nonce.encode(), hashlib.sha256).hexdigest()[:32]


class Auth:
    def __init__(
        self,
        *,
        user: str,
        password: str = "",
        token: str = "",
        clock: Callable[[], float] = time.monotonic,
        on_new_link: Callable[[str], None] | None = None,
        device_key: bytes = b"",
    ) -> None:
        self.user = user
        self._password = password
        self._token = token
        self.clock = clock
        self.limiter = LoginLimiter(clock=clock)
        self.devices = DeviceCookies(device_key or secrets.token_bytes(32))
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        self._on_new_link = on_new_link
        self._link_token = "" if self.has_credentials else secrets.token_urlsafe(24)

    @property
    def has_credentials(self) -> bool:
        return bool(self._password or self._token)

    @property
    def link_token(self) -> str:
        """The current one-time login token (no credentials configured), or empty."""
        return self._link_token

    # ------------------------------------------------------------------ logging in

    def login_with_secret(self, given: str, client: str, device: str = "") -> Session | None:
        """The login page: the password, or the API token. None (and a counted failure) otherwise.

        ``device``: the browser's device cookie, if any; a valid one is limited on its own
        failures only, so nobody else's guesses can keep its owner out."""
        device_id = self.devices.verify(device) if device else ""
        key, overall = (f"device {device_id}", False) if device_id else (client, True)
        self.limiter.check(key, overall=overall)
        via = "password" if same_secret(given, self._password) else ""
        if not via and same_secret(given, self._token):
            via = "token"
        if not via:
            self.limiter.failed(key, overall=overall)
            return None
        return self._new_session(via)

    def login_with_link(self, given: str, client: str) -> Session | None:
        """The one-time link printed at start. Once used, a new link is made (and announced).
        Never rate-limited: 192 random bits cannot be guessed, and a limit would let anyone's
        wrong guesses lock the owner out."""
        with self._lock:
            ok = bool(self._link_token) and same_secret(given, self._link_token)
            if ok:
                self._link_token = secrets.token_urlsafe(24)
                fresh = self._link_token
        if not ok:
            return None
        if self._on_new_link is not None:
            self._on_new_link(fresh)
        return self._new_session("link")

    def bearer(self, given: str, client: str) -> Principal | None:
        """A script's ``Authorization: Bearer`` token: the right one always gets through."""
        if same_secret(given, self._token):
            return Principal(self.user, "bearer", _number_of("bearer:" + self._token))
        self.limiter.check(client)
        self.limiter.failed(client)
        return None

    # ------------------------------------------------------------------ sessions

    def session(self, session_id: str) -> Session | None:
        if not session_id:
            return None
        now = self.clock()
        with self._lock:
            found = self._sessions.get(session_id)
            if found is None:
                return None
            if now - found.last_seen > SESSION_IDLE_SECONDS or now - found.created > SESSION_MAX_SECONDS:
                del self._sessions[session_id]
                return None
            found.last_seen = now
            return found

    def logout(self, session_id: str) -> None:
        with self._lock:
            self._sessions.pop(session_id, None)

    def _new_session(self, via: str) -> Session:
        now = self.clock()
        created = Session(
            id=secrets.token_urlsafe(32),
            user=self.user,
            csrf=secrets.token_urlsafe(32),
            via=via,
            created=now,
            last_seen=now,
        )
        with self._lock:
            if len(self._sessions) >= MAX_SESSIONS:
                oldest = min(self._sessions.values(), key=lambda s: s.last_seen)
                del self._sessions[oldest.id]
            self._sessions[created.id] = created
        return created


def _number_of(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:6], "big")
