"""Regular-hours stock bars (bot/data/sessions.py): the filter alone, then the bot on the fake Alpaca,
whose stock bars include pre-market and after-hours trades as Alpaca's do (alpaca-py#580)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from bot.app import build_app
from bot.bars import NS, Bars, Timeframe
from bot.clock import ManualClock
from bot.config import Settings
from bot.data.sessions import regular_hours, regular_mask
from tests.fakes.alpaca import FakeAlpaca
from tests.helpers import take_lease
from tests.test_alpaca_e2e import env_for

NY = ZoneInfo("America/New_York")


def ny(y: int, m: int, d: int, hh: int, mm: int) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=NY)


def stamps(*whens: datetime) -> np.ndarray:
    return np.array([int(w.timestamp()) * NS for w in whens], dtype=np.int64)


@pytest.mark.parametrize("day", [(2026, 1, 5), (2026, 7, 6)], ids=["winter (EST)", "summer (EDT)"])
def test_minute_bars_inside_09_30_to_16_00_new_york_time(day):
    times = stamps(ny(*day, 4, 0), ny(*day, 9, 29), ny(*day, 9, 30), ny(*day, 15, 59), ny(*day, 16, 0))
    assert regular_mask(times, Timeframe.parse("1m")).tolist() == [False, False, True, True, False]


def test_bars_straddling_the_open_or_the_close_are_dropped_and_weekends_have_none():
    hours = stamps(ny(2026, 1, 5, 9, 0), ny(2026, 1, 5, 10, 0), ny(2026, 1, 5, 15, 0), ny(2026, 1, 5, 16, 0))
    assert regular_mask(hours, Timeframe.parse("1h")).tolist() == [False, True, True, False]
    saturday = stamps(ny(2026, 1, 10, 10, 0))
    assert regular_mask(saturday, Timeframe.parse("1m")).tolist() == [False]
    thirty = stamps(ny(2026, 1, 5, 9, 30), ny(2026, 1, 5, 15, 30))
    assert regular_mask(thirty, Timeframe.parse("30m")).all()


def test_daily_bars_pass_unchanged():
    daily = Bars(stamps(ny(2026, 1, 5, 0, 0)), *(np.ones(1) for _ in range(5)))
    assert regular_hours(daily, Timeframe.parse("1d")) is daily


# ------------------------------------------------------------------ the bot on the fake Alpaca

MONDAY = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)  # 10:00 in New York


def minute_rows(start: datetime, end: datetime, price: float) -> list[tuple]:
    first, last = int(start.timestamp()), int(end.timestamp())
    return [((t) * NS, price, price + 0.5, price - 0.5, price, 100.0) for t in range(first, last, 60)]


@pytest.fixture
def fake():
    with FakeAlpaca() as server:
        now = MONDAY + timedelta(seconds=5)
        server.clock.set(now)
        friday_after = minute_rows(ny(2026, 2, 27, 15, 0), ny(2026, 2, 27, 20, 0), 100.0)
        monday_pre = minute_rows(ny(2026, 3, 2, 4, 0), ny(2026, 3, 2, 9, 30), 90.0)
        monday = minute_rows(ny(2026, 3, 2, 9, 30), ny(2026, 3, 2, 10, 0), 101.0)
        server.set_bars("AAPL", friday_after + monday_pre + monday)
        server.set_bars("BTC/USD", minute_rows(MONDAY - timedelta(hours=10), MONDAY, 50_000.0))
        yield server


def cached(fake: FakeAlpaca, tmp_path, **extra: str) -> dict[str, Bars]:
    env = env_for(
        fake, tmp_path / "t.db", TRADEBOT_SYMBOLS="AAPL,BTC/USD", TRADEBOT_HISTORY_BARS="600", **extra
    )
    app = take_lease(
        build_app(Settings.from_mapping(env), accelerate=False, clock=ManualClock(fake.clock.now()))
    )
    app.engine.tick()
    return {s: app.engine.cache.get(s) for s in ("AAPL", "BTC/USD")}


def local_times(bars: Bars) -> list[str]:
    return sorted({datetime.fromtimestamp(int(t) / NS, tz=NY).strftime("%H:%M") for t in bars.time})


def test_stock_strategies_see_regular_hours_bars_only_by_default(fake, tmp_path):
    bars = cached(fake, tmp_path)
    # the window (600 minutes back from 10:00) holds Monday's pre-market and its first half hour
    times = local_times(bars["AAPL"])
    assert (times[0], times[-1], len(times)) == ("09:30", "09:59", 30)
    assert len(bars["AAPL"]) == 30 and 90.0 not in bars["AAPL"].close  # no pre-market bar
    assert len(bars["BTC/USD"]) == 600  # crypto trades around the clock: every bar


def test_extended_hours_bars_on_request(fake, tmp_path):
    bars = cached(fake, tmp_path, TRADEBOT_EXTENDED_HOURS_BARS="on")
    assert len(bars["AAPL"]) == 360 and 90.0 in bars["AAPL"].close  # 04:00 to 09:59, every minute
    assert local_times(bars["AAPL"])[0] == "04:00"
