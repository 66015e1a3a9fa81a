"""The HTML pages: small server-rendered shells that ``static/app.js`` fills from ``/api/v1``.

The same JSON feeds the pages, the scripts and the tests, and one WebSocket keeps every page
current. The login page works without JavaScript. Nothing here carries a secret: the session id
lives in an HttpOnly cookie, and the CSRF token in the page is worthless without it.
"""

from __future__ import annotations

import html
import secrets
from typing import Annotated
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response

from bot.web.assets import STATIC, VENDOR, MissingAsset
from bot.web.auth import DEVICE_SECONDS, Principal, TooManyAttempts, same_secret
from bot.web.security import (
    DEVICE_COOKIE,
    LOGIN_COOKIE,
    SESSION_COOKIE,
    client_key,
    context,
    is_https,
    principal_of,
    require_user,
    set_session_cookie,
)

router = APIRouter(include_in_schema=False)
User = Annotated[Principal, Depends(require_user)]

NAV = (
    ("/", "overview", "Overview"),
    ("/equity", "equity", "Equity"),
    ("/profit", "profit", "Profit"),
    ("/trades", "trades", "Trades"),
    ("/orders", "orders", "Orders"),
    ("/strategies", "strategies", "Strategies"),
    ("/risk", "risk", "Risk"),
    ("/events", "events", "Events"),
    ("/logs", "logs", "Logs"),
    ("/api/docs", "docs", "API"),
)
TITLES = {page: title for _, page, title in NAV} | {"symbol": "Chart"}
CHART_PAGES = {"symbol", "equity", "profit"}


def shell(page: str, csrf: str, *, title: str = "", symbol: str = "") -> HTMLResponse:
    links = "".join(
        f'<a href="{href}"{" class=current" if name == page else ""}>{label}</a>' for href, name, label in NAV
    )
    scripts = ['<script src="/static/vendor/lightweight-charts.js"></script>'] if page in CHART_PAGES else []
    scripts += [f'<script src="/static/{name}"></script>' for name in ("chart.js", "core.js", "pages.js")]
    heading = html.escape(title or TITLES.get(page, page))
    body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="csrf-token" content="{html.escape(csrf)}">
<title>tradebot · {heading}</title>
<link rel="stylesheet" href="/static/style.css">
<script src="/static/theme.js"></script>
</head>
<body data-page="{page}" data-symbol="{html.escape(symbol)}">
<header>
  <a class="brand" href="/">tradebot</a>
  <nav>{links}</nav>
  <span id="badge" class="badge">…</span>
  <span id="clock" class="clock" title="times on this account are on the simulated market's clock" hidden></span>
  <span id="live" class="live off" title="live updates">offline</span>
  <button id="theme" class="link" type="button">Theme: auto</button>
  <button id="logout" class="link" type="button">Log out</button>
</header>
<div id="banner" hidden></div>
<main id="app"><h1>{heading}</h1><noscript>This dashboard needs JavaScript; the API at /api/v1 does not.</noscript></main>
<div id="dialog" hidden></div>
{"".join(scripts)}
</body></html>"""
    return HTMLResponse(body)


def _page(page: str):
    def view(request: Request) -> Response:
        principal = _principal_or_none(request)
        if principal is None or principal.session is None:
            return _to_login(request)
        return shell(page, principal.session.csrf)

    return view


for _href, _name, _label in NAV:
    if _name != "docs":
        router.add_api_route(_href, _page(_name), methods=["GET"], response_class=HTMLResponse)


@router.get("/symbol/{symbol:path}", response_class=HTMLResponse)
def symbol_page(request: Request, symbol: str) -> Response:
    principal = _principal_or_none(request)
    if principal is None or principal.session is None:
        return _to_login(request)
    return shell("symbol", principal.session.csrf, title=symbol.upper(), symbol=symbol.upper())


@router.get("/api/docs", response_class=HTMLResponse)
def docs(request: Request) -> Response:
    principal = _principal_or_none(request)
    if principal is None or principal.session is None:
        return _to_login(request)
    return HTMLResponse(f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="csrf-token" content="{html.escape(principal.session.csrf)}">
<title>tradebot API</title>
<link rel="stylesheet" href="/static/vendor/swagger-ui.css">
</head><body>
<p style="font-family:sans-serif;margin:1em"><a href="/">&larr; dashboard</a> · scripts authenticate with
<code>Authorization: Bearer $TRADEBOT_WEB_TOKEN</code>; live events on the WebSocket <code>/api/v1/ws</code>.</p>
<div id="swagger"></div>
<script src="/static/vendor/swagger-ui-bundle.js"></script>
<script src="/static/docs.js"></script>
</body></html>""")


@router.get("/api/openapi.json")
def openapi(request: Request, user: User) -> JSONResponse:
    return JSONResponse(request.app.openapi())


# ---------------------------------------------------------------------- login


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, token: str = "", next: str = "/") -> Response:
    ctx = context(request)
    if token:
        try:
            session = ctx.auth.login_with_link(token, client_key(request))
        except TooManyAttempts as exc:
            return _login_form(request, str(exc), next, status=429)
        if session is None:
            return _login_form(
                request,
                "This login link is wrong or was already used: open the newest one printed by tradebot run.",
                next,
                status=403,
            )
        response = RedirectResponse(_safe_next(next), status_code=303)
        set_session_cookie(response, session, is_https(request))
        return response
    return _login_form(request, "", next)


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    ctx = context(request)
    form = {k: v[0] for k, v in parse_qs((await request.body()).decode(errors="replace")).items()}
    next_path = form.get("next", "/")
    if not same_secret(form.get("nonce", ""), request.cookies.get(LOGIN_COOKIE, "")):
        return _login_form(request, "The login form expired: try again.", next_path, status=403)
    device = request.cookies.get(DEVICE_COOKIE, "")
    try:
        session = ctx.auth.login_with_secret(form.get("password", ""), client_key(request), device)
    except TooManyAttempts as exc:
        return _login_form(request, str(exc), next_path, status=429, retry_after=exc.retry_after)
    if session is None:
        return _login_form(request, "Wrong password.", next_path, status=401)
    response = RedirectResponse(_safe_next(next_path), status_code=303)
    set_session_cookie(response, session, is_https(request))
    response.delete_cookie(LOGIN_COOKIE, path="/login")
    if not ctx.auth.devices.verify(device):  # this browser proved itself: strangers cannot lock it out
        response.set_cookie(
            DEVICE_COOKIE,
            ctx.auth.devices.issue(),
            max_age=int(DEVICE_SECONDS),
            httponly=True,
            samesite="strict",
            secure=is_https(request),
            path="/login",
        )
    return response


@router.post("/logout")
def logout(request: Request, user: User) -> Response:
    if user.session is not None:
        if not same_secret(request.headers.get("x-csrf-token", ""), user.session.csrf):
            raise HTTPException(403, "missing or wrong CSRF token (send the X-CSRF-Token header)")
        context(request).auth.logout(user.session.id)
    response = JSONResponse({"ok": True})
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def _login_form(
    request: Request, error: str, next_path: str, *, status: int = 200, retry_after: float | None = None
) -> HTMLResponse:
    ctx = context(request)
    nonce = secrets.token_urlsafe(24)
    if ctx.auth.has_credentials:
        form = f"""<form method="post" action="/login">
  <input type="hidden" name="nonce" value="{nonce}">
  <input type="hidden" name="next" value="{html.escape(_safe_next(next_path))}">
  <label>Password <input type="password" name="password" autocomplete="current-password" autofocus required></label>
  <button type="submit">Log in</button>
</form>"""
    else:
        form = (
            "<p>No password is set, so this dashboard listens on this computer only. Open the login link "
            "that <code>tradebot run</code> printed on its standard output.</p>"
            "<p>To log in with a password instead, set <code>TRADEBOT_WEB_PASSWORD</code>.</p>"
        )
    message = f'<p class="error" role="alert">{html.escape(error)}</p>' if error else ""
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>tradebot · log in</title><link rel="stylesheet" href="/static/style.css">
<script src="/static/theme.js"></script></head>
<body class="login"><main><h1>tradebot</h1>{message}{form}</main></body></html>"""
    response = HTMLResponse(page, status_code=status)
    if retry_after is not None:
        response.headers["Retry-After"] = f"{retry_after:.0f}"
    response.set_cookie(
        LOGIN_COOKIE, nonce, httponly=True, samesite="strict", secure=is_https(request), path="/login"
    )
    return response


def _principal_or_none(request: Request) -> Principal | None:
    try:
        return principal_of(request)
    except TooManyAttempts:
        return None


def _to_login(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


def _safe_next(path: str) -> str:
    """Only a path on this site: never //evil.example or https://..."""
    return path if path.startswith("/") and not path.startswith("//") and "\\" not in path else "/"


# ---------------------------------------------------------------------- static files


@router.get("/static/vendor/{name}")
def vendor(name: str) -> FileResponse:
    locate = VENDOR.get(name)
    if locate is None:
        raise HTTPException(404, "no such file")
    try:
        path = locate()
    except MissingAsset as exc:
        raise HTTPException(500, str(exc)) from None
    return FileResponse(path)


@router.get("/static/{name}")
def static(name: str) -> FileResponse:
    path = STATIC / name
    if "/" in name or name.startswith(".") or not path.is_file():
        raise HTTPException(404, "no such file")
    return FileResponse(path)
