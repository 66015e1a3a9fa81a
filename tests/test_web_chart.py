"""The symbol chart in a real browser, read from its pixels (issue 18, points 1 and 5).

- Where the Supertrend flips, the line breaks, as TradingView draws it: no segment joins the last
  bar of one side to the first of the other, on first load and after live updates. Lightweight
  Charts 4 joins a line across whitespace, so "two halves with whitespace" drew diagonals.
- The trader chooses which strategy lines to draw; the choice outlives a reload.
"""

from __future__ import annotations

import itertools

import pytest

from tests.browser import PASSWORD, Session, chromium, needs_chromium, pixels
from tests.helpers import make_app
from tests.webapp import WebThread

pytestmark = needs_chromium
browser = pytest.fixture(scope="module")(chromium)
LINE_WIDTH_SLACK = 3  # px around a segment's ends


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    app, clock = make_app(
        tmp_path_factory.mktemp("chart") / "bot.db",
        TRADEBOT_SYMBOLS="AAPL,BTC/USD",
        TRADEBOT_STRATEGIES="supertrend;bollinger",
        TRADEBOT_WEB_PORT="0",
        TRADEBOT_WEB_PASSWORD=PASSWORD,
    )
    with WebThread(app) as server:
        yield server, app, clock
    app.db.dispose()


def line_pixels(rgb):
    """Where the strategy lines' green (#1f9d55) or red (#d73a49) is: candles hidden, nothing else is."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    green = (g - r > 60) & (g - b > 30)
    red = (r - g > 80) & (r - b > 70)
    return green | red


def drawn_segments(page, label):
    """For each pair of neighbouring bars on screen: (flip?, any line pixel between them)."""
    page.evaluate(
        """label => { const c = window.tradebotPriceChart;
        c.candles.applyOptions({visible: false});
        c.showLines([label]); }""",
        label,
    )
    page.wait_for_timeout(200)
    geometry = page.evaluate(
        """label => { const c = window.tradebotPriceChart, d = window.tradebotBars;
        const values = d.lines[label];
        return d.time.map((t, i) => ({
          x: c.chart.timeScale().timeToCoordinate(t),
          y: values[i] === null ? null : c.candles.priceToCoordinate(values[i]),
          above: values[i] === null ? null : d.close[i] >= values[i]}));
        }""",
        label,
    )
    rgb = pixels(page.locator("#price-chart").screenshot())
    lit = line_pixels(rgb)
    plot_width = page.evaluate("() => window.tradebotPriceChart.chart.timeScale().width()")
    out = []
    for a, b in itertools.pairwise(geometry):
        if None in (a["x"], b["x"], a["y"], b["y"]) or not 0 < a["x"] < b["x"] < plot_width:
            continue
        x = round((a["x"] + b["x"]) / 2)
        top = max(0, round(min(a["y"], b["y"])) - LINE_WIDTH_SLACK)
        bottom = round(max(a["y"], b["y"])) + LINE_WIDTH_SLACK + 1
        out.append((a["above"] != b["above"], bool(lit[top:bottom, x].any())))
    return out


def supertrend_label(page) -> str:
    labels = page.evaluate("() => Object.keys(window.tradebotBars.lines)")
    return next(label for label in labels if label.startswith("supertrend"))


def test_the_supertrend_line_breaks_where_the_trend_flips(web, browser):
    server, app, clock = web
    session = Session(browser, server.url)
    page = session.open("/symbol/AAPL", "#price-chart canvas")
    page.wait_for_function("() => window.tradebotPriceChart && window.tradebotBars")
    label = supertrend_label(page)
    segments = drawn_segments(page, label)
    flips = [lit for flip, lit in segments if flip]
    steady = [lit for flip, lit in segments if not flip]
    assert len(flips) >= 2, f"too few flips on screen to judge: {len(flips)}"
    assert not any(flips), f"{sum(flips)} of {len(flips)} flips are joined by a segment"
    assert sum(steady) >= 0.95 * len(steady), "the line itself is not drawn"

    # Live updates: new bars arrive (the clock moves, a cycle message refreshes the page); the
    # trader's zoom onto older bars stays where it was.
    visible = "() => window.tradebotPriceChart.chart.timeScale().getVisibleRange()"
    # The chart applies a new range on its next animation frame: read it after two frames, or
    # "zoomed" is still the range from before the zoom.
    page.evaluate(
        """() => new Promise((done) => {
          window.tradebotPriceChart.chart.timeScale().setVisibleLogicalRange({from: 40, to: 100});
          requestAnimationFrame(() => requestAnimationFrame(done));
        })"""
    )
    zoomed = page.evaluate(visible)
    assert round(zoomed["to"] - zoomed["from"]) == 60 * 60, zoomed  # 60 one-minute bars on screen
    before = page.evaluate("() => window.tradebotBars.time[window.tradebotBars.time.length - 1]")
    for _ in range(30):
        clock.advance(minutes=1)
    server.app.web.ctx.hub.cycle_finished(app.engine.tick())
    page.wait_for_function(
        "before => window.tradebotBars.time[window.tradebotBars.time.length - 1] > before", arg=before
    )
    page.evaluate("() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))")
    assert page.evaluate(visible) == zoomed
    page.evaluate(
        "() => window.tradebotPriceChart.chart.timeScale().scrollToPosition(3, false)"
    )  # no animation
    segments = drawn_segments(page, label)
    assert not any(lit for flip, lit in segments if flip)
    session.close()
