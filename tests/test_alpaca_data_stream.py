"""Market data stream refusals become alerts: alpaca-py's StockDataStream against the fake market data
stream (tests/fakes/alpaca/datastream.py), which refuses as Alpaca documents: 406 for a second
connection, 409 for a feed the plan lacks, 405/409 answering the subscription."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from bot.alpaca.streams import LiveStreams, run_streams
from bot.bars import NS, Timeframe
from bot.domain import EventKind
from bot.retry import RetryPolicy
from tests.fakes.alpaca import FakeAlpaca, FakeDataStream

MINUTE = datetime(2026, 3, 2, 15, 4, tzinfo=UTC)
FAST = RetryPolicy(base=0.05, cap=0.1, jitter=0.0)


@pytest.fixture
def data():
    with FakeDataStream() as server:
        yield server


async def wait_for(condition, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def streams_for(data: FakeDataStream, problems: list, closed: list | None = None, **kw) -> LiveStreams:
    async def on_problem(name: str, text: str) -> None:
        problems.append((name, text))

    async def on_closed(symbols, when) -> None:
        (closed if closed is not None else []).append(symbols)

    return LiveStreams(
        "test-key",
        "test-secret",
        symbols=kw.pop("symbols", ["AAPL"]),
        timeframe=Timeframe.parse("5m"),
        stream_url=data.url,
        on_bars_closed=on_closed,
        on_problem=on_problem,
        debounce=0.05,
        reconnect=FAST,
        **kw,
    )


def test_a_connection_another_program_holds_is_alerted_once_then_the_stream_connects(data):
    data.occupied.add("/v2/iex")
    problems: list = []
    closed: list = []

    async def scenario() -> None:
        streams = streams_for(data, problems, closed)
        await streams.start()
        try:
            await wait_for(lambda: data.attempts.count("/v2/iex") >= 3)  # retried, refused each time
            assert problems == [
                (
                    "stocks",
                    "Alpaca's stocks market data stream: connection limit exceeded (406): another program "
                    "(or a second tradebot) holds this account's one stocks data connection; close it. "
                    "Bars come from polling meanwhile; the stream keeps retrying.",
                )
            ]
            data.occupied.clear()  # the other program lets go
            await wait_for(lambda: data.connected("/v2/iex") == 1)
            await asyncio.sleep(0.1)  # the subscription is answered
            data.publish_bar("AAPL", MINUTE, 1, 2, 0.5, 1.5, 100)
            await wait_for(lambda: closed == [["AAPL"]])
        finally:
            await streams.stop()

    asyncio.run(scenario())
    assert len(problems) == 1


def test_a_second_tradebot_on_the_same_account_is_refused_and_says_so(data):
    first_problems: list = []
    second_problems: list = []

    async def scenario() -> None:
        first = streams_for(data, first_problems)
        await first.start()
        await wait_for(lambda: data.connected("/v2/iex") == 1)
        second = streams_for(data, second_problems)
        await second.start()
        try:
            await wait_for(lambda: second_problems)
        finally:
            await second.stop()
            await first.stop()

    asyncio.run(scenario())
    assert first_problems == [] and "connection limit exceeded (406)" in second_problems[0][1]


def test_a_feed_the_plan_lacks_is_alerted_with_the_variable_to_change(data):
    problems: list = []

    async def scenario() -> None:
        streams = streams_for(data, problems, feed="sip")
        await streams.start()
        try:
            await wait_for(lambda: data.attempts.count("/v2/sip") >= 2)
        finally:
            await streams.stop()

    asyncio.run(scenario())
    assert len(problems) == 1
    assert "insufficient subscription (409): ALPACA_DATA_FEED=sip is not in this account's" in problems[0][1]


@pytest.mark.parametrize(
    ("code", "message"), [(405, "symbol limit exceeded"), (409, "insufficient subscription")]
)
def test_a_subscription_refused_after_the_authentication_is_alerted(data, code, message):
    data.subscription_error = (code, message)
    problems: list = []

    async def scenario() -> None:
        streams = streams_for(data, problems, symbols=["AAPL", "BTC/USD"])
        await streams.start()
        try:
            await wait_for(lambda: len(problems) == 2)
            assert data.connected("/v2/iex") == 1  # authenticated: only the subscription failed
        finally:
            await streams.stop()

    asyncio.run(scenario())
    assert sorted(name for name, _ in problems) == ["crypto", "stocks"]
    assert all(f"{message} ({code})" in text for _, text in problems)


def test_run_streams_records_the_refusal_as_an_alert(tmp_path, data):
    """The whole app with ALPACA_STREAMING: the refusal is an event, so Telegram, the console and
    the web show it."""
    from bot.app import build_app
    from bot.clock import ManualClock
    from bot.config import Settings
    from tests.helpers import take_lease
    from tests.test_alpaca_e2e import NOW, env_for

    data.occupied.add("/v2/iex")

    async def scenario(fake: FakeAlpaca) -> None:
        env = env_for(fake, tmp_path / "t.db", ALPACA_STREAMING="true", ALPACA_STREAM_URL=data.url)
        app = take_lease(build_app(Settings.from_mapping(env), accelerate=False, clock=ManualClock(NOW)))
        stop = asyncio.Event()
        task = asyncio.create_task(run_streams(app, stop))
        try:
            await wait_for(
                lambda: [e for e in app.service.recent_events(20) if e.kind is EventKind.DATA_OUTAGE]
            )
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
        (event,) = [e for e in app.service.recent_events(20) if e.kind is EventKind.DATA_OUTAGE]
        assert "connection limit exceeded (406)" in event.message and event.severity.value == "error"

    with FakeAlpaca() as fake:
        fake.clock.set(NOW)
        asyncio.run(scenario(fake))


def test_the_cycle_a_closing_bar_triggers_sees_that_bar_over_rest(data):
    """The stream delivers a minute's bar right after the minute; Alpaca's REST bars endpoint serves
    it only once computed (the fake: 3 s after the close). The cycle waits for that, so it reads the
    bar that triggered it; before, it ran 0.05 s after the stream's bar and read one bar too old."""
    from bot.alpaca.data import AlpacaBarSource

    closed_at = MINUTE.replace(minute=5)
    seen: list[datetime | None] = []

    with FakeAlpaca() as fake:
        fake.clock.set(closed_at + timedelta(seconds=1))  # the stream's bar arrives 1 s after the close
        first = int(MINUTE.timestamp()) - 60 * 9
        fake.set_bars("AAPL", [((first + 60 * i) * NS, 1.0, 2.0, 0.5, 1.5, 100.0) for i in range(10)])
        source = AlpacaBarSource.create("test-key", "test-secret", url=fake.url)
        waits: list[float] = []

        async def asleep(seconds: float) -> None:  # time passes at Alpaca as the bot waits
            waits.append(seconds)
            fake.clock.advance(seconds=seconds)

        async def on_closed(symbols, when) -> None:
            now = fake.clock.now()
            bars = await asyncio.to_thread(
                source.fetch, symbols, Timeframe.parse("1m"), when - timedelta(minutes=10), when
            )
            seen.append(bars["AAPL"].last_time() if "AAPL" in bars else None)
            assert now >= when

        async def scenario() -> None:
            streams = LiveStreams(
                "test-key",
                "test-secret",
                symbols=["AAPL"],
                timeframe=Timeframe.parse("5m"),
                stream_url=data.url,
                on_bars_closed=on_closed,
                debounce=0.05,
                reconnect=FAST,
                asleep=asleep,
                wall=lambda: fake.clock.now().timestamp(),
            )
            await streams.start()
            try:
                await wait_for(lambda: data.connected("/v2/iex") == 1)
                await asyncio.sleep(0.1)  # subscribed
                data.publish_bar("AAPL", MINUTE, 1, 2, 0.5, 1.5, 100)
                await wait_for(lambda: seen)
            finally:
                await streams.stop()

        asyncio.run(scenario())
    assert seen == [MINUTE]  # the bar that closed at 15:05, not the one before
    assert waits == [pytest.approx(2.0)]  # until 3 s after the close
