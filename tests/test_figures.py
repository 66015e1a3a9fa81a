"""Figures mean what they say, and state that outlives a run says so (issue 10, points 3 and 5).

- The cycle line counts orders placed, entries blocked and signals ignored apart ("1 orders" was
  logged for an ignored signal, "3 orders" for three entries blocked while paused).
- While paused, blocked entries are counted (in /status and the resume alert), not alerted one by
  one; the banner and /status say "PAUSED since ... by ...".
- /pnl shows Sharpe and Sortino only with enough history ("Sharpe -63.46" after one trade).
- Numbers for people: "Last trade", "1 open trade", no "-0.00".
"""

from __future__ import annotations

import logging
import re
from datetime import timedelta

import numpy as np
import pytest

from bot import formatting as fmt
from bot.commands import Caller
from bot.domain import EventKind
from bot.strategy import Strategy, StrategyOutput
from bot.views import OrderOutcome, TickReport
from tests.helpers import START, make_app

CONSOLE = Caller("console", chat_id=0, name="console")


class AlwaysIn(Strategy):
    """A buy on every bar: a repeating level signal."""

    name = "always_in"

    def compute(self, bars):
        return StrategyOutput(signal=np.ones(len(bars), dtype=np.int8))


@pytest.fixture
def always_in(tmp_path):
    app, clock = make_app(tmp_path / "t.db", TRADEBOT_SYMBOLS="AAPL,MSFT,SPY")
    app.engine.strategies[:] = [AlwaysIn()]
    return app, clock


def cycle_line(caplog) -> str:
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("tick: ")]
    assert lines, "no cycle line logged"
    return lines[-1]


def test_the_cycle_line_counts_placed_blocked_and_ignored_apart(always_in, caplog):
    app, clock = always_in
    caplog.set_level(logging.INFO, logger="bot.engine")
    clock.advance(minutes=1)
    app.engine.tick()
    assert "3 signals: 3 orders placed, 0 entries blocked, 0 signals ignored" in cycle_line(caplog)
    clock.advance(minutes=1)
    app.engine.tick()  # the level signal repeats while held: ignored, not an order
    assert "3 signals: 0 orders placed, 0 entries blocked, 3 signals ignored" in cycle_line(caplog)


def test_entries_blocked_while_paused_are_counted_not_alerted(always_in, caplog):
    app, clock = always_in
    caplog.set_level(logging.INFO, logger="bot.engine")
    app.service.pause(by="ann")
    for _ in range(2):
        clock.advance(minutes=1)
        app.engine.tick()
        assert "3 signals: 0 orders placed, 3 entries blocked, 0 signals ignored" in cycle_line(caplog)
    assert not [e for e in app.service.recent_events(100) if e.kind is EventKind.RISK_BLOCKED]
    status = app.router.handle("/status", CONSOLE).text
    assert re.search(
        r"^State: PAUSED since \S+ \S+ UTC \(simulated clock\) by ann: no new entries, exits still run; "
        r"6 entries blocked since$",
        status,
        re.M,
    ), status
    assert app.router.handle("/resume", CONSOLE).text == "Resumed: new entries allowed."
    resumed = app.service.recent_events(1)[0]
    assert resumed.message == "Trading resumed by console. 6 entries were blocked while paused."
    # Other blocks are still alerted one by one, with the reason.
    app.service.set_risk("max_open_trades", 1)
    clock.advance(minutes=1)
    app.engine.tick()
    blocked = [e for e in app.service.recent_events(100) if e.kind is EventKind.RISK_BLOCKED]
    assert len(blocked) == 2 and all("max open trades" in e.message for e in blocked)


def test_the_banner_says_paused_since_when_and_by_whom(tmp_path):
    app, clock = make_app(tmp_path / "t.db")
    app.service.pause(by="ann")
    again, _ = make_app(tmp_path / "t.db", clock=clock)  # the next start
    line = next(line for line in again.banner if line.startswith("Trading is PAUSED"))
    assert line == (
        f"Trading is PAUSED since {START:%Y-%m-%d %H:%M:%S} UTC (simulated clock) by ann: no new entries, "
        "exits still run. /resume allows entries."
    )
    app.service.resume(by="ann")
    resumed, _ = make_app(tmp_path / "t.db", clock=clock)
    assert not [line for line in resumed.banner if "PAUSED" in line]


def test_pnl_holds_back_sharpe_and_sortino_until_the_history_means_something(tmp_path):
    app, clock = make_app(tmp_path / "t.db", TRADEBOT_SYMBOLS="AAPL")
    clock.advance(minutes=1)
    app.engine.tick()
    token = app.router.handle("/buy AAPL 10", Caller("console", chat_id=0, sent_at=clock.now())).confirmation
    app.router.confirm(token.token, Caller("console", chat_id=0))
    clock.advance(minutes=30)
    app.engine.tick()
    app.router.confirm(app.router.handle("/sell AAPL all", CONSOLE).confirmation.token, CONSOLE)
    report = app.service.pnl()
    assert report.trades == 1 and report.sharpe is None and report.sortino is None
    text = app.router.handle("/pnl", CONSOLE).text
    assert re.search(
        r"^Sharpe, Sortino: not yet: they need a day and 30 equity snapshots \(so far \d+ equity snapshots over "
        r"0\.\d h\)$",
        text,
        re.M,
    ), text
    assert "Sharpe:" not in text
    # A day and more of snapshots later, they are shown.
    for _ in range(30 * 24):
        clock.advance(minutes=5)
        app.service.sync()
        app.service.snapshot_equity(force=True)
    report = app.service.pnl()
    assert report.sharpe is not None and report.sortino is not None
    assert re.search(
        r"^Sharpe: -?\d+\.\d\d  Sortino: -?\d+\.\d\d  Max drawdown: ",
        app.router.handle("/pnl", CONSOLE).text,
        re.M,
    )


def test_numbers_are_written_for_people():
    when = START
    assert fmt.trades([_trade(when)]).startswith("Last trade (times UTC):")
    assert fmt.trades([_trade(when)] * 3, simulated=True).startswith(
        "Last 3 trades (times on the simulated clock, UTC):"
    )
    assert (
        fmt.plural(1, "open trade") == "1 open trade"
        and fmt.plural(1000, "entry", "entries") == "1,000 entries"
    )
    assert fmt.signed(-0.001) == "+0.00" and fmt.signed(-1234.5) == "-1,234.50"
    assert (
        fmt.qty(1_000_000) == "1,000,000"
        and fmt.qty(0.0050005) == "0.0050005"
        and fmt.qty(1e-300) == "1e-300"
    )
    report = TickReport(
        started=when,
        finished=when + timedelta(seconds=1),
        signals=4,
        orders=[
            OrderOutcome("filled", "AAPL", ""),
            OrderOutcome("blocked", "MSFT", ""),
            OrderOutcome("ignored", "SPY", ""),
            OrderOutcome("duplicate", "QQQ", ""),
        ],
    )
    assert fmt.cycle(report) == (
        "4 signals: 1 order placed, 1 entry blocked, 1 signal ignored, 1 order already placed"
    )


def _trade(when):
    from bot.domain import Trade

    return Trade(
        symbol="AAPL",
        strategy="manual",
        qty=1,
        entry_time=when,
        entry_price=100,
        exit_time=when,
        exit_price=101,
        pnl=1,
        exit_reason="manual",
    )


def test_one_cycle_opens_no_more_positions_than_max_open_trades(always_in):
    """The simulator fills at once: each entry must be on the books before the next signal's risk
    check, or three signals in one cycle open three positions with a limit of two."""
    app, clock = always_in
    app.service.set_risk("max_open_trades", 2)
    clock.advance(minutes=1)
    report = app.engine.tick()
    assert [o.status for o in report.orders] == ["placed", "placed", "blocked"]
    assert len(app.service.positions()) == 2
