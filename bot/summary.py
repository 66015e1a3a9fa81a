"""The daily summary: one DAILY_SUMMARY event a day at DAILY_SUMMARY_TIME, on the running scheduler.

``tradebot run`` adds ``summary_job`` to its APScheduler as a cron job (wall-clock time, in the
zone given, UTC by default). The job asks the service for the summary of the day it fires on;
the service emits it at most once per day (a restart or a second process does not repeat it),
and every transport delivers it from the event feed like any other event.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

if TYPE_CHECKING:
    from apscheduler.triggers.cron import CronTrigger

    from bot.service import TradingService

log = logging.getLogger(__name__)

_TIME_RE = re.compile(r"^\s*([0-9]{1,2}):([0-9]{2})(?:\s+(\S+))?\s*$")  # ASCII digits only


@dataclass(frozen=True, slots=True)
class SummaryTime:
    at: time
    zone: ZoneInfo | None  # None: UTC

    def trigger(self) -> CronTrigger:
        from apscheduler.triggers.cron import CronTrigger

        return CronTrigger(hour=self.at.hour, minute=self.at.minute, timezone=self.zone or UTC)

    def day_of(self, moment: datetime) -> date:
        return moment.astimezone(self.zone or UTC).date()


def parse_summary_time(text: str) -> SummaryTime | None:
    """``"21:00"`` (UTC), ``"16:15 America/New_York"``; ``""``/``"off"``: no summary.

    ``None``, ``false`` or ``no`` are refused rather than read as off: each could as well be a
    placeholder left in a template, and a summary silently never sent is found out days later."""
    if text.strip().lower() in {"", "off"}:
        return None
    if text.strip().lower() in {"none", "null", "false", "no", "0"}:
        raise ValueError(f"DAILY_SUMMARY_TIME={text!r}: write off for no summary, or HH:MM")
    match = _TIME_RE.match(text)
    if not match or int(match.group(1)) > 23 or int(match.group(2)) > 59:
        raise ValueError(
            f"DAILY_SUMMARY_TIME={text!r}: write HH:MM, optionally a time zone (16:15 America/New_York)"
        )
    zone = None
    if match.group(3) and match.group(3).upper() != "UTC":
        try:
            zone = ZoneInfo(match.group(3))
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"DAILY_SUMMARY_TIME={text!r}: unknown time zone {match.group(3)!r}") from None
    return SummaryTime(time(int(match.group(1)), int(match.group(2))), zone)


def summary_job(
    service: TradingService,
    when: SummaryTime,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Callable[[], Awaitable[None]]:
    """The scheduler's job: the summary of the day it fires on, in a worker thread, never raising."""

    async def daily_summary() -> None:
        try:
            await asyncio.to_thread(service.daily_summary, when.day_of(now()))
        except Exception:
            log.exception("daily summary failed")

    return daily_summary
