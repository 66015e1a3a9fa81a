"""The fake's trading stream: ``trade_updates`` over a websocket on 127.0.0.1, JSON as Alpaca sends it.

Protocol (alpaca-docs ``content/api-references/trading-api/streaming.md``): the client sends
``{"action": "authenticate", "data": {"key_id", "secret_key"}}`` and gets
``{"stream": "authorization", "data": {"status": "authorized", "action": "authenticate"}}``;
then ``{"action": "listen", "data": {"streams": ["trade_updates"]}}``, answered with a
``listening`` message; then one message per order event: ``{"stream": "trade_updates", "data":
{"event", "execution_id", "order", "timestamp", "position_qty", "price", "qty"}}``.

For ``fill`` and ``partial_fill`` the ``order`` is the order after the execution (``filled_qty``
cumulative) and ``qty``/``price`` are the execution's own (issue 9's review of Alpaca). The
streaming page of alpaca-docs instead calls ``price`` "the average price per share at which the
order was filled": ``price_mode = "average"`` sends that instead, and the bot must be right
under both.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import uuid
from datetime import datetime
from typing import Any

from websockets.asyncio.server import ServerConnection, serve

from tests.fakes.alpaca.orders import FakeOrder, iso, num


class FakeTradingStream:
    def __init__(self, fake: Any) -> None:
        self.fake = fake
        self.price_mode = "execution"
        self.paused = False  # while True, events are kept back (a dropped stream)
        self.sent: list[dict[str, Any]] = []
        self._held: list[dict[str, Any]] = []
        self._clients: set[ServerConnection] = set()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self.port = 0
        threading.Thread(target=self._run, name="fake-alpaca-stream", daemon=True).start()
        self._ready.wait(5)
        fake.stream = self

    @property
    def url(self) -> str:
        """The trading API origin whose ``/stream`` this is (``LiveStreams(trading_url=...)``)."""
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def main() -> None:
            async with serve(self._handler, "127.0.0.1", 0) as server:
                self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
                self._ready.set()
                await asyncio.Future()

        with contextlib.suppress(RuntimeError):
            self._loop.run_until_complete(main())

    async def _handler(self, ws: ServerConnection) -> None:
        auth = json.loads(await ws.recv())
        if (
            auth.get("action") != "authenticate"
            or (auth["data"]["key_id"], auth["data"]["secret_key"]) != self.fake.keys
        ):
            await ws.send(
                json.dumps(
                    {"stream": "authorization", "data": {"status": "unauthorized", "action": "authenticate"}}
                )
            )
            return
        await ws.send(
            json.dumps(
                {"stream": "authorization", "data": {"status": "authorized", "action": "authenticate"}}
            )
        )
        listen = json.loads(await ws.recv())
        await ws.send(json.dumps({"stream": "listening", "data": {"streams": listen["data"]["streams"]}}))
        self._clients.add(ws)
        try:
            await ws.wait_closed()
        finally:
            self._clients.discard(ws)

    def publish(
        self, event: str, order: FakeOrder, when: datetime, *, qty: float = 0.0, price: float = 0.0
    ) -> None:
        data: dict[str, Any] = {"event": event, "order": order.to_json(), "timestamp": iso(when)}
        if event in ("fill", "partial_fill"):
            position = self.fake.positions.get(order.symbol)
            data.update(
                execution_id=str(uuid.uuid4()),
                position_qty=num(position.qty if position else 0.0),
                qty=num(qty),
                price=num(order.filled_avg_price if self.price_mode == "average" else price),
            )
        message = {"stream": "trade_updates", "data": data}
        if self.paused:
            self._held.append(message)
            return
        self._send(message)

    def release(self, *, drop: bool = False) -> None:
        """End a pause: send what was kept back (or lose it, ``drop``)."""
        held, self._held, self.paused = self._held, [], False
        for message in [] if drop else held:
            self._send(message)

    def _send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)
        text = json.dumps(message)
        for ws in list(self._clients):
            asyncio.run_coroutine_threadsafe(ws.send(text), self._loop)

    @property
    def connected(self) -> int:
        return len(self._clients)

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
