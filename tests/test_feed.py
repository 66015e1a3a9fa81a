"""The event feed (bot/service/feed.py): replay, persistent cursors and live subscriptions, on
SQLite and (with TEST_DATABASE_URL) Postgres: every event once, in id order, none skipped."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime

from bot.clock import ManualClock
from bot.domain import Event, EventKind
from bot.notify import Notifier
from bot.service import feed as feed_module
from bot.service.events import EventLog
from bot.service.feed import EventFeed

START = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)


def parts(db, poll_seconds: float = 5.0) -> tuple[EventLog, EventFeed]:
    clock, notifier = ManualClock(START), Notifier()
    return EventLog(db, clock, notifier), EventFeed(db, clock, notifier, poll_seconds=poll_seconds)


async def take(subscription, count: int, timeout: float = 10.0) -> list[Event]:
    got: list[Event] = []
    async with asyncio.timeout(timeout):
        async for event in subscription:
            got.append(event)
            if len(got) == count:
                break
    return got


def test_reading_after_an_id_and_where_a_new_consumer_starts(db):
    log, feed = parts(db)
    assert feed.latest_id() == 0 and feed.after(0) == []
    old = log.record(EventKind.INFO, "from an earlier run")
    started = log.record(EventKind.STARTED, "tradebot started")
    later = log.record(EventKind.INFO, "after the start")
    assert feed.latest_id() == later.id
    assert [e.id for e in feed.after(old.id)] == [started.id, later.id]
    assert [e.message for e in feed.after(0, limit=1)] == ["from an earlier run"]
    assert feed.start_id() == started.id - 1  # this run, not the whole history


def test_cursors_are_per_consumer_and_only_move_forward(db):
    _, feed = parts(db)
    assert feed.cursor("telegram:1") is None
    feed.advance("telegram:1", 5)
    feed.advance("telegram:2", 3)
    feed.advance("telegram:1", 4)  # a late, older delivery: ignored
    feed.advance("web:x", 9)
    assert feed.cursor("telegram:1") == 5
    assert feed.cursors("telegram:") == {"telegram:1": 5, "telegram:2": 3}
    assert feed.cursors() == {"telegram:1": 5, "telegram:2": 3, "web:x": 9}


def test_a_subscription_replays_from_an_id_then_goes_live_in_order(db):
    log, feed = parts(db)
    first = log.record(EventKind.INFO, "one")
    log.record(EventKind.INFO, "two")

    async def scenario() -> list[str]:
        with feed.subscribe(first.id) as subscription:
            replayed = await take(subscription, 1)
            # recorded from worker threads while the consumer waits, as the engine does
            await asyncio.to_thread(log.record, EventKind.ORDER_FILLED, "three")
            await asyncio.to_thread(log.record, EventKind.INFO, "four")
            live = await take(subscription, 2)
            assert subscription.last_id == live[-1].id
            return [e.message for e in replayed + live]

    assert asyncio.run(scenario()) == ["two", "three", "four"]


def test_live_only_and_filtered_by_kind(db):
    log, feed = parts(db)
    log.record(EventKind.ORDER_FILLED, "before the subscription")

    async def scenario() -> list[str]:
        subscription = await feed.live(kinds={EventKind.ORDER_FILLED})
        for message, kind in [("a", EventKind.INFO), ("b", EventKind.ORDER_FILLED), ("c", EventKind.INFO)]:
            await asyncio.to_thread(log.record, kind, message)
        await asyncio.to_thread(log.record, EventKind.ORDER_FILLED, "d")
        got = await take(subscription, 2)
        subscription.close()
        assert [e async for e in subscription] == []  # closed: the iteration ends
        return [e.message for e in got]

    assert asyncio.run(scenario()) == ["b", "d"]


def test_events_of_another_process_arrive_by_polling(db, storage_url):
    from storage.db import Database

    _, feed = parts(db, poll_seconds=0.2)
    other_db = Database(storage_url)  # `tradebot tick` in another process: its own engine and notifier
    other, _ = parts(other_db)

    async def scenario() -> list[str]:
        subscription = await feed.live()
        await asyncio.to_thread(other.record, EventKind.ORDER_PLACED, "placed by tick")
        return [e.message for e in await take(subscription, 1, timeout=5)]

    try:
        assert asyncio.run(scenario()) == ["placed by tick"]
    finally:
        other_db.dispose()


def test_concurrent_writers_reach_a_subscriber_each_once_in_order(db):
    log, feed = parts(db)
    writers, each = 4, 25

    def write(n: int) -> None:
        for i in range(each):
            log.record(EventKind.INFO, f"writer {n} event {i}")

    async def scenario() -> list[Event]:
        subscription = await feed.live()
        threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
        for thread in threads:
            thread.start()
        got = await take(subscription, writers * each, timeout=30)
        for thread in threads:
            thread.join()
        return got

    got = asyncio.run(scenario())
    ids = [e.id for e in got]
    assert ids == sorted(ids) and len(set(ids)) == writers * each
    assert ids == [e.id for e in feed.after(ids[0] - 1, limit=1000)]  # none skipped


def test_a_slow_consumer_falls_back_to_the_table_and_loses_nothing(db, monkeypatch):
    monkeypatch.setattr(feed_module, "MAX_QUEUE", 5)
    log, feed = parts(db)

    async def scenario() -> list[str]:
        subscription = await feed.live()
        for i in range(30):  # more than the queue holds, before the consumer reads any
            await asyncio.to_thread(log.record, EventKind.INFO, f"e{i}")
        return [e.message for e in await take(subscription, 30)]

    assert asyncio.run(scenario()) == [f"e{i}" for i in range(30)]


def test_readers_racing_writers_never_skip_an_event(db):
    """Ids are handed out in commit order (on Postgres, under an advisory lock): a reader that
    polls "after my last id" while others write misses nothing."""
    log, feed = parts(db)
    done = threading.Event()
    seen: list[int] = []

    def read() -> None:
        last = 0
        while True:
            finished = done.is_set()
            for event in feed.after(last, limit=1000):
                seen.append(event.id)
                last = event.id
            if finished:
                return

    reader = threading.Thread(target=read)
    reader.start()
    writers = [
        threading.Thread(target=lambda: [log.record(EventKind.INFO, "x") for _ in range(30)])
        for _ in range(4)
    ]
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join()
    done.set()
    reader.join()
    assert seen == sorted(seen) and len(seen) == 120 == len(set(seen))
