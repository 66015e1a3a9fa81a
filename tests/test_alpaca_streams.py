"""Live streams: alpaca-py's stream clients against a local websockets server speaking Alpaca's
protocols (msgpack for market data, JSON for trade updates)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import msgpack
import pytest
from alpaca.trading.client import TradingClient
from websockets.asyncio.server import serve

from bot.alpaca.broker import AlpacaBroker
from bot.alpaca.http import AlpacaHttp
from bot.alpaca.streams import LiveStreams, closes_bar, stream_endpoints
from bot.bars import Timeframe
from bot.retry import RetryPolicy
from tests.fakes.alpaca import FakeAlpaca

T = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


def minute_bar(symbol: str, minute: int) -> dict:
    when = datetime.fromtimestamp(T.timestamp() + 60 * minute, tz=UTC)
    return {
        "T": "b",
        "S": symbol,
        "o": 1.0,
        "h": 2.0,
        "l": 0.5,
        "c": 1.5,
        "v": 100,
        "t": msgpack.Timestamp.from_datetime(when),
    }


class DataServer:
    """Alpaca's market data stream: connected, authenticated, subscription, then scripted frames.
    ``sessions`` is a list of frame lists, one per connection; after its frames a session is
    dropped (the server closes), except the last one, which stays open."""

    def __init__(self, sessions: list[list[list[dict]]]) -> None:
        self.sessions = sessions
        self.connections = 0
        self.subscriptions: list[dict] = []
        self.paths: list[str] = []

    async def handler(self, ws) -> None:
        index = self.connections
        self.connections += 1
        self.paths.append(ws.request.path)
        await ws.send(msgpack.packb([{"T": "success", "msg": "connected"}]))
        auth = msgpack.unpackb(await ws.recv())
        assert auth["action"] == "auth"
        await ws.send(msgpack.packb([{"T": "success", "msg": "authenticated"}]))
        subscription = msgpack.unpackb(await ws.recv())
        self.subscriptions.append(subscription)
        await ws.send(msgpack.packb([{"T": "subscription", "bars": subscription.get("bars", [])}]))
        frames = self.sessions[index] if index < len(self.sessions) else []
        for frame in frames:
            await ws.send(msgpack.packb(frame))
        if index + 1 < len(self.sessions):
            await ws.close()
            return
        await ws.wait_closed()  # stay open until the client leaves


async def wait_for(condition, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def test_stream_endpoints():
    assert stream_endpoints("ws://127.0.0.1:9/", "http://127.0.0.1:8", "iex") == (
        "ws://127.0.0.1:9/v2/iex",
        "ws://127.0.0.1:9/v1beta3/crypto/us",
        "ws://127.0.0.1:8/stream",
    )
    assert stream_endpoints(None, None, "iex") == (None, None, None)  # alpaca-py's defaults


def test_closes_bar():
    five = Timeframe.parse("5m")
    assert closes_bar(T.replace(minute=4), five) and not closes_bar(T.replace(minute=3), five)
    assert closes_bar(T, Timeframe.parse("1m"))
    assert not closes_bar(T, Timeframe.parse("1d"))  # the schedule drives daily bars


def test_bar_close_triggers_one_evaluation_and_a_drop_reconnects():
    async def scenario() -> None:
        server = DataServer(
            [
                [[minute_bar("AAPL", 3)], [minute_bar("AAPL", 4), minute_bar("MSFT", 4)]],  # then dropped
                [[minute_bar("AAPL", 9)]],
            ]
        )
        closed: list[tuple[list[str], datetime]] = []
        reconnects: list[str] = []

        async def on_closed(symbols, when):
            closed.append((symbols, when))

        async def on_reconnect(name):
            reconnects.append(name)

        async with serve(server.handler, "127.0.0.1", 0) as ws_server:
            port = ws_server.sockets[0].getsockname()[1]
            streams = LiveStreams(
                "key",
                "secret",
                symbols=["AAPL", "MSFT"],
                timeframe=Timeframe.parse("5m"),
                stream_url=f"ws://127.0.0.1:{port}",
                on_bars_closed=on_closed,
                on_reconnect=on_reconnect,
                debounce=0.1,
                reconnect=RetryPolicy(base=0.05, cap=0.1),
            )
            await streams.start()
            try:
                await wait_for(lambda: len(closed) == 2)
            finally:
                await streams.stop()
        assert server.paths[0] == "/v2/iex"
        assert sorted(server.subscriptions[0]["bars"]) == ["AAPL", "MSFT"]
        assert closed[0] == (["AAPL", "MSFT"], T.replace(minute=5))  # one evaluation for both
        assert closed[1] == (["AAPL"], T.replace(minute=10))
        assert server.connections == 2 and reconnects == ["stocks"]

    asyncio.run(scenario())


def test_trade_update_fill_is_recorded_once_with_the_polling_fill_id():
    """A fill pushed by the trading stream and the same execution in account activities are one fill."""
    with FakeAlpaca() as fake:
        fake.prices["AAPL"] = 100.0
        http = AlpacaHttp(timeout=5, sleep=lambda s: None)
        client = http.install(TradingClient("test-key", "test-secret", paper=True, url_override=fake.url))
        broker = AlpacaBroker(client, paper=True, http=http, sleep=lambda s: None)
        from bot.domain import OrderIntent, Side

        broker.submit(OrderIntent("tb-s-1", "AAPL", Side.BUY, 10, stop_loss=95.0, take_profit=110.0))
        order = fake.fill("tb-s-1", price=100.0)
        update = {
            "stream": "trade_updates",
            "data": {
                "event": "fill",
                "execution_id": "7b7d4b8a-1111-4222-8333-444455556666",
                "order": order.to_json(),
                "timestamp": "2026-03-02T15:00:01.000000Z",
                "position_qty": "10",
                "price": "100",
                "qty": "10",
            },
        }
        received = []

        async def handler(ws) -> None:
            auth = json.loads(await ws.recv())
            assert auth["action"] == "authenticate" and auth["data"]["key_id"] == "key"
            await ws.send(json.dumps({"stream": "authorization", "data": {"status": "authorized"}}))
            listen = json.loads(await ws.recv())
            assert listen["data"]["streams"] == ["trade_updates"]
            await ws.send(json.dumps(update))
            await ws.wait_closed()

        async def on_trade(trade_update) -> None:
            received.append(broker.push_trade_update(trade_update))

        async def scenario() -> None:
            async with serve(handler, "127.0.0.1", 0) as ws_server:
                port = ws_server.sockets[0].getsockname()[1]
                streams = LiveStreams(
                    "key",
                    "secret",
                    symbols=["AAPL"],
                    timeframe=Timeframe.parse("1m"),
                    trading_url=f"http://127.0.0.1:{port}",
                    on_trade_update=on_trade,
                )
                await streams.start()
                try:
                    await wait_for(lambda: received)
                finally:
                    await streams.stop()

        asyncio.run(scenario())
        (pushed,) = received[0].fills
        assert (pushed.client_order_id, pushed.qty, pushed.price) == ("tb-s-1", 10.0, 100.0)
        fills = broker.sync(datetime.now(UTC)).fills
        assert [f.fill_id for f in fills] == [pushed.fill_id]  # activities add nothing new
        broker.acknowledge([pushed.fill_id])
        assert broker.sync(datetime.now(UTC)).fills == []


@pytest.mark.parametrize("feed", ["iex", "sip"])
def test_stock_feed_in_the_stream_path(feed):
    assert stream_endpoints("wss://stream.example", None, feed)[0] == f"wss://stream.example/v2/{feed}"


def test_run_streams_bar_close_runs_the_cycle_that_places_the_order(tmp_path):
    """ALPACA_STREAMING on a real app: a closing minute bar on the stream triggers the engine's
    cycle, which reads the bars over REST and places the bracket at once."""
    from bot.alpaca.streams import run_streams
    from bot.app import build_app
    from bot.clock import ManualClock
    from bot.config import Settings
    from tests.helpers import take_lease
    from tests.test_alpaca_e2e import LAST_BAR, NOW, env_for, flip_up

    minutes = int((LAST_BAR - T).total_seconds() // 60)
    server = DataServer([[[minute_bar("AAPL", minutes)]]])

    async def scenario(fake: FakeAlpaca) -> None:
        async with serve(server.handler, "127.0.0.1", 0) as ws_server:
            port = ws_server.sockets[0].getsockname()[1]
            env = env_for(
                fake, tmp_path / "t.db", ALPACA_STREAMING="true", ALPACA_STREAM_URL=f"ws://127.0.0.1:{port}"
            )
            app = take_lease(build_app(Settings.from_mapping(env), accelerate=False, clock=ManualClock(NOW)))
            stop = asyncio.Event()
            task = asyncio.create_task(run_streams(app, stop))
            try:
                await wait_for(lambda: fake.requests_to("POST", "/v2/orders"), timeout=10)
            finally:
                stop.set()
                await asyncio.wait_for(task, 10)

    with FakeAlpaca() as fake:
        fake.clock.set(NOW)
        fake.set_bars("AAPL", flip_up())
        asyncio.run(scenario(fake))
        (post,) = fake.requests_to("POST", "/v2/orders")
        assert post.body["order_class"] == "bracket" and post.body["symbol"] == "AAPL"


class RefusingDataServer(DataServer):
    """Like ``DataServer``, but the connections numbered in ``refuse`` are answered, after the
    authentication, with Alpaca's "insufficient subscription" error (alpaca-py then gives up)."""

    def __init__(self, sessions: list[list[list[dict]]], refuse: set[int]) -> None:
        super().__init__(sessions)
        self.refuse = refuse
        self.attempts = 0

    async def handler(self, ws) -> None:
        attempt = self.attempts
        self.attempts += 1
        if attempt in self.refuse:
            await ws.send(msgpack.packb([{"T": "success", "msg": "connected"}]))
            await ws.recv()
            await ws.send(msgpack.packb([{"T": "error", "code": 409, "msg": "insufficient subscription"}]))
            await ws.close()
            return
        await super().handler(ws)


def test_a_stream_that_gives_up_is_restarted_on_the_retry_schedule():
    """Refused twice, connected (then dropped: alpaca-py reconnects by itself, on the same
    schedule), refused again, connected: the restart waits are the policy's 1st, 2nd, then 1st
    again (a run that connected resets the count). The waits are injected: nothing sleeps."""
    policy = RetryPolicy(base=0.01, cap=0.08, jitter=0.0)
    waits: list[float] = []

    async def asleep(seconds: float) -> None:
        waits.append(seconds)

    async def scenario() -> None:
        server = RefusingDataServer([[], [[minute_bar("AAPL", 4)]]], refuse={0, 1, 3})
        closed: list[list[str]] = []

        async def on_closed(symbols, when):
            closed.append(symbols)

        async with serve(server.handler, "127.0.0.1", 0) as ws_server:
            port = ws_server.sockets[0].getsockname()[1]
            streams = LiveStreams(
                "key",
                "secret",
                symbols=["AAPL"],
                timeframe=Timeframe.parse("5m"),
                stream_url=f"ws://127.0.0.1:{port}",
                on_bars_closed=on_closed,
                debounce=0.05,
                reconnect=policy,
                asleep=asleep,
            )
            assert streams.streams["stocks"]._reconnect_delay(3) == policy.backoff(3)
            await streams.start()
            try:
                await wait_for(lambda: closed == [["AAPL"]])
            finally:
                await streams.stop()
        assert server.attempts == 5 and streams.connections["stocks"] == 2
        assert waits == [policy.backoff(1), policy.backoff(2), policy.backoff(1)]

    asyncio.run(scenario())
