"""The research page in headless Chromium: fill the form, run a sweep, watch it progress, read the
table with the deflated Sharpe ratio and the probability of backtest overfitting (checked against
the API's figures), open the HTML report (its scripts must run under the report's own CSP), and
the same result on a 390 px phone."""

from __future__ import annotations

import pytest

from tests.browser import PASSWORD, Session, chromium, needs_chromium, phone_fits
from tests.test_research_api import build
from tests.webapp import WebThread

pytestmark = needs_chromium
browser = pytest.fixture(scope="module")(chromium)

# Every progress drawing, recorded by the page itself as it happens.
RECORD = """() => {
  window.seen = [];
  new MutationObserver(() => {
    const bar = document.getElementById('job-bar');
    if (bar) window.seen.push([Number(bar.getAttribute('value')), Number(bar.max), document.getElementById('job-state').textContent]);
  }).observe(document.getElementById('app'), {childList: true, subtree: true});
}"""


def test_a_sweep_from_the_page(tmp_path, browser):
    app = build(tmp_path, TRADEBOT_WEB_PASSWORD=PASSWORD)
    with WebThread(app) as web:
        session = Session(browser, web.url)
        page = session.open("/research", "#research-form #run")
        page.evaluate(RECORD)
        page.select_option("select[name=strategy]", "supertrend")
        page.fill("input[name=param-period]", "5..304")
        page.fill("input[name=param-multiplier]", "1..4")
        page.select_option("select[name=data]", "sample")
        page.click("#run")
        page.wait_for_selector("#job-state.state-done", timeout=120_000)
        page.wait_for_selector("#overfitting")
        seen = page.evaluate("() => window.seen")
        assert any(text.startswith("Running") for _, _, text in seen), seen
        assert any(0 < done < total for done, total, _ in seen), f"no progress between 0 and the end: {seen}"
        assert seen[-1][0] == seen[-1][1] == 1200
        assert page.inner_text("#job-count").startswith("1,200 of 1,200 backtests")

        jobs = session.api("/research/jobs")
        result = session.api(f"/research/jobs/{jobs[0]['id']}")
        figures = result["figures"]
        cards = dict(
            zip(
                page.locator("#overfitting .card .label").all_inner_texts(),
                page.locator("#overfitting .card .value").all_inner_texts(),
                strict=True,
            )
        )
        assert cards["Deflated Sharpe ratio"] == f"{figures['overfitting']['deflated_sharpe']['dsr']:.2f}"
        assert cards["Probability of backtest overfitting"] == f"{figures['overfitting']['pbo']['pbo']:.2f}"
        assert cards["Combinations tried"] == "1,200"
        assert page.inner_text("#dsr-meaning") == figures["overfitting"]["meaning"]["deflated_sharpe"]
        assert page.inner_text("#pbo-meaning") == figures["overfitting"]["meaning"]["pbo"]
        rows = page.locator("#sweep tbody tr")
        assert rows.count() == 50  # the best 50; the sweep CSV has all 1,200
        first = rows.nth(0).locator("td").all_inner_texts()
        best = figures["sweep"]["rows"][0]
        assert first[1] == str(best["params"]["period"]) and first[4] == f"{best['stats']['sharpe']:.2f}"
        returns = page.locator("#result-cards .card .value").first.inner_text()
        assert returns == f"{figures['stats']['return_pct']:.2f}%"

        with page.context.expect_page() as opened:
            page.click("#file-report-html")
        report = opened.value
        errors: list[str] = []
        report.on("pageerror", lambda exc: errors.append(str(exc)))
        report.wait_for_function("() => window.tradebotReport && window.tradebotReport.price.count > 100")
        assert "Probability of backtest overfitting" in report.inner_text("body")
        assert errors == []
        report.close()
        session.close()

        phone = Session(browser, web.url, "phone")
        page = phone.open(f"/research?job={jobs[0]['id']}", "#sweep table")
        phone_fits(page)
        phone.close()
    app.db.dispose()
