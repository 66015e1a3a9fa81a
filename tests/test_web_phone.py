""" "They fit a phone", made true and checked on every page (issue 18, point 5).

At 390 px wide (an iPhone 12 to 15) no page scrolls sideways (``scrollWidth <= innerWidth``)
and no table cell, card or text is cut off, by its own box or by a scrolling box around it.
Before: the overview's P&L column was cut off, the symbol page was 429 px wide and the HTML
backtest report 457 px.
"""

from __future__ import annotations

import pytest

from tests import web_scenario
from tests.browser import PHONE, Session, chromium, needs_chromium, phone_fits
from tests.webapp import WebThread

pytestmark = needs_chromium
browser = pytest.fixture(scope="module")(chromium)

# Each page and what shows that it has drawn its data.
PAGES = [
    ("/", "#positions table"),
    ("/equity", "#equity-box canvas"),
    ("/profit?period=day", "#rows table"),
    ("/profit?period=week", "#rows table"),
    ("/profit?period=month", "#rows table"),
    ("/trades", "#rows table"),
    ("/orders", "#rows table"),
    ("/strategies", ".strategy table"),
    ("/risk", "#limits table"),
    ("/events", "#rows table"),
    ("/logs", "#log-lines"),
    ("/symbol/BTC/USD", "#symbol-position table"),
    ("/symbol/AAPL", "#price-chart canvas"),
]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    scenario = web_scenario.build(tmp_path_factory.mktemp("phone") / "bot.db")
    with WebThread(scenario.app) as server:
        yield scenario, server
    scenario.app.db.dispose()


def test_every_dashboard_page_fits_a_phone(world, browser):
    _, server = world
    session = Session(browser, server.url, "phone")
    for path, ready in PAGES:
        page = session.open(path, ready)
        page.wait_for_timeout(100)  # the rest of the page's slots fill in
        phone_fits(page)
    # The API's documentation (Swagger UI's own layout) does not scroll sideways either.
    page = session.open("/api/docs", ".swagger-ui .opblock")
    assert page.evaluate("() => document.documentElement.scrollWidth <= innerWidth")
    # A long message and a confirmation dialog fit too.
    page = session.open("/", "#positions table")
    page.click("#flatten")
    page.wait_for_selector("#dialog .box")
    phone_fits(page)
    session.close()

    anonymous = browser.new_context(**PHONE)
    login = anonymous.new_page()
    login.goto(f"{server.url}/login")
    phone_fits(login)
    anonymous.close()


def test_the_html_backtest_report_fits_a_phone(tmp_path, browser):
    from tests.test_web_report import html_report

    report, done = html_report(tmp_path)
    assert done.returncode == 0, done.stderr
    context = browser.new_context(**PHONE, offline=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(report.as_uri())
    page.wait_for_function("() => window.tradebotReport && window.tradebotReport.price.count > 100")
    phone_fits(page)
    context.close()
    assert errors == []
