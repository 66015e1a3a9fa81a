"""The fake's clock, the US stock market's calendar, and bars as Alpaca aggregates them.

Rules and their sources:

- **Clock** (alpaca-docs ``data/webapi/entities/clock.yaml``): ``GET /v2/clock`` answers
  ``timestamp``, ``is_open``, ``next_open``, ``next_close``. Regular hours 9:30-16:00 ET, Monday
  to Friday, closed on NYSE holidays, 13:00 ET early closes (alpaca-docs ``content/trading/orders.md``,
  "Regular Trading Hours (9:30am - 4:00pm ET)"; the holiday list is NYSE's published calendar
  for 2025-2027, typed in here: a date outside it counts as a normal weekday).
- **Bars** are aggregated from the rows a test set, with Alpaca's bucket boundaries: minutes and
  hours on UTC multiples; a stock's day at midnight New York (its daily bar is stamped 04:00 or
  05:00 UTC); a crypto day at midnight US/Central (stamped 05:00 or 06:00 UTC: alpaca-py#169,
  Alpaca-API#227, "the daily bars contain data for 24 hours, starting at the timestamp").
  Lumiwealth/lumibot#826 (July 2025) reports Alpaca moved crypto daily bars to midnight UTC: the
  sources disagree, so ``crypto_day_tz`` is a switch and the bot is tested under both.
- **A bar still forming is served**: a request whose window reaches now gets the bucket in
  progress, built from the rows so far (Alpaca's bar endpoints answer what has traded so far).
  Rows after now are not served (they have not happened yet).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

NEW_YORK = ZoneInfo("America/New_York")

# NYSE holidays (full closures) and early closes (13:00 ET), 2025-2027.
HOLIDAYS = {
    date(2025, 1, 1), date(2025, 1, 9), date(2025, 1, 20), date(2025, 2, 17), date(2025, 4, 18),
    date(2025, 5, 26), date(2025, 6, 19), date(2025, 7, 4), date(2025, 9, 1), date(2025, 11, 27),
    date(2025, 12, 25),
    date(2026, 1, 1), date(2026, 1, 19), date(2026, 2, 16), date(2026, 4, 3), date(2026, 5, 25),
    date(2026, 6, 19), date(2026, 7, 3), date(2026, 9, 7), date(2026, 11, 26), date(2026, 12, 25),
    date(2027, 1, 1), date(2027, 1, 18), date(2027, 2, 15), date(2027, 3, 26), date(2027, 5, 31),
    date(2027, 6, 18), date(2027, 7, 5), date(2027, 9, 6), date(2027, 11, 25), date(2027, 12, 24),
}  # fmt: skip
EARLY_CLOSES = {
    date(2025, 7, 3), date(2025, 11, 28), date(2025, 12, 24),
    date(2026, 11, 27), date(2026, 12, 24),
    date(2027, 11, 26),
}  # fmt: skip


class FakeClock:
    """The fake's "now": real time until a test sets it, then frozen there (or moved by hand)."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start

    def now(self) -> datetime:
        return self._now or datetime.now(UTC)

    def set(self, when: datetime) -> None:
        self._now = when.astimezone(UTC)

    def advance(self, **delta: float) -> datetime:
        self._now = self.now() + timedelta(**delta)
        return self._now


def session(day: date) -> tuple[datetime, datetime] | None:
    """The regular session of ``day`` (UTC open, close), or None when the market is closed."""
    if day.weekday() >= 5 or day in HOLIDAYS:
        return None
    close = time(13, 0) if day in EARLY_CLOSES else time(16, 0)
    opens = datetime.combine(day, time(9, 30), NEW_YORK).astimezone(UTC)
    return opens, datetime.combine(day, close, NEW_YORK).astimezone(UTC)


def market_clock(now: datetime) -> tuple[bool, datetime, datetime]:
    """(is_open, next_open, next_close) at ``now``, as ``GET /v2/clock`` answers."""
    today = now.astimezone(NEW_YORK).date()
    hours = session(today)
    is_open = hours is not None and hours[0] <= now < hours[1]
    next_open = next_close = None
    day = today
    while next_open is None or next_close is None:
        hours = session(day)
        if hours is not None:
            if next_open is None and hours[0] > now:
                next_open = hours[0]
            if next_close is None and hours[1] > now:
                next_close = hours[1]
        day += timedelta(days=1)
    return is_open, next_open, next_close


_TF = re.compile(r"^(\d+)(Min|T|Hour|H|Day|D|Week|W|Month|M)$")


def timeframe_seconds(text: str) -> tuple[int, str]:
    """Alpaca's ``timeframe`` parameter (``1Min``, ``15Min``, ``4Hour``, ``1Day``) as (amount, unit)."""
    match = _TF.match(text)
    if not match:
        raise ValueError(f"invalid timeframe {text!r}")
    unit = {"T": "Min", "H": "Hour", "D": "Day"}.get(match.group(2), match.group(2))
    return int(match.group(1)), unit


def bucket_start(when: datetime, amount: int, unit: str, day_tz: ZoneInfo | None) -> datetime:
    if unit in ("Min", "Hour"):
        size = amount * (60 if unit == "Min" else 3600)
        ts = int(when.timestamp())
        return datetime.fromtimestamp(ts - ts % size, tz=UTC)
    if unit == "Day" and amount == 1:
        tz = day_tz or UTC
        local = when.astimezone(tz)
        return datetime.combine(local.date(), time(0), tz).astimezone(UTC)
    raise ValueError(f"the fake serves minute, hour and 1-day bars, not {amount}{unit}")


def bucket_end(start: datetime, amount: int, unit: str, day_tz: ZoneInfo | None) -> datetime:
    if unit == "Day":
        tz = day_tz or UTC
        local = start.astimezone(tz)
        return datetime.combine(local.date() + timedelta(days=1), time(0), tz).astimezone(UTC)
    return start + timedelta(seconds=amount * (60 if unit == "Min" else 3600))


Row = tuple[int, float, float, float, float, float]


@functools.lru_cache(maxsize=65_536)
def _utc(second: int) -> datetime:
    """Many symbols share each bar's start: one datetime for all of them."""
    return datetime.fromtimestamp(second, tz=UTC)


def aggregate(
    rows: list[Row], timeframe: str, *, day_tz: ZoneInfo | None, now: datetime
) -> list[tuple[datetime, float, float, float, float, float]]:
    """``rows`` (time ns, o, h, l, c, v), sorted, into Alpaca's buckets; rows after ``now`` dropped."""
    amount, unit = timeframe_seconds(timeframe)
    if unit in ("Min", "Hour"):  # fixed-size buckets: whole seconds, one datetime a bucket
        size = amount * (60 if unit == "Min" else 3600)
        limit = now.timestamp()
        buckets: dict[int, list[float]] = {}
        for t, o, h, low, c, v in rows:
            if t / 1e9 > limit:
                break
            second = t // 1_000_000_000
            bucket = buckets.get(second - second % size)
            if bucket is None:
                buckets[second - second % size] = [o, h, low, c, v]
            else:
                bucket[1], bucket[2], bucket[3], bucket[4] = (
                    max(bucket[1], h),
                    min(bucket[2], low),
                    c,
                    bucket[4] + v,
                )
        return [(_utc(k), *v) for k, v in sorted(buckets.items())]  # type: ignore[misc]
    out: dict[datetime, list[float]] = {}
    for t, o, h, low, c, v in rows:
        when = datetime.fromtimestamp(t / 1e9, tz=UTC)
        if when > now:
            break
        key = bucket_start(when, amount, unit, day_tz)
        bar = out.get(key)
        if bar is None:
            out[key] = [o, h, low, c, v]
        else:
            bar[1], bar[2], bar[3], bar[4] = max(bar[1], h), min(bar[2], low), c, bar[4] + v
    return [(k, *v) for k, v in sorted(out.items())]  # type: ignore[misc]


def tz_for(name: str) -> Callable[[], ZoneInfo]:
    return lambda: ZoneInfo(name)
