"""The dashboard in a real browser: headless Chromium (Debian's) driven by Playwright.

A trader logs in, sees the simulated positions, watches a fill appear without reloading, pauses
from the page and sees /status say paused, looks at a symbol's chart; the HTML backtest report
opens from disk and its chart draws. Every request the browser makes is checked to stay on
127.0.0.1 (or the file itself): no CDN. Screenshots go to the test's folder, and to
``$TRADEBOT_SCREENSHOTS`` when set.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from bot.commands import Caller
from bot.domain import Side
from tests.browser import PASSWORD, chromium, loopback_only, needs_chromium
from tests.helpers import make_app
from tests.webapp import WebThread

pytestmark = needs_chromium
browser = pytest.fixture(scope="module")(chromium)


def shoot(page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True)
    if os.environ.get("TRADEBOT_SCREENSHOTS"):
        folder = Path(os.environ["TRADEBOT_SCREENSHOTS"])
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, folder / name)
    assert path.stat().st_size > 5_000  # a real picture, not an empty page
    return path


def test_trader_logs_in_watches_a_fill_and_pauses(tmp_path, browser):
    app, _ = make_app(
        tmp_path / "bot.db",
        TRADEBOT_SYMBOLS="AAPL,BTC/USD,ETH/USD",
        TRADEBOT_WEB_PORT="0",
        TRADEBOT_WEB_PASSWORD=PASSWORD,
        TRADEBOT_WEB_USER="ann",
    )
    # No engine cycle: the strategy opens nothing by itself, so the book is exactly what we place.
    assert app.service.place_manual("AAPL", Side.BUY, 5, "seed-aapl", by="test").status == "filled"
    outside: list[str] = []
    errors: list[str] = []
    with WebThread(app) as web:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        loopback_only(page, outside)

        page.goto(f"{web.url}/")  # not logged in: the login page
        assert "/login" in page.url
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_selector("#positions table")
        assert page.locator("#positions").inner_text().count("AAPL") >= 1
        # The simulated market: its times are labelled as on the simulated clock, as in the console.
        assert page.inner_text("#clock").startswith("simulated clock: 2026-")
        assert "Last cycle (simulated clock)" in page.inner_text("#summary")
        assert "Time (simulated clock)" in page.inner_text("#alerts")
        page.wait_for_selector("#live.on")  # the WebSocket is connected
        page.evaluate("() => { window.__sameDocument = true; }")

        # A fill happens in the bot: the page shows it without reloading.
        outcome = app.service.place_manual("BTC/USD", Side.BUY, 0.01, "from-the-engine", by="test")
        assert outcome.status == "filled"
        page.wait_for_function(
            "() => document.querySelector('#positions').innerText.includes('BTC/USD')", timeout=10_000
        )
        page.wait_for_function(
            "() => document.querySelector('#alerts').innerText.includes('Bought 0.01 BTC/USD')"
        )
        assert page.evaluate("() => window.__sameDocument") is True
        shoot(page, tmp_path, "overview.png")

        # Pause from the page; /status (console or Telegram) says paused.
        page.click("#pause")
        page.wait_for_selector("#badge.paused")
        page.wait_for_selector("#resume")
        status = app.router.handle("/status", Caller(transport="console", chat_id=0)).text
        assert "State: PAUSED since" in status and "by ann (web)" in status
        assert "Paused by ann (web) since" in page.inner_text("#banner")
        assert "Trading paused by ann (web)" in page.inner_text("#alerts")

        # The audit log, filtered by a kind the server lists (every kind the log records).
        page.goto(f"{web.url}/events")
        page.wait_for_selector("#filters select[name=kind] option[value=database_down]", state="attached")
        page.select_option("#filters select[name=kind]", "paused")
        page.wait_for_function(
            "() => [...document.querySelectorAll('#rows tbody tr')].length > 0 && "
            "[...document.querySelectorAll('#rows tbody tr')].every(r => r.innerText.includes('paused'))"
        )
        assert "Trading paused by ann (web)" in page.inner_text("#rows")
        page.goto(f"{web.url}/")
        page.wait_for_selector("#resume")

        # A dangerous action waits for the confirmation dialog.
        page.click("#flatten")
        page.wait_for_selector("#dialog .box")
        assert "close all 2 positions" in page.inner_text("#dialog")
        page.click("#cancel")
        page.wait_for_selector("#dialog", state="hidden")
        assert len(app.service.positions()) == 2

        # The symbol page: candles, the Supertrend band, entries and the position's lines.
        page.goto(f"{web.url}/symbol/BTC/USD")
        page.wait_for_function("() => window.tradebotPriceChart && window.tradebotPriceChart.count > 20")
        assert page.locator("#price-chart canvas").count() >= 1
        assert page.evaluate("() => window.tradebotPriceChart.priceLines.length") == 3  # entry, stop, target
        assert "Times in UTC (simulated clock)." in page.inner_text("#chart-box")
        shoot(page, tmp_path, "symbol.png")

        # A phone.
        phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
        phone.add_cookies(context.cookies())
        small = phone.new_page()
        loopback_only(small, outside)
        small.goto(f"{web.url}/")
        small.wait_for_selector("#positions table")
        assert (
            small.evaluate("() => document.documentElement.scrollWidth") <= 390 + 1
        )  # no sideways page scroll
        shoot(small, tmp_path, "overview-phone.png")
        phone.close()
        context.close()
    app.db.dispose()
    assert outside == [], f"the browser tried to leave the machine: {outside}"
    assert errors == [], f"JavaScript errors: {errors}"


def test_html_backtest_report_opens_from_disk_and_draws(tmp_path, browser):
    from tests.test_web_report import html_report

    report, done = html_report(tmp_path)
    assert done.returncode == 0, done.stderr
    context = browser.new_context(viewport={"width": 1280, "height": 900}, offline=True)
    page = context.new_page()
    errors: list[str] = []
    outside: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    loopback_only(page, outside)
    page.goto(report.as_uri())
    page.wait_for_function("() => window.tradebotReport && window.tradebotReport.price.count > 100")
    assert page.locator("#price canvas").count() >= 1 and page.locator("#equity canvas").count() >= 1
    trades = page.locator("tr.trade").count()
    assert trades > 3
    before = page.evaluate(
        "() => JSON.stringify(window.tradebotReport.price.chart.timeScale().getVisibleRange())"
    )
    page.locator("tr.trade").nth(trades // 2).click()
    page.wait_for_function(
        "before => JSON.stringify(window.tradebotReport.price.chart.timeScale().getVisibleRange()) !== before",
        arg=before,
    )
    assert "Sharpe" in page.inner_text("#metrics")
    shoot(page, tmp_path, "report.png")
    context.close()
    assert outside == [] and errors == []
