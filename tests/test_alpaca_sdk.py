"""What tradebot relies on inside alpaca-py 0.44 (pinned ``~=0.44.0``): fails when an upgrade moves it.

``bot.alpaca.http`` replaces ``client._session.request`` (alpaca-py sends every request through
it, with no timeout) and sets ``client._retry = 0`` (alpaca-py resends any request, order submits
included, after a 429 or 504). Both are private to ``alpaca.common.rest.RESTClient``.
``bot.alpaca.streams`` drives the streams' private ``_run_forever`` on the bot's loop and puts
their reconnect waits (``_reconnect_delay``) on the bot's retry schedule.
"""

from __future__ import annotations

import inspect

import alpaca
import requests
from alpaca.common import rest
from alpaca.data.historical.crypto import CryptoHistoricalDataClient
from alpaca.data.historical.stock import StockHistoricalDataClient
from alpaca.trading.client import TradingClient

from bot.alpaca.http import AlpacaHttp
from tests.fakes.alpaca import FakeAlpaca


def test_the_pinned_minor_version():
    assert alpaca.__version__.startswith("0.44."), alpaca.__version__


def test_the_private_attributes_the_hardening_patches_are_there():
    clients = [
        TradingClient("k", "s", paper=True),
        StockHistoricalDataClient("k", "s"),
        CryptoHistoricalDataClient("k", "s"),
    ]
    for client in clients:
        assert isinstance(client._session, requests.Session)
        assert isinstance(client._retry, int) and client._retry > 0  # alpaca-py retries by default
        assert 429 in client._retry_codes and 504 in client._retry_codes
    source = inspect.getsource(rest.RESTClient._one_request)
    assert "self._session.request(" in source  # every request goes through the patched method
    assert "retry > 0" in source  # and _retry = 0 switches the resend off


def test_installed_hardening_sends_one_post_with_a_timeout():
    with FakeAlpaca() as fake:
        seen: list[float | None] = []
        http = AlpacaHttp(timeout=7.0, sleep=lambda s: None)
        client = http.install(TradingClient("test-key", "test-secret", paper=True, url_override=fake.url))
        send = client._session.request

        def spy(method, url, **kwargs):
            return send(method, url, **kwargs)

        original = http._request

        def recording(sender, api, method, url, **kwargs):
            def wrapped(m, u, **kw):
                seen.append(kw.get("timeout"))
                return sender(m, u, **kw)

            return original(wrapped, api, method, url, **kwargs)

        http._request = recording  # type: ignore[method-assign]
        client._session.request = spy
        assert client._retry == 0
        client.get_account()
        assert seen == [7.0]


def test_the_stream_internals_the_streams_use_are_there():
    from alpaca.data.live.crypto import CryptoDataStream
    from alpaca.data.live.stock import StockDataStream
    from alpaca.trading.stream import TradingStream

    for stream in (StockDataStream("k", "s"), CryptoDataStream("k", "s"), TradingStream("k", "s")):
        assert inspect.iscoroutinefunction(stream._run_forever)
        assert stream._reconnect_delay(1) > 0  # replaced by the bot's schedule
        source = inspect.getsource(type(stream)._wait_before_reconnect)
        assert "self._reconnect_delay(retries)" in source
        assert hasattr(stream, "_should_run") and hasattr(stream, "_start_ws")
