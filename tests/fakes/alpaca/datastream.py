"""The fake's market data streams: stocks (``/v2/{feed}``) and crypto (``/v1beta3/crypto/us``) over
a websocket on 127.0.0.1, msgpack frames as Alpaca sends them.

Protocol and refusals (alpaca-docs ``market-data-api/stock-pricing-data/realtime.md`` and
``crypto-pricing-data/realtime.md``): on connecting, ``[{"T":"success","msg":"connected"}]``; the
client sends ``{"action":"auth","key","secret"}`` and gets ``[{"T":"success","msg":"authenticated"}]``
or an error; then ``{"action":"subscribe","bars":[...]}`` is answered with the whole list of
subscriptions (``{"T":"subscription","trades":[],"quotes":[],"bars":[...]}``); then bars arrive as
``{"T":"b","S","o","h","l","c","v","t",...}``. Control messages come one to an array. Errors:

- **402 "auth failed"**: wrong keys.
- **406 "connection limit exceeded"**: "each account can have up to one concurrent websocket
  connection. Subsequent attempts to connect are rejected" (one per endpoint: stocks and crypto
  each say "One concurrent connection is allowed"). Sent in answer to the authentication, then the
  connection is closed. ``occupied`` holds endpoints another program is connected to.
- **409 "insufficient subscription"**: "You have attempted to access a data source not available in
  your subscription package"; "Any attempt to access a data source not available for your
  subscription will result in an error during authentication": ``/v2/sip`` on the free plan
  (``plan="basic"``).
- **405 "symbol limit exceeded"**: "The symbol subscription request you sent would put you over the
  limit set by your subscription package" (free plan: 30 channels of trades and quotes; "no limit
  for the number of channels with minute bars"). Answered to the subscribe message, after a
  successful authentication; the subscriptions stay as they were.
- ``subscription_error`` = (code, message) answers the next subscribe messages with that error
  instead (a 405 or a 409 after authentication, whatever the symbols).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgpack
from websockets.asyncio.server import ServerConnection

from tests.fakes.alpaca.wsserver import WebsocketServer

STOCK_FEEDS = ("/v2/iex", "/v2/sip", "/v2/delayed_sip")
CRYPTO = "/v1beta3/crypto/us"


class FakeDataStream:
    def __init__(self, keys: tuple[str, str] = ("test-key", "test-secret")) -> None:
        self.keys = keys
        self.plan = "basic"  # "basic": iex only, 30 trades/quotes channels; "plus": sip, no limit
        self.symbol_limit = 30
        self.subscription_error: tuple[int, str] | None = None
        self.occupied: set[str] = set()  # endpoints another program holds the one connection of
        self.attempts: list[str] = []  # every connection's path
        self.errors: list[tuple[str, int]] = []  # (path, code) of every error sent
        self._subscribed: dict[ServerConnection, tuple[str, set[str]]] = {}
        self._server = WebsocketServer(
            self._handler, lambda: list(self._subscribed), "fake-alpaca-data-stream"
        )

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def url(self) -> str:
        """The origin ``ALPACA_STREAM_URL`` takes (``/v2/<feed>`` and ``/v1beta3/crypto/us`` appended)."""
        return f"ws://127.0.0.1:{self._server.port}"

    def connected(self, path: str) -> int:
        return sum(1 for p, _ in self._subscribed.values() if p == path)

    async def _error(self, ws: ServerConnection, path: str, code: int, message: str) -> None:
        self.errors.append((path, code))
        await ws.send(msgpack.packb([{"T": "error", "code": code, "msg": message}]))

    async def _handler(self, ws: ServerConnection) -> None:
        path = ws.request.path if ws.request is not None else ""
        self.attempts.append(path)
        if path not in (*STOCK_FEEDS, CRYPTO):
            await ws.close(code=1008, reason="not found")
            return
        await ws.send(msgpack.packb([{"T": "success", "msg": "connected"}]))
        auth = msgpack.unpackb(await ws.recv())
        if auth.get("action") != "auth" or (auth.get("key"), auth.get("secret")) != self.keys:
            await self._error(ws, path, 402, "auth failed")
            await ws.close()
            return
        if path == "/v2/sip" and self.plan == "basic":
            await self._error(ws, path, 409, "insufficient subscription")
            await ws.close()
            return
        if path in self.occupied or self.connected(path):
            await self._error(ws, path, 406, "connection limit exceeded")
            await ws.close()
            return
        self._subscribed[ws] = (path, set())
        await ws.send(msgpack.packb([{"T": "success", "msg": "authenticated"}]))
        try:
            async for raw in ws:
                await self._on_message(ws, path, msgpack.unpackb(raw))
        except Exception:  # the client went away
            pass
        finally:
            self._subscribed.pop(ws, None)

    async def _on_message(self, ws: ServerConnection, path: str, message: dict[str, Any]) -> None:
        if message.get("action") != "subscribe":
            return
        if self.subscription_error is not None:
            await self._error(ws, path, *self.subscription_error)
            return
        channels = len(message.get("trades", [])) + len(message.get("quotes", []))
        if self.plan == "basic" and channels > self.symbol_limit:
            await self._error(ws, path, 405, "symbol limit exceeded")
            return
        bars = self._subscribed[ws][1]
        bars.update(message.get("bars", []))
        await ws.send(
            msgpack.packb([{"T": "subscription", "trades": [], "quotes": [], "bars": sorted(bars)}])
        )

    def publish_bar(
        self, symbol: str, start: datetime, o: float, h: float, low: float, c: float, v: float
    ) -> None:
        """A minute bar, to every connection subscribed to ``symbol``'s bars."""
        frame = msgpack.packb(
            [
                {
                    "T": "b",
                    "S": symbol,
                    "o": o,
                    "h": h,
                    "l": low,
                    "c": c,
                    "v": v,
                    "t": msgpack.Timestamp.from_datetime(start),
                }
            ]
        )
        for ws, (_path, bars) in list(self._subscribed.items()):
            if symbol in bars:
                self._server.send(ws, frame)

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> FakeDataStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
