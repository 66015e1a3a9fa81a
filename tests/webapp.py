"""The real web server in a background thread, for the web tests and benchmarks.

``WebThread(app)`` runs ``bot.web.server.start_web`` on its own event loop, as ``tradebot run``
does on the main one, and exposes ``url`` and the lines it printed (the one-time login link).
``login(client, ...)`` logs an httpx client in the way a browser does: the login form, its
double-submit nonce, the session cookie, then the CSRF token from a page's meta tag.
"""

from __future__ import annotations

import asyncio
import re
import threading
from typing import Any

import httpx

from bot.app import App


class WebThread:
    def __init__(self, app: App) -> None:
        self.app = app
        self.lines: list[str] = []
        self.loop = asyncio.new_event_loop()
        self.server: Any = None
        self.error: BaseException | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="web-test-server", daemon=True)

    def __enter__(self) -> WebThread:
        self._thread.start()
        self._ready.wait(30)
        if self.error is not None:
            raise self.error
        if self.server is None:
            raise TimeoutError("the web server did not start within 30 s")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.server is not None:
            asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(15)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(15)
        self.app.web = None

    def _run(self) -> None:
        from bot.web.server import start_web

        asyncio.set_event_loop(self.loop)
        try:
            self.server = self.loop.run_until_complete(start_web(self.app, self.lines.append))
            self.app.web = self.server
            if self.server is not None:
                self.loop.run_until_complete(self.server.ready())
        except BaseException as exc:
            self.error = exc
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_forever()

    @property
    def url(self) -> str:
        return str(self.server.url)

    def login_link(self) -> str:
        links = [re.search(r"(http://\S+/login\?token=\S+)", line) for line in self.lines]
        found = [m.group(1) for m in links if m]
        assert found, f"no login link printed: {self.lines}"
        return found[-1]

    def call(self, func: Any, *args: Any) -> Any:
        """Run ``func(*args)`` on the server's event loop and return its result."""

        async def wrapper() -> Any:
            return func(*args)

        return asyncio.run_coroutine_threadsafe(wrapper(), self.loop).result(10)


def csrf_of(page: str) -> str:
    found = re.search(r'<meta name="csrf-token" content="([^"]+)"', page)
    assert found, "no CSRF token in the page"
    return found.group(1)


def login(client: httpx.Client, password: str, *, next_path: str = "/") -> httpx.Response:
    """Fill in the login form as a browser does; returns the final response (after redirects)."""
    form = client.get("/login", params={"next": next_path})
    nonce = re.search(r'name="nonce" value="([^"]+)"', form.text)
    assert nonce, form.text
    return client.post(
        "/login",
        data={"nonce": nonce.group(1), "password": password, "next": next_path},
        follow_redirects=True,
    )


def logged_in(base_url: str, password: str) -> tuple[httpx.Client, str]:
    """A client with a session and the CSRF token the pages carry."""
    client = httpx.Client(base_url=base_url, timeout=10)
    page = login(client, password)
    assert page.status_code == 200, page.text
    return client, csrf_of(page.text)
