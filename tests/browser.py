"""Shared parts of the browser tests: headless Chromium (Debian's) driven by Playwright, logged in
to a real web server (``tests/webapp.py``), at desktop and phone size.

``phone_fits(page)`` is the check "they fit a phone" stands on: the page does not scroll
sideways (``document.documentElement.scrollWidth <= innerWidth``) and no table cell or card is
cut off, by its own box or by any scrolling or clipping box around it.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "browser test password"
DESKTOP = {"viewport": {"width": 1280, "height": 900}}
PHONE = {
    "viewport": {"width": 390, "height": 844},
    "is_mobile": True,
    "has_touch": True,
    "device_scale_factor": 1,
}
SIZES = {"desktop": DESKTOP, "phone": PHONE}

playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="pip install -e '.[dev]' installs playwright"
)
needs_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="needs Debian's chromium (apt-get install chromium; .ci/run does it)"
)


def chromium() -> Any:
    """Headless Chromium for a test module: ``browser = pytest.fixture(scope="module")(chromium)``."""
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield chromium
        chromium.close()


def loopback_only(page: Any, outside: list[str]) -> None:
    """Abort (and record) every request that would leave 127.0.0.1: no CDN, no telemetry."""

    def check(route: Any) -> None:
        url = route.request.url
        host = urlsplit(url).hostname
        if url.startswith(("file:", "data:", "blob:")) or host in {"127.0.0.1", "localhost"}:
            route.continue_()
        else:
            outside.append(url)
            route.abort()

    page.route("**/*", check)


class Session:
    """A logged-in browser context at one size; collects JavaScript errors and outside requests."""

    def __init__(self, browser: Any, url: str, size: str = "desktop", **options: Any) -> None:
        self.context = browser.new_context(**SIZES[size], **options)
        self.url = url
        self.errors: list[str] = []
        self.outside: list[str] = []
        self.page = self.context.new_page()
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        loopback_only(self.page, self.outside)
        self.page.goto(f"{url}/login")
        self.page.fill("input[name=password]", PASSWORD)
        self.page.click("button[type=submit]")
        self.page.wait_for_selector("#live")

    def open(self, path: str, ready: str) -> Any:
        self.page.goto(self.url + path)
        self.page.wait_for_selector(ready, state="attached")
        return self.page

    def api(self, path: str) -> Any:
        """GET /api/v1 + path with the page's own session: what the page reads."""
        return self.page.evaluate(
            "path => fetch('/api/v1' + path, {headers: {Accept: 'application/json'}}).then(r => r.json())",
            path,
        )

    def close(self) -> None:
        self.context.close()
        assert self.outside == [], f"the browser tried to leave the machine: {self.outside}"
        assert self.errors == [], f"JavaScript errors: {self.errors}"


CLIPPED = """() => {
  const width = window.innerWidth, out = [];
  const cells = document.querySelectorAll('td, th, .card, .toast, button, input, select, h1, h2, p');
  for (const cell of cells) {
    const box = cell.getBoundingClientRect();
    if (!box.width || getComputedStyle(cell).visibility === 'hidden') continue;
    let right = width, left = 0, clipped = cell.scrollWidth > cell.clientWidth + 1 && getComputedStyle(cell).overflowX !== 'visible';
    for (let up = cell.parentElement; up; up = up.parentElement) {
      const style = getComputedStyle(up);
      if (style.overflowX !== 'visible') {
        const outer = up.getBoundingClientRect();
        right = Math.min(right, outer.right);
        left = Math.max(left, outer.left);
      }
    }
    if (clipped || box.right > right + 1 || box.left < left - 1) out.push((cell.innerText || cell.tagName).slice(0, 40) + ' @' + Math.round(box.left) + '..' + Math.round(box.right));
  }
  return out;
}"""


def phone_fits(page: Any) -> None:
    """No sideways scroll, and no table cell, card or text cut off (at the page's width)."""
    width = page.evaluate("() => window.innerWidth")
    scroll = page.evaluate("() => document.documentElement.scrollWidth")
    assert scroll <= width, f"{page.url}: the page scrolls sideways ({scroll} px wide at {width} px)"
    clipped = page.evaluate(CLIPPED)
    assert clipped == [], f"{page.url}: cut off at {width} px: {clipped}"


def pixels(png: bytes) -> Any:
    """An element screenshot as an RGB array (rows, columns, 3)."""
    import numpy as np
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
