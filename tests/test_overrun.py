"""A cycle that overruns its interval: one clear line, not APScheduler's warning per skipped run.

The unit tests drive ``bot/overrun.py`` with a clock moved by hand; the process test runs a real
``tradebot run`` whose interval (1 simulated second at 600x: under 2 ms) is far shorter than a cycle.
"""

from __future__ import annotations

import re
import time

from bot.overrun import Overruns
from tests import processes


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_cycle_that_skipped_nothing_says_nothing():
    overruns = Overruns(interval=1.0, monotonic=Clock())
    assert overruns.finished(0.2) is None
    assert overruns.finished(5.0) is None  # long, but no run fell due meanwhile


def test_the_first_overrun_is_said_at_once_then_summed_up(caplog):
    clock = Clock()
    overruns = Overruns(interval=0.5, report_every=60, monotonic=clock)
    for _ in range(3):
        overruns.skipped()
    first = overruns.finished(1.7)
    assert first is not None
    assert first.startswith("a cycle overran its interval (it took 1.7 s, every 0.5 s): 3 runs due meanwhile")
    assert "skipped, not queued" in first
    # More overruns within the minute: counted, not said.
    for seconds in (0.9, 2.4):
        overruns.skipped()
        overruns.skipped()
        clock.now += 10
        assert overruns.finished(seconds) is None
    clock.now += 45  # past the minute: the next overrun sums up everything since the first line
    overruns.skipped()
    summary = overruns.finished(0.6)
    assert summary is not None
    assert re.match(
        r"3 cycles overran the interval since \d\d:\d\d:\d\d UTC \(the longest took 2.4 s, every 0.5 s\): "
        r"5 runs due meanwhile skipped, not queued\.$",
        summary,
    ), summary
    assert [r.getMessage() for r in caplog.records if r.name == "bot.overrun"] == [first, summary]


def test_a_running_bot_whose_cycles_overrun_says_so_once(tmp_path):
    """It used to log APScheduler's 'maximum number of running instances reached' for every run
    that fell due while a cycle ran: hundreds of lines a second at this interval."""
    env = processes.environment(f"sqlite:///{tmp_path / 'bot.db'}", TRADEBOT_INTERVAL_SECONDS="1")
    started = time.monotonic()
    bot = processes.start(tmp_path, "bot", env, "run")
    try:
        processes.wait_for(tmp_path, "bot", "tick: ", count=30)
        processes.wait_for(tmp_path, "bot", "a cycle overran its interval")
        bot.terminate()
        assert bot.wait(timeout=60) == 0
    finally:
        bot.kill()
        bot.wait()
    elapsed = time.monotonic() - started
    log = processes.log_of(tmp_path, "bot")
    assert "maximum number of running instances" not in log
    assert "previous cycle still running" not in log
    lines = [line for line in log.splitlines() if "overran" in line]
    assert re.search(
        r"a cycle overran its interval \(it took [\d.e-]+ s, every 0\.00167 s\): \d+ runs? due", lines[0]
    )
    assert len(lines) <= 1 + elapsed // 60, lines  # the first at once, then at most one a minute
