"""The web server's read memo: one computation per second per read, forgotten on every event."""

from __future__ import annotations

import threading
import time

from bot.domain import EventKind
from bot.web.cache import TTL_SECONDS, ReadCache
from bot.web.data import Dashboard
from tests.helpers import make_app


class CountingService:
    symbols = ("AAPL",)

    def __init__(self) -> None:
        self.calls = 0

    def status(self, slow: float = 0.0) -> int:
        self.calls += 1
        time.sleep(slow)
        return self.calls


def test_reads_are_kept_for_a_second_and_forgotten_on_clear():
    now = [100.0]
    service = CountingService()
    cache = ReadCache(service, clock=lambda: now[0])
    assert cache.status() == 1 and cache.status() == 1  # memoized
    assert cache.symbols == ("AAPL",)  # not a read: passed through
    now[0] += TTL_SECONDS
    assert cache.status() == 2  # expired
    cache.clear()
    assert cache.status() == 3


def test_concurrent_misses_compute_once():
    service = CountingService()
    cache = ReadCache(service)
    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(cache.status(slow=0.2))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert service.calls == 1 and results == [1] * 8


def test_an_event_makes_the_dashboard_read_afresh(tmp_path):
    app, _ = make_app(tmp_path / "bot.db")
    dashboard = Dashboard(app)
    assert not dashboard.status().paused
    app.service.pause(by="ann")  # records an event: the memo is forgotten
    assert dashboard.status().paused
    assert dashboard.events(limit=1)[0].kind == EventKind.PAUSED.value
    app.db.dispose()


def test_the_memo_keeps_nothing_per_key_after_a_clear():
    """Every page of /trades is a key of its own (its cursor): a server up for months must not
    keep one lock per key it ever saw (issue 19 section 6, memory)."""
    import tracemalloc

    cache = ReadCache(CountingService())
    tracemalloc.start()
    try:
        for round_ in range(4):
            for i in range(2000):  # 2,000 different keys a round (sleeps of a picosecond or so)
                cache.status(slow=(round_ * 2000 + i) * 1e-12)
            cache.clear()
            if round_ == 0:
                first = tracemalloc.get_traced_memory()[0]
        last = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert last - first < 100_000, (first, last)  # kept a lock per key: some 500 KB more
