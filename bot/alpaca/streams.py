"""Alpaca's live streams on the bot's event loop: bars close -> evaluate; trade updates -> record.

- **Market data** (``StockDataStream``, ``CryptoDataStream``; msgpack over websockets): minute
  bars for every symbol. When the minute bar that ends a ``TRADEBOT_TIMEFRAME`` bar arrives, the
  symbols that closed are collected for a short moment (bars of many symbols arrive together)
  and, no sooner than ``settle`` seconds (3) after the close, ``on_bars_closed`` runs once (the
  REST bars endpoint serves a minute's bar only once Alpaca has computed it, "1 second after
  the close of each minute" by alpaca.markets/learn "Stock Minute Bars", 1-3 s as a client
  measured it, blankly-finance/blankly#189; earlier, the cycle would not see the bar that
  triggered it): the engine's cycle, which reads the closed bars through the
  history cache. Daily bars are left to the schedule (a stock's day does not end at a UTC
  minute boundary).
- **Trading** (``TradingStream``; JSON): every ``trade_updates`` event is handed to
  ``on_trade_update``; the wiring pushes it into the broker and runs the service's sync, so a
  fill is recorded and alerted at once, under the same ``fill_id`` polling would give it.
- **Refusals become alerts.** alpaca-py only logs a market data stream's errors (``_dispatch``:
  ``log.error``) or retries an authentication that failed: a 406 "connection limit exceeded"
  (another program holds the account's one connection), a 409 "insufficient subscription" (a
  feed the plan lacks) or a 405 "symbol limit exceeded" would leave the bot on polling alone,
  silently. Each is handed to ``on_problem`` with what to do, once per stream and problem until
  bars flow again (alpaca-docs ``stock-pricing-data/realtime.md``, "Errors").
- **Drops**: alpaca-py reconnects by itself; its waits follow the bot's one retry policy
  (``bot.retry``, ``STREAM_RECONNECT``: 1 s growing to 30 s, with jitter). Every connection after
  the first calls ``on_reconnect`` (a sync and a cycle), so polling covers whatever was missed.
  If a stream gives up (``_run_forever`` returns, e.g. "insufficient subscription", or raises),
  it is restarted after the same schedule's wait (reset once a run connected); the scheduled
  cycles go on meanwhile. The waits are injectable (``asleep``, and ``wall`` for the settle).

alpaca-py's ``run()`` owns a loop of its own (``asyncio.run``), so it cannot be used inside the
bot's; its coroutine ``_run_forever`` can, and runs here as a task. Subscriptions are made
before the task starts (``subscribe_*`` on a running stream blocks on its own loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from alpaca.data.enums import DataFeed
from alpaca.data.live.crypto import CryptoDataStream
from alpaca.data.live.stock import StockDataStream
from alpaca.trading.stream import TradingStream

from bot.bars import Timeframe
from bot.domain import EventKind, Severity, is_crypto
from bot.retry import RetryPolicy

if TYPE_CHECKING:
    from bot.app import App

log = logging.getLogger(__name__)

BarsClosed = Callable[[list[str], datetime], Awaitable[None]]
TradeUpdateHandler = Callable[[Any], Awaitable[None]]
Reconnected = Callable[[str], Awaitable[None]]
Problem = Callable[[str, str], Awaitable[None]]  # (stream name, what happened and what to do)

# Alpaca's market data stream errors (alpaca-docs stock-pricing-data/realtime.md, "Errors"): the
# code, and what the trader can do about it.
STREAM_ERRORS = {
    "auth failed": (402, "check ALPACA_API_KEY and ALPACA_API_SECRET"),
    "connection limit exceeded": (
        406,
        "another program (or a second tradebot) holds this account's one {name} data connection; close it",
    ),
    "insufficient subscription": (
        409,
        "ALPACA_DATA_FEED={feed} is not in this account's market data plan: set ALPACA_DATA_FEED=iex",
    ),
    "symbol limit exceeded": (405, "the market data plan streams fewer symbols: trade fewer"),
}


def stream_problem(name: str, message: str, code: Any = None, *, feed: str = "iex") -> str:
    """An alert for a stream's refusal: what Alpaca said, and what to do."""
    text = message.strip() or "refused"
    known, advice = STREAM_ERRORS.get(text.lower(), (None, ""))
    code = code if code is not None else known
    said = f"{text} ({code})" if code is not None else text
    advice = advice.format(name=name, feed=feed)
    return (
        f"Alpaca's {name} market data stream: {said}"
        + (f": {advice}" if advice else "")
        + ". Bars come from polling meanwhile; the stream keeps retrying."
    )


# Streams retry forever: only the policy's backoff schedule is used.
STREAM_RECONNECT = RetryPolicy(base=1.0, cap=30.0)


class _Notifying:
    """Mixin: call ``_connected`` after each successful (re)connection and authentication, and
    ``_problem`` with what Alpaca said when it refuses the authentication."""

    _connected: Callable[[], Awaitable[None]] | None = None
    _problem: Callable[[str, Any], Awaitable[None]] | None = None

    async def _start_ws(self) -> None:
        await super()._start_ws()  # type: ignore[misc]
        if self._connected is not None:
            await self._connected()

    async def _auth(self) -> None:
        try:
            await super()._auth()  # type: ignore[misc]
        except ValueError as exc:  # alpaca-py's way of saying the server refused (406, 409, 402)
            if self._problem is not None:
                await self._problem(str(exc), None)
            raise


class _MarketData(_Notifying):
    """Mixin: an error message after the authentication (a 405 or 409 answering the subscription)
    reaches ``_problem`` too; alpaca-py itself only logs it."""

    async def _dispatch(self, msg: dict[str, Any]) -> None:
        if msg.get("T") == "error" and self._problem is not None:
            await self._problem(str(msg.get("msg", "")), msg.get("code"))
        await super()._dispatch(msg)  # type: ignore[misc]


class _StockStream(_MarketData, StockDataStream):
    """Stock bars, announcing each (re)connection and each refusal."""


class _CryptoStream(_MarketData, CryptoDataStream):
    """Crypto bars, announcing each (re)connection and each refusal."""


class _TradingStream(_Notifying, TradingStream):
    """Trade updates, announcing each (re)connection and each refusal."""


def stream_endpoints(
    stream_url: str | None, trading_url: str | None, feed: str
) -> tuple[str | None, str | None, str | None]:
    """(stock, crypto, trading) websocket URLs; None means alpaca-py's default.

    ``stream_url`` is the market data stream origin (``wss://stream.data.alpaca.markets``);
    ``trading_url`` the trading API origin, whose ``/stream`` is the trading stream.
    """
    stock = crypto = trading = None
    if stream_url:
        base = stream_url.rstrip("/")
        stock, crypto = f"{base}/v2/{feed}", f"{base}/v1beta3/crypto/us"
    if trading_url:
        base = trading_url.rstrip("/")
        if base.startswith("http"):
            base = "ws" + base[len("http") :]
        trading = f"{base}/stream"
    return stock, crypto, trading


def closes_bar(minute_start: datetime, timeframe: Timeframe) -> bool:
    """Whether the minute bar starting at ``minute_start`` is the last minute of a timeframe bar."""
    if timeframe.seconds >= 86400:
        return False
    end = int(minute_start.timestamp()) + 60
    return end % timeframe.seconds == 0


def _bar_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if hasattr(value, "to_datetime"):  # msgpack Timestamp (raw data)
        when: datetime = value.to_datetime()
        return when.astimezone(UTC)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


class LiveStreams:
    def __init__(
        self,
        api_key: str,
        secret_key: str,
        *,
        symbols: list[str],
        timeframe: Timeframe,
        paper: bool = True,
        feed: str = "iex",
        stream_url: str | None = None,
        trading_url: str | None = None,
        on_bars_closed: BarsClosed | None = None,
        on_trade_update: TradeUpdateHandler | None = None,
        on_reconnect: Reconnected | None = None,
        on_problem: Problem | None = None,
        debounce: float = 1.5,
        settle: float = 3.0,
        wall: Callable[[], float] = time.time,
        reconnect: RetryPolicy = STREAM_RECONNECT,
        asleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.timeframe = timeframe
        self.on_bars_closed = on_bars_closed
        self.on_trade_update = on_trade_update
        self.on_reconnect = on_reconnect
        self.on_problem = on_problem
        self.feed = feed.lower()
        self._said: dict[str, str] = {}  # stream -> the problem last alerted (until bars flow again)
        self.debounce = debounce
        self.settle = settle
        self._wall = wall
        self.reconnect = reconnect
        self._asleep = asleep
        stock_url, crypto_url, trading_ws = stream_endpoints(stream_url, trading_url, feed)
        stocks = [s for s in symbols if not is_crypto(s)]
        pairs = [s for s in symbols if is_crypto(s)]
        self.streams: dict[str, Any] = {}
        if on_bars_closed is not None and stocks:
            stock_stream = _StockStream(
                api_key, secret_key, raw_data=True, feed=DataFeed(feed.lower()), url_override=stock_url
            )
            stock_stream.subscribe_bars(self._on_bar, *stocks)  # raw_data: dicts
            self.streams["stocks"] = stock_stream
        if on_bars_closed is not None and pairs:
            crypto_stream = _CryptoStream(api_key, secret_key, raw_data=True, url_override=crypto_url)
            crypto_stream.subscribe_bars(self._on_bar, *pairs)  # raw_data: dicts
            self.streams["crypto"] = crypto_stream
        if on_trade_update is not None:
            trading_stream = _TradingStream(  # url_override=None: alpaca-py's own URL (typed str)
                api_key,
                secret_key,
                paper=paper,
                url_override=trading_ws,  # type: ignore[arg-type]
            )
            trading_stream.subscribe_trade_updates(self._on_trade_update)
            self.streams["trading"] = trading_stream
        for name, stream in self.streams.items():
            stream._reconnect_delay = reconnect.backoff  # alpaca-py's own reconnects, on our schedule
            stream._connected = self._connected_hook(name)
            stream._problem = self._problem_hook(name)
        self.connections: dict[str, int] = dict.fromkeys(self.streams, 0)
        self._pending: dict[datetime, set[str]] = {}
        self._flushers: dict[datetime, asyncio.Task[None]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[None]] = set()
        self._running = False

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self._running = True
        self._tasks = [
            asyncio.create_task(self._keep_running(name, stream), name=f"alpaca-{name}-stream")
            for name, stream in self.streams.items()
        ]

    async def stop(self) -> None:
        self._running = False
        for stream in self.streams.values():
            with contextlib.suppress(Exception):
                await stream.stop_ws()
        pending = [*self._tasks, *self._flushers.values(), *self._background]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for stream in self.streams.values():
            with contextlib.suppress(Exception):
                await stream.close()

    async def _keep_running(self, name: str, stream: Any) -> None:
        failures = 0
        while self._running:
            connected_before = self.connections[name]
            try:
                await stream._run_forever()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("Alpaca %s stream failed", name)
            if not self._running:
                return
            failures = 1 if self.connections[name] > connected_before else failures + 1
            wait = self.reconnect.backoff(failures)
            log.error("Alpaca %s stream stopped; restarting in %.1fs (scheduled cycles go on)", name, wait)
            await self._asleep(wait)
            stream._should_run = True

    def _connected_hook(self, name: str) -> Callable[[], Awaitable[None]]:
        async def connected() -> None:
            self.connections[name] += 1
            if self.connections[name] > 1:
                log.warning("Alpaca %s stream reconnected: polling covers the gap", name)
                if self.on_reconnect is not None:
                    # not awaited here: the stream must keep reading while the catch-up runs
                    task = asyncio.create_task(self._safely(self.on_reconnect(name), f"{name} reconnect"))
                    self._background.add(task)
                    task.add_done_callback(self._background.discard)
            else:
                log.info("Alpaca %s stream connected", name)

        return connected

    def _problem_hook(self, name: str) -> Callable[[str, Any], Awaitable[None]]:
        async def problem(message: str, code: Any) -> None:
            if name == "trading":
                text = f"Alpaca's trading stream: {message or 'refused'}; fills come from polling meanwhile"
            else:
                text = stream_problem(name, message, code, feed=self.feed)
            log.error("%s", text)
            if self._said.get(name) == text:
                return  # said already; retrying streams would repeat it every few seconds
            self._said[name] = text
            if self.on_problem is not None:
                await self._safely(self.on_problem(name, text), f"{name} stream problem")

        return problem

    # ------------------------------------------------------------------ handlers
    async def _on_bar(self, bar: Any) -> None:
        self._said.pop("crypto" if is_crypto(str(bar.get("S", ""))) else "stocks", None)  # bars flow
        start = _bar_time(bar["t"])
        if not closes_bar(start, self.timeframe):
            return
        closed_at = datetime.fromtimestamp(int(start.timestamp()) + 60, tz=UTC)
        self._pending.setdefault(closed_at, set()).add(str(bar["S"]))
        if closed_at not in self._flushers:
            self._flushers[closed_at] = asyncio.create_task(self._flush(closed_at))

    async def _flush(self, closed_at: datetime) -> None:
        await asyncio.sleep(self.debounce)  # let the other symbols' bars of this minute arrive
        until_served = closed_at.timestamp() + self.settle - self._wall()
        if until_served > 0:  # and the REST bars endpoint compute the bar
            await self._asleep(until_served)
        symbols = sorted(self._pending.pop(closed_at, set()))
        self._flushers.pop(closed_at, None)
        if symbols and self.on_bars_closed is not None:
            log.info("bars closed at %s for %s: evaluating", closed_at.isoformat(), ", ".join(symbols))
            await self._safely(self.on_bars_closed(symbols, closed_at), "bar-close evaluation")

    async def _on_trade_update(self, update: Any) -> None:
        self._said.pop("trading", None)
        if self.on_trade_update is not None:
            await self._safely(self.on_trade_update(update), "trade update")

    @staticmethod
    async def _safely(job: Awaitable[None], what: str) -> None:
        try:
            await job
        except Exception:
            log.exception("%s failed", what)


def trade_update_handler(broker: Callable[[], Any], service: Callable[[], Any]) -> TradeUpdateHandler:
    """What a ``trade_updates`` event does: its fill joins the broker's ledger (no I/O, on the event
    loop), then the service syncs in a worker thread, so the fill is recorded and alerted at once.
    ``broker`` and ``service`` are getters (the objects may be rebuilt)."""

    async def handle(update: Any) -> None:
        broker().push_trade_update(update)
        await asyncio.to_thread(service().sync)

    return handle


async def run_streams(app: App, stop: asyncio.Event) -> None:
    """A transport for ``bot.runner``: Alpaca's streams until ``stop`` is set.

    Runs only on the Alpaca broker with ``ALPACA_STREAMING=true``; otherwise returns at once and
    the schedule alone drives the bot.
    """
    from bot.alpaca.setup import url_setting

    settings = app.settings
    if app.broker.name != "alpaca" or not settings.alpaca_streaming:
        await stop.wait()
        return
    broker: Any = app.broker

    async def bars_closed(symbols: list[str], closed_at: datetime) -> None:
        await app.engine.run_tick()

    async def reconnected(name: str) -> None:
        if name == "trading":
            await asyncio.to_thread(app.service.sync)
        else:
            await app.engine.run_tick()

    async def problem(name: str, text: str) -> None:
        kind = EventKind.BROKER_ERROR if name == "trading" else EventKind.DATA_OUTAGE
        await asyncio.to_thread(app.service.emit, kind, text, severity=Severity.ERROR)

    streams = LiveStreams(
        settings.alpaca_api_key.get_secret_value(),
        settings.alpaca_api_secret.get_secret_value(),
        symbols=list(app.engine.symbols),
        timeframe=app.engine.timeframe,
        paper=broker.paper,
        feed=settings.alpaca_data_feed.value,
        stream_url=settings.alpaca_stream_url or None,
        trading_url=url_setting(settings, "ALPACA_TRADING_URL"),
        on_bars_closed=bars_closed,
        on_trade_update=trade_update_handler(lambda: broker, lambda: app.service),
        on_reconnect=reconnected,
        on_problem=problem,
    )
    await streams.start()
    try:
        await stop.wait()
    finally:
        await streams.stop()
