"""``bot/web/auth.py`` applied to HTTP: who is asking, CSRF on every state change, safe headers.

* A request is authenticated by ``Authorization: Bearer TOKEN`` (scripts) or by the session
  cookie (browsers). The cookie is HttpOnly, SameSite=Strict, and Secure when the request came
  over HTTPS, directly or through a proxy that says so in ``X-Forwarded-Proto`` (Heroku's router).
* Every state-changing request (POST, PUT, PATCH, DELETE) made with the cookie must carry the
  session's CSRF token in ``X-CSRF-Token`` (the pages read it from a ``<meta>`` tag). Bearer
  requests carry no ambient credential, so they need none. The login form has its own
  double-submit token.
* A WebSocket is checked the same way, and its ``Origin`` must be this site.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, HTTPException, Request
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.web.auth import Principal, Session, TooManyAttempts, same_secret

if TYPE_CHECKING:
    from bot.web.app import WebContext

SESSION_COOKIE = "tradebot_session"
LOGIN_COOKIE = "tradebot_login"
DEVICE_COOKIE = "tradebot_device"  # a browser that logged in before: see bot/web/auth.py
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),  # the one-time login link never leaks in a Referer
    (b"cache-control", b"no-store"),
]


class LoginRequired(Exception):
    """No valid session or token; pages redirect to /login, the API answers 401."""


def context(connection: HTTPConnection) -> WebContext:
    return connection.app.state.ctx


def client_key(connection: HTTPConnection) -> str:
    """The client's address for the login limits: the connection's own, or what a trusted proxy
    says in X-Forwarded-For (``bot.web.config.Proxies``); a header from anyone else is ignored."""
    peer = connection.client.host if connection.client else "unknown"
    return context(connection).proxies.client(peer, connection.headers.getlist("x-forwarded-for"))


def is_https(connection: HTTPConnection) -> bool:
    proto = connection.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return connection.url.scheme in {"https", "wss"} or proto == "https"


def principal_of(connection: HTTPConnection) -> Principal | None:
    """Who is asking, or None. Raises TooManyAttempts after repeated wrong bearer tokens."""
    auth = context(connection).auth
    header = connection.headers.get("authorization", "")
    if header[:7].lower() == "bearer ":
        return auth.bearer(header[7:].strip(), client_key(connection))
    session = auth.session(connection.cookies.get(SESSION_COOKIE, ""))
    if session is None:
        return None
    return Principal(session.user, "session", session.chat_id, session)


def require_user(request: Request) -> Principal:
    try:
        principal = principal_of(request)
    except TooManyAttempts as exc:
        raise HTTPException(429, str(exc), headers={"Retry-After": f"{exc.retry_after:.0f}"}) from None
    if principal is None:
        raise LoginRequired()
    return principal


def require_csrf(request: Request, principal: Annotated[Principal, Depends(require_user)]) -> Principal:
    """For state-changing requests made with the session cookie: the CSRF token must match."""
    if request.method in UNSAFE_METHODS and principal.session is not None:
        given = request.headers.get("x-csrf-token", "")
        if not same_secret(given, principal.session.csrf):
            raise HTTPException(403, "missing or wrong CSRF token (send the X-CSRF-Token header)")
    return principal


def set_session_cookie(response: object, session: Session, secure: bool) -> None:
    response.set_cookie(  # type: ignore[attr-defined]
        SESSION_COOKIE, session.id, httponly=True, samesite="strict", secure=secure, path="/"
    )


def same_origin(connection: HTTPConnection) -> bool:
    """A WebSocket's Origin must be this site (browsers always send it; scripts may omit it)."""
    origin = connection.headers.get("origin")
    if origin is None:
        return True
    host = connection.headers.get("x-forwarded-host") or connection.headers.get("host", "")
    return origin.split("://", 1)[-1].rstrip("/").lower() == host.lower()


class SecurityHeaders:
    """Adds CSP, nosniff, frame denial, no-referrer and no-store to every HTTP answer."""

    def __init__(self, app: ASGIApp, *, cacheable_prefix: str = "/static/") -> None:
        self.app = app
        self.cacheable_prefix = cacheable_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cacheable = str(scope.get("path", "")).startswith(self.cacheable_prefix)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                for name, value in HEADERS:
                    if name == b"cache-control" and cacheable:
                        value = b"public, max-age=3600"
                    if name not in present:
                        headers.append((name, value))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)
