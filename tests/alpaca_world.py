"""The service on Alpaca, for tests: a real database, alpaca-py's clients over HTTP to the strict fake
Alpaca server, and the trading stream on a thread of its own, wired as ``tradebot run`` wires it.

``AlpacaWorld.restart()`` builds a new broker and service over the same database and the same
Alpaca account, as a new process would after a crash or an outage.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from alpaca.trading.client import TradingClient
from sqlalchemy import update

from bot.alpaca.broker import AlpacaBroker
from bot.alpaca.data import AlpacaBarSource
from bot.alpaca.http import AlpacaHttp
from bot.alpaca.streams import LiveStreams, trade_update_handler
from bot.bars import Timeframe
from bot.clock import ManualClock
from bot.lease import Lease
from bot.risk import RiskLimits
from bot.service import TradingService
from storage import repository as repo
from storage.db import Database
from storage.models import LeaseRow
from tests.fakes.alpaca import FakeAlpaca, FakeTradingStream


def wait_until(condition: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not met within {timeout} s")
        time.sleep(0.02)


class AlpacaWorld:
    def __init__(self, fake: FakeAlpaca, db: Database, now: datetime) -> None:
        self.fake = fake
        self.db = db
        self.clock = ManualClock(now)
        fake.clock.set(now)
        self.broker, self.service = self._build()

    def _build(self) -> tuple[AlpacaBroker, TradingService]:
        http = AlpacaHttp(timeout=5, sleep=lambda s: None)
        client = http.install(
            TradingClient("test-key", "test-secret", paper=True, url_override=self.fake.url)
        )
        prices = AlpacaBarSource.create("test-key", "test-secret", url=self.fake.url, http=http)
        broker = AlpacaBroker(  # tests move the clock by days: no cached market clock
            client, paper=True, http=http, prices=prices, clock_ttl=0, cancel_wait=2.0, sleep=lambda s: None
        )
        with self.db.engine.begin() as connection:  # the earlier process's lease has run out
            connection.execute(update(LeaseRow.__table__).values(expires_at=0))
        lease = Lease(self.db, seconds=600)
        assert lease.try_acquire()
        # The symbols the tests trade: manual buys are for configured symbols only.
        symbols = ("AAPL", "MSFT", "BTC/USD")
        service = TradingService(self.db, broker, self.clock, RiskLimits(), lease=lease, symbols=symbols)
        return broker, service

    def restart(self) -> None:
        self.broker, self.service = self._build()

    def set_time(self, when: datetime) -> None:
        self.clock.set(when)
        self.fake.clock.set(when)

    # ------------------------------------------------------------------ what the books say
    def fills(self) -> list[Any]:
        from sqlmodel import select

        from storage.models import FillRow

        with self.db.session() as s:
            return list(s.exec(select(FillRow).order_by(FillRow.id)))

    def order(self, client_order_id: str) -> Any:
        with self.db.session() as s:
            return repo.get_order(s, client_order_id)

    def position(self, symbol: str) -> Any:
        with self.db.session() as s:
            return repo.get_position(s, symbol)

    def trades(self) -> list[Any]:
        with self.db.session() as s:
            return repo.list_trades(s)


class StreamThread:
    """``trade_updates`` from the fake's websocket through alpaca-py's ``TradingStream`` into the
    world's broker and service, on an event loop of its own thread (as in ``tradebot run``)."""

    def __init__(self, world: AlpacaWorld) -> None:
        self.world = world
        self.stream = world.fake.stream or FakeTradingStream(world.fake)
        self.handled: list[Any] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="test-trading-stream", daemon=True)

    def __enter__(self) -> StreamThread:
        self._thread.start()
        self._ready.wait(10)
        wait_until(lambda: self.stream.connected > 0, what="the trading stream connects")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._main())
        self._loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        handle = trade_update_handler(lambda: self.world.broker, lambda: self.world.service)

        async def on_update(update: Any) -> None:
            await handle(update)
            self.handled.append(update)

        streams = LiveStreams(
            "test-key",
            "test-secret",
            symbols=["AAPL"],
            timeframe=Timeframe.parse("1m"),
            trading_url=self.stream.url,
            on_trade_update=on_update,
        )
        await streams.start()
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await streams.stop()

    def wait_for(self, count: int) -> None:
        """Until ``count`` trade updates have been handled (pushed into the broker, then synced)."""
        wait_until(lambda: len(self.handled) >= count, what=f"{count} trade updates handled")
