"""The dashboard beside FreqUI, used in a real browser (issue 18, points 4 and 5).

- A Cancel button on each working order, through the same confirmation as every action.
- Toasts stack: several at once never overlap into unreadable text, on a desktop or a phone.
- A dark theme that follows the system, and a toggle that outlives a reload; the charts follow.
- A log viewer: the recent lines, secrets masked, filtered by level, new lines arriving live.
- Which strategy lines the symbol chart draws is the trader's choice, kept across reloads.
- The profit tables switch between days, weeks and months.
"""

from __future__ import annotations

import itertools
import logging

import pytest

from bot.domain import OrderStatus
from bot.logs import setup_logging
from tests import web_scenario
from tests.browser import Session, chromium, needs_chromium
from tests.webapp import WebThread

pytestmark = needs_chromium
browser = pytest.fixture(scope="module")(chromium)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    scenario = web_scenario.build(
        tmp_path_factory.mktemp("dashboard") / "bot.db",
        TELEGRAM_BOT_TOKEN="123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1",
    )
    with WebThread(scenario.app) as server:
        yield scenario, server
    scenario.app.db.dispose()


def test_a_working_order_is_canceled_from_its_row_after_the_confirmation(world, browser):
    scenario, server = world
    session = Session(browser, server.url)
    page = session.open("/", "#orders table")
    button = page.locator(f'#orders button.cancel-order[data-order="{scenario.working}"]')
    assert button.count() == 1
    assert page.locator("#positions button.cancel-order").count() == 0  # positions are sold, not canceled
    button.click()
    page.wait_for_selector("#dialog .box")
    assert (
        f"cancel buy 3 ETH/USD (partially_filled, 1 filled; what filled stays) {scenario.working}"
        in page.inner_text("#dialog")
    )
    assert scenario.app.broker.get_order_by_client_id(scenario.working).status is OrderStatus.PARTIALLY_FILLED
    # The scenario's clock is months behind the browser's: the dialog counts down from the answer's
    # expires_in, not from expires_at read with the browser's clock (it closed within 250 ms).
    page.wait_for_timeout(800)
    assert page.is_visible("#dialog #confirm")
    left = int(page.inner_text("#dialog .countdown").strip(" ()s"))
    assert 50 <= left <= 60, left
    page.click("#confirm")
    page.wait_for_function(
        "() => !document.querySelector('#orders table')", timeout=10_000
    )  # "No open orders."
    assert scenario.app.broker.get_order_by_client_id(scenario.working).status is OrderStatus.CANCELED
    assert scenario.app.service.order(scenario.working).status is OrderStatus.CANCELED
    assert "Canceled" in page.inner_text("#toasts")
    session.close()


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_toasts_never_overlap(world, browser, size):
    _, server = world
    session = Session(browser, server.url, size)
    page = session.open("/", "form.order")
    for qty in ("ten", "-3", "1e9 shares, which is not a number the order form takes at all"):
        page.fill("form.order input[name=symbol]", "AAPL")
        page.fill("form.order input[name=qty]", qty)
        page.click("form.order button[type=submit]")
    page.click("#pause")
    page.wait_for_function("() => document.querySelectorAll('.toast').length >= 4")
    boxes = page.evaluate(
        "() => [...document.querySelectorAll('.toast')].map(t => { const b = t.getBoundingClientRect();"
        " return {top: b.top, bottom: b.bottom, left: b.left, right: b.right, text: t.innerText}; })"
    )
    width, height = page.evaluate("() => [innerWidth, innerHeight]")
    for a, b in itertools.combinations(boxes, 2):
        assert a["bottom"] <= b["top"] or b["bottom"] <= a["top"], f"toasts overlap: {a} and {b}"
    for box in boxes:
        assert box["left"] >= 0 and box["right"] <= width and box["top"] >= 0 and box["bottom"] <= height, box
    assert any("Paused" in box["text"] for box in boxes)
    page.click("#resume")
    session.close()


def background(page) -> str:
    return page.evaluate("() => getComputedStyle(document.body).backgroundColor")


DARK, LIGHT = "rgb(13, 17, 23)", "rgb(246, 248, 250)"


def test_the_theme_follows_the_system_and_the_toggle(world, browser):
    _, server = world
    session = Session(browser, server.url, color_scheme="dark")
    page = session.open("/symbol/BTC/USD", "#price-chart canvas")
    page.wait_for_function("() => window.tradebotPriceChart")
    chart_background = "() => window.tradebotPriceChart.chart.options().layout.background.color"
    assert background(page) == DARK and page.inner_text("#theme") == "Theme: auto"
    assert page.evaluate(chart_background) == "#161b22"
    page.click("#theme")  # auto -> dark
    assert page.inner_text("#theme") == "Theme: dark" and background(page) == DARK
    page.click("#theme")  # dark -> light, though the system is dark
    assert page.inner_text("#theme") == "Theme: light" and background(page) == LIGHT
    assert page.evaluate(chart_background) == "#ffffff"
    page.reload()
    page.wait_for_selector("#price-chart canvas")
    assert background(page) == LIGHT and page.inner_text("#theme") == "Theme: light"  # kept in this browser
    page.click("#theme")  # light -> auto: the system's dark again
    assert page.inner_text("#theme") == "Theme: auto" and background(page) == DARK
    session.close()

    light = Session(browser, server.url, color_scheme="light")
    page = light.open("/", "#summary .card")
    assert background(page) == LIGHT
    page.emulate_media(color_scheme="dark")  # the system switches at dusk: the page follows
    page.wait_for_function(f"() => getComputedStyle(document.body).backgroundColor === '{DARK}'")
    light.close()


@pytest.fixture
def logging_on(world):
    scenario, _ = world
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    setup_logging("INFO", "text", scenario.app.settings.secrets())
    yield scenario.app.settings.secrets()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def test_the_log_viewer_shows_recent_lines_masked_by_level_and_live(world, browser, logging_on):
    _, server = world
    secret = next(s for s in logging_on if s.startswith("123456789:"))
    log = logging.getLogger("bot.test_dashboard")
    log.info("calm line one")
    log.warning("a warning that quotes the token %s", secret)
    log.error("an error line")
    session = Session(browser, server.url)
    page = session.open("/logs", "#log-lines .line")
    text = page.inner_text("#log-lines")
    assert "calm line one" in text and "an error line" in text
    assert "a warning that quotes the token ***" in text and secret not in page.content()
    page.select_option("#filters select[name=level]", "WARNING")
    page.wait_for_function(
        "() => { const t = document.querySelector('#log-lines').innerText;"
        " return !t.includes('calm line one') && t.includes('an error line'); }"
    )
    text = page.inner_text("#log-lines")
    assert "a warning that quotes the token ***" in text and "an error line" in text

    server.call(log.error, "a new error, while the page is open")  # on the server's event loop
    page.wait_for_function(
        "() => document.querySelector('#log-lines').innerText.includes('a new error, while the page is open')",
        timeout=10_000,
    )
    log.info("an info line the filter hides")
    log.error("and one more error")
    page.wait_for_function(
        "() => document.querySelector('#log-lines').innerText.includes('and one more error')"
    )
    assert "an info line the filter hides" not in page.inner_text("#log-lines")
    lines = page.locator("#log-lines .line")
    assert lines.count() == len(set(lines.all_inner_texts()))  # each line once
    session.close()


def test_the_trader_chooses_which_lines_the_chart_draws(world, browser):
    _, server = world
    session = Session(browser, server.url)
    page = session.open("/symbol/AAPL", "#price-chart canvas")
    page.wait_for_function("() => window.tradebotPriceChart")
    labels = page.evaluate("() => Object.keys(window.tradebotBars.lines)")
    assert len(labels) == 4  # supertrend, and the three Bollinger bands
    visible = "() => Object.fromEntries(Object.entries(window.tradebotPriceChart.lines).map(([l, s]) => [l, s.options().visible]))"
    assert all(page.evaluate(visible).values())
    bands = [label for label in labels if label.startswith("bollinger")]
    for label in bands:
        page.locator(f'.line-choice input[value="{label}"]').uncheck()
    assert page.evaluate(visible) == {label: not label.startswith("bollinger") for label in labels}
    page.reload()
    page.wait_for_function("() => window.tradebotPriceChart")
    assert page.evaluate(visible) == {label: not label.startswith("bollinger") for label in labels}
    assert not page.locator(f'.line-choice input[value="{bands[0]}"]').is_checked()
    session.close()


def test_the_profit_tables_switch_between_days_weeks_and_months(world, browser):
    _, server = world
    session = Session(browser, server.url)
    page = session.open("/profit", "#rows table")
    first = "() => document.querySelector('#rows tbody td').innerText"
    assert page.evaluate(first) == "2026-03-02"
    page.click("#periods [data-period=week]")
    page.wait_for_function(f"() => ({first})() === '2026-W10'")
    page.click("#periods [data-period=month]")
    page.wait_for_function(f"() => ({first})() === '2026-03'")
    assert page.url.endswith("/profit?period=month")  # a link to this view
    session.close()
