"""The dashboard's confirmation dialog when the state changed under it (issue 18, point 2), in a
real headless Chromium: the trader is asked to close 1 position, a second opens, Confirm does
nothing but show the new question (saying why) in a new dialog; confirming that closes both."""

from __future__ import annotations

import pytest

from bot.domain import Side
from tests.browser import DESKTOP, PASSWORD, chromium, loopback_only, needs_chromium
from tests.helpers import make_app
from tests.webapp import WebThread

pytestmark = needs_chromium
browser = pytest.fixture(scope="module")(chromium)


def test_confirm_after_a_change_shows_the_new_question_instead(tmp_path, browser):
    app, _ = make_app(
        tmp_path / "bot.db",
        TRADEBOT_SYMBOLS="AAPL,BTC/USD",
        TRADEBOT_WEB_PORT="0",
        TRADEBOT_WEB_PASSWORD=PASSWORD,
        TRADEBOT_WEB_USER="ann",
    )
    assert app.service.place_manual("AAPL", Side.BUY, 5, "seed-aapl", by="test").status == "filled"
    outside: list[str] = []
    errors: list[str] = []
    with WebThread(app) as web:
        context = browser.new_context(**DESKTOP)
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        loopback_only(page, outside)
        page.goto(f"{web.url}/login")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_selector("#positions table")

        page.click("#flatten")
        page.wait_for_selector("#dialog .box")
        assert "Confirm: close the 1 position (5 AAPL) at market?" in page.inner_text("#dialog")
        # A second position opens while the dialog waits.
        assert app.service.place_manual("BTC/USD", Side.BUY, 0.01, "meanwhile", by="bob").status == "filled"
        page.click("#confirm")
        page.wait_for_selector("#dialog .replaces")
        shown = page.inner_text("#dialog")
        assert "Not done: things changed since you were asked to close the 1 position (5 AAPL)" in shown
        assert "Confirm: close all 2 positions (5 AAPL, 0.01 BTC/USD) at market?" in shown
        assert len(app.service.positions()) == 2  # nothing was sold

        page.click("#confirm")
        page.wait_for_selector("#dialog", state="hidden")
        page.wait_for_function(
            "() => !document.querySelector('#positions').innerText.includes('AAPL')", timeout=10_000
        )
        assert app.service.positions() == []
        context.close()
    app.db.dispose()
    assert outside == [] and errors == [], (outside, errors)
