"""validate_bars: one crafted bad series per rule, each message naming the first bad bar."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from bot.bars import NS, Bars, Timeframe
from bot.data.validate import drop_incomplete, validate_bars

M1 = Timeframe.parse("1m")
T0 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)


def make(n: int = 6, **overrides: list[float]) -> Bars:
    """n clean 1m bars from T0; keyword lists replace whole columns."""
    time = np.array([int(T0.timestamp()) * NS + i * 60 * NS for i in range(n)], dtype=np.int64)
    close = 100 + np.arange(n, dtype=float)
    columns = {
        "time": time,
        "open": close - 0.5,
        "high": close + 1,
        "low": close - 1.5,
        "close": close,
        "volume": np.full(n, 10.0),
    }
    for name, values in overrides.items():
        columns[name] = np.asarray(values, dtype=np.int64 if name == "time" else float)
    return Bars(**columns)


def fresh_now(bars: Bars) -> datetime:
    return bars.last_time() + timedelta(minutes=1, seconds=5)


def when(i: int) -> str:
    return (T0 + timedelta(minutes=i)).strftime("%Y-%m-%d %H:%M:%S UTC")


def problems(bars: Bars, now: datetime | None = None) -> list[str]:
    return validate_bars(bars, M1, now or fresh_now(bars))


def test_clean_bars_pass():
    assert problems(make()) == []


def test_no_bars():
    assert problems(Bars.empty(), T0) == ["no bars at all"]


@pytest.mark.parametrize("column", ["open", "high", "low", "close", "volume"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values(column, bad):
    bars = make()
    values = getattr(bars, column).copy()
    values[2] = values[4] = bad
    found = problems(make(**{column: values}))
    kind = "NaN" if np.isnan(bad) else "infinite"
    assert any(p.startswith(f"{column} is {kind} at {when(2)}") for p in found), found


@pytest.mark.parametrize("column", ["open", "high", "low", "close"])
def test_non_positive_prices(column):
    bars = make()
    values = bars.close.copy() * 0 - 1.0  # every price of that column negative
    values[:3] = getattr(bars, column)[:3]
    values[3] = 0.0
    found = problems(make(**{column: values}))
    assert any(p.startswith(f"{column} is not positive") and when(3) in p for p in found), found


def test_negative_volume():
    found = problems(make(volume=[1, 1, 1, 1, -2, -3]))
    assert found == [f"volume is negative (-2) at {when(4)} (2 bar(s))"]


def test_zero_volume_is_fine():
    assert problems(make(volume=[0, 0, 0, 0, 0, 0])) == []


def test_high_below_low():
    bars = make()
    high = bars.high.copy()
    high[1] = bars.low[1] - 0.1
    found = problems(make(high=high))
    assert any(p.startswith(f"high is below low at {when(1)}") for p in found), found


def test_high_below_body():
    bars = make()
    high = bars.high.copy()
    high[3] = bars.close[3] - 0.1  # still above low, below the close
    found = problems(make(high=high))
    assert found == [f"high is below max(open, close) at {when(3)} (1 bar(s))"]


def test_low_above_body():
    bars = make()
    low = bars.low.copy()
    low[5] = bars.open[5] + 0.1  # above the open, below the high
    found = problems(make(low=low))
    assert found == [f"low is above min(open, close) at {when(5)} (1 bar(s))"]


def test_duplicate_times():
    bars = make()
    time = bars.time.copy()
    time[3] = time[2]
    time[4] = time[5] - 1  # keeps the rest increasing
    found = problems(make(time=time))
    assert found == [f"duplicate bar time {when(2)} (1 duplicate(s))"]


def test_out_of_order_times():
    bars = make()
    time = bars.time.copy()
    time[2], time[3] = time[3], time[2]
    found = problems(make(time=time))
    assert found == [f"bar times out of order: {when(2)} comes after {when(3)} (1 step(s) back)"]


def test_stale_last_bar():
    bars = make()  # last bar starts T0+5m and closes T0+6m
    closed = T0 + timedelta(minutes=6)
    assert problems(bars, closed + timedelta(minutes=3)) == []  # exactly max_age_bars old: OK
    found = problems(bars, closed + timedelta(minutes=3, seconds=1))
    assert found == [f"stale: last bar closed at {when(6)} (3 minutes ago)"]
    found = problems(bars, closed + timedelta(minutes=47))
    assert found == [f"stale: last bar closed at {when(6)} (47 minutes ago)"]
    assert validate_bars(bars, M1, closed + timedelta(minutes=47), max_age_bars=50) == []


def test_stale_is_relative_to_the_timeframe():
    bars = make()
    hourly = Timeframe.parse("1h")
    assert validate_bars(bars, hourly, T0 + timedelta(hours=3)) == []
    assert validate_bars(bars, hourly, T0 + timedelta(hours=5))[0].startswith("stale:")


def test_bar_from_the_future():
    bars = make()
    found = problems(bars, T0 + timedelta(minutes=4, seconds=30))
    assert found == [f"bar starts in the future at {when(5)} (now is 2026-01-05 10:04:30 UTC)"]


def test_several_problems_are_all_reported():
    found = problems(make(volume=[1, -1, 1, 1, 1, 1], close=[100, 101, np.nan, 103, 104, 105]))
    assert len(found) == 2
    assert found[0].startswith(f"close is NaN at {when(2)}")
    assert found[1].startswith(f"volume is negative (-1) at {when(1)}")


def test_drop_incomplete():
    bars = make()  # last bar: T0+5m .. T0+6m
    assert len(drop_incomplete(bars, M1, T0 + timedelta(minutes=6))) == 6  # closed exactly now
    kept = drop_incomplete(bars, M1, T0 + timedelta(minutes=5, seconds=59))
    assert len(kept) == 5 and kept.last_time() == T0 + timedelta(minutes=4)
    assert np.array_equal(kept.close, bars.close[:5])
    assert len(drop_incomplete(bars, M1, T0)) == 0
    assert len(drop_incomplete(bars, Timeframe.parse("5m"), T0 + timedelta(minutes=6))) == 2
