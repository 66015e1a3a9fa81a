"""A walk-forward run's HTML report in a real browser (headless Chromium, as
``tests/test_web_browser.py``): it opens from disk with nothing fetched, shows the windows and the
in-sample vs out-of-sample table, and draws the stitched run's chart and trades."""

from __future__ import annotations

import subprocess
import sys

from tests.test_web_browser import browser, loopback_only, pytestmark, shoot  # noqa: F401


def test_walk_forward_report_opens_from_disk_with_its_windows(tmp_path, browser):  # noqa: F811
    report = tmp_path / "wf.html"
    done = subprocess.run(
        [sys.executable, "-m", "bot", "backtest", "--strategy", "supertrend", "--symbol", "BTC/USD",
         "--start", "2024-01-01", "--end", "2024-02-15", "--timeframe", "1h", "--source", "synthetic",
         "--param", "period=5..8", "--param", "multiplier=2,3", "--walk-forward", "2w/1w",
         "--html", str(report)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    context = browser.new_context(viewport={"width": 1280, "height": 900}, offline=True)
    page = context.new_page()
    errors: list[str] = []
    outside: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    loopback_only(page, outside)
    page.goto(report.as_uri())
    page.wait_for_function("() => window.tradebotReport && window.tradebotReport.price.count > 100")
    windows = page.locator("table.extra").first
    # out-of-sample weeks from Jan 15, 22, 29, Feb 5 and a last one from Feb 12 to the end (Feb 15)
    assert windows.locator("tbody tr").count() == 5
    assert "out-of-sample" in windows.locator("thead").inner_text()
    assert "gap" in page.locator("table.extra").nth(1).inner_text()
    assert page.locator("tr.trade").count() > 3
    assert "Sharpe" in page.inner_text("#metrics")
    shoot(page, tmp_path, "walkforward-report.png")
    context.close()
    assert outside == [] and errors == []
