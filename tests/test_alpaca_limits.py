"""Rate limits and a hung Alpaca, through alpaca-py's real clients against the fake server."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime, timedelta

import pytest
from alpaca.trading.client import TradingClient

from bot.alpaca.broker import AlpacaBroker
from bot.alpaca.data import AlpacaBarSource
from bot.alpaca.http import AlpacaHttp
from bot.bars import Timeframe
from bot.brokers.base import BrokerError
from bot.data.base import DataError
from bot.domain import OrderIntent, Side
from tests.fakes.alpaca import FakeAlpaca

NOW = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)


def parts(fake: FakeAlpaca, http: AlpacaHttp) -> tuple[AlpacaBroker, AlpacaBarSource]:
    client = http.install(TradingClient("test-key", "test-secret", paper=True, url_override=fake.url))
    data = AlpacaBarSource.create("test-key", "test-secret", url=fake.url, http=http)
    return AlpacaBroker(client, paper=True, http=http, prices=data), data


def test_a_429_waits_until_the_rate_limit_resets():
    with FakeAlpaca() as fake:
        fake.clock.set(NOW)
        waits: list[float] = []
        http = AlpacaHttp(sleep=waits.append, stall_budget=120.0)
        broker, _ = parts(fake, http)
        fake.rate_limit = 1
        broker.account()  # the one request this minute
        fake.rate_limit = 1_000  # the window resets while the client waits
        broker.positions()
        assert len(waits) == 1 and 0 < waits[0] <= 60  # waited for X-RateLimit-Reset, not a fixed 3 s


def test_a_spent_rate_limit_is_not_hammered_when_its_reset_is_past_the_budget():
    with FakeAlpaca() as fake:
        fake.clock.set(NOW)
        http = AlpacaHttp(sleep=lambda s: None, stall_budget=0.0001, wall=lambda: time.time())
        broker, _ = parts(fake, http)
        fake.rate_limit = 1
        http.stall_budget = 15
        broker.account()
        http.stall_budget = 0.0001
        sent = len(fake.requests)
        with pytest.raises(BrokerError, match=r"rate limit|failed or hung"):
            broker.positions()
        assert len(fake.requests) == sent  # nothing sent before the reset


def test_a_hung_alpaca_stalls_one_cycle_for_the_stall_budget_at_most():
    """Every request hangs: the cycle's Alpaca calls (trading and data share one budget) give up
    together once the budget is spent (here 1 s with 0.4 s timeouts; 15 s and 10 s by default),
    then fail at once without sending. The bound shows in what reaches Alpaca: at most
    ceil(budget / timeout) requests of one cycle can hang (``tests/test_alpaca_stall.py`` and
    ``benchmarks/bench_stall.py`` show it in a running bot, with the seconds)."""
    with FakeAlpaca() as fake:
        fake.clock.set(NOW)
        fake.hang_all = 3.0
        http = AlpacaHttp(timeout=0.4, stall_budget=1.0)
        broker, data = parts(fake, http)
        with pytest.raises(BrokerError):
            broker.sync(NOW)
        with pytest.raises(DataError):
            data.fetch(["AAPL", "BTC/USD"], Timeframe.parse("1m"), NOW - timedelta(hours=1), NOW)
        with pytest.raises(BrokerError):
            broker.submit(OrderIntent("tb-x-1", "AAPL", Side.BUY, 1, stop_loss=95.0, take_profit=110.0))
        assert broker.latest_price("AAPL", NOW) is None  # at once
        assert 1 <= fake.hung <= math.ceil(1.0 / 0.4)
        sent = len(fake.requests)
        with pytest.raises(BrokerError, match="failed or hung"):
            broker.positions()
        assert len(fake.requests) == sent  # budget spent: not even sent
        http.begin_cycle()  # the next cycle tries again
        fake.hang_all = 0.0
        assert broker.account().equity == 100_000


def test_a_retry_wait_never_outlasts_the_stall_budget():
    waits: list[float] = []
    http = AlpacaHttp(stall_budget=1.0, sleep=waits.append)
    http.spend(0.8)  # a timeout ate most of it
    http.sleep(0.5)  # the retry policy's backoff
    http.sleep(0.3)  # nothing left: the next request fails at once, so no wait either
    assert waits == [pytest.approx(0.2)] and http.remaining == 0


def test_a_data_429_never_delays_an_exit():
    """Alpaca counts the trading API and the market data API apart (the fake too): with the data
    API's minute spent, bars wait, but a sell goes out at once, without a wait and without
    spending the cycle's stall budget."""
    with FakeAlpaca() as fake:
        fake.clock.set(NOW)
        fake.prices["AAPL"] = 100.0
        fake.add_position("AAPL", 10, 90.0)
        fake.set_bars("AAPL", [(int((NOW - timedelta(minutes=5)).timestamp()) * 10**9, 1, 2, 0.5, 1.5, 10)])
        waits: list[float] = []
        http = AlpacaHttp(sleep=waits.append, stall_budget=120.0)
        broker, data = parts(fake, http)
        fake.data_rate_limit = 1
        window = (NOW - timedelta(hours=1), NOW)
        data.fetch(["AAPL"], Timeframe.parse("1m"), *window)  # the data API's one request this minute
        with pytest.raises(DataError, match=r"429|rate limit"):
            data.fetch(["AAPL"], Timeframe.parse("1m"), *window)
        assert fake.requests_to("GET", "/v2/stocks/bars")[-1].status == 429
        data_waits, budget = list(waits), http.remaining
        order = broker.submit(OrderIntent("tb-exit-1", "AAPL", Side.SELL, 10))
        assert order.broker_order_id and fake.requests_to("POST", "/v2/orders")[-1].status == 200
        assert waits == data_waits  # the sell waited for nothing
        assert http.remaining == budget == 120.0  # and the data waits spent no stall budget
        assert http.last_limit("data")[1] == 0 and http.last_limit("trading")[1] > 0
