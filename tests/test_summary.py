"""The daily summary: its time, the cron job on the scheduler, once per day whatever happens."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime

import pytest

from bot.domain import EventKind
from bot.runner import _summary_jobs
from bot.summary import parse_summary_time, summary_job
from tests.helpers import make_app


def test_summary_time_parsing_and_its_cron_trigger():
    assert parse_summary_time("off") is None and parse_summary_time("") is None
    utc = parse_summary_time("21:00").trigger()
    before = datetime(2026, 3, 2, 20, 59, tzinfo=UTC)
    assert utc.get_next_fire_time(None, before) == datetime(2026, 3, 2, 21, 0, tzinfo=UTC)
    after = datetime(2026, 3, 2, 21, 0, 1, tzinfo=UTC)
    assert utc.get_next_fire_time(None, after) == datetime(2026, 3, 3, 21, 0, tzinfo=UTC)
    ny = parse_summary_time("16:15 America/New_York")
    summer = ny.trigger().get_next_fire_time(None, datetime(2026, 7, 1, 12, 0, tzinfo=UTC))
    assert summer == datetime(2026, 7, 1, 20, 15, tzinfo=UTC)  # EDT is UTC-4
    winter = ny.trigger().get_next_fire_time(None, datetime(2026, 3, 2, 20, 0, tzinfo=UTC))
    assert winter == datetime(2026, 3, 2, 21, 15, tzinfo=UTC)  # EST is UTC-5
    assert ny.day_of(datetime(2026, 7, 2, 1, 0, tzinfo=UTC)) == date(2026, 7, 1)
    for bad in ("25:00", "9pm", "10:00 Mars/Olympus"):
        with pytest.raises(ValueError, match="DAILY_SUMMARY_TIME"):
            parse_summary_time(bad)


def test_the_summary_is_emitted_once_per_day(tmp_path):
    app, clock = make_app(tmp_path / "t.db")
    for _ in range(5):
        clock.advance(minutes=1)
        app.engine.tick()
    event = app.service.daily_summary(date(2026, 3, 2))
    assert event is not None and event.kind is EventKind.DAILY_SUMMARY
    assert event.message.startswith("Daily summary 2026-03-02 (SIMULATED") and "Sharpe" in event.message
    assert app.service.daily_summary(date(2026, 3, 2)) is None
    restarted, _ = make_app(tmp_path / "t.db", clock=clock)  # a restart does not repeat it
    assert restarted.service.daily_summary(date(2026, 3, 2)) is None
    assert restarted.service.daily_summary(date(2026, 3, 3)) is not None
    assert len(restarted.service.recent_events(50, kind=EventKind.DAILY_SUMMARY)) == 2


def test_the_runner_schedules_it_as_a_cron_job_that_emits_for_the_day_it_fires(tmp_path):
    from zoneinfo import ZoneInfo

    app, _ = make_app(tmp_path / "t.db", DAILY_SUMMARY_TIME="16:15 America/New_York")
    [(job, options)] = _summary_jobs(app)
    fires = options["trigger"].get_next_fire_time(None, datetime(2026, 3, 2, 12, 0, tzinfo=UTC))
    assert fires == datetime(2026, 3, 2, 21, 15, tzinfo=UTC)
    asyncio.run(job())  # fired now: the summary of today in New York
    today = datetime.now(ZoneInfo("America/New_York")).date()
    [event] = app.service.recent_events(5, kind=EventKind.DAILY_SUMMARY)
    assert event.message.startswith(f"Daily summary {today.isoformat()}")
    # 02:00 UTC on the 3rd is still the 2nd in New York.
    when = parse_summary_time("16:15 America/New_York")
    asyncio.run(summary_job(app.service, when, now=lambda: datetime(2026, 3, 3, 2, 0, tzinfo=UTC))())
    assert app.service.recent_events(1, kind=EventKind.DAILY_SUMMARY)[0].message.startswith(
        "Daily summary 2026-03-02"
    )
    assert _summary_jobs(make_app(tmp_path / "off.db", DAILY_SUMMARY_TIME="off")[0]) == []
