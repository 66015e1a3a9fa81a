"""The fake's trading stream: ``trade_updates`` over a websocket on 127.0.0.1, JSON as Alpaca sends it.

Protocol (alpaca-docs ``content/api-references/trading-api/streaming.md``): the client sends
``{"action": "authenticate", "data": {"key_id", "secret_key"}}`` and gets
``{"stream": "authorization", "data": {"status": "authorized", "action": "authenticate"}}``;
then ``{"action": "listen", "data": {"streams": ["trade_updates"]}}``, answered with a
``listening`` message; then one message per order event: ``{"stream": "trade_updates", "data":
{"event", "execution_id", "order", "timestamp", "position_qty", "price", "qty"}}``.

For ``fill`` and ``partial_fill`` the ``order`` is the order after the execution: its
``filled_qty`` is cumulative and ``filled_avg_price`` the average over every execution so far
(the order entity of orders.md). On the event's own fields the sources disagree:

- ``price``: streaming.md says "The average price per share at which the order was filled" (for
  ``partial_fill`` too); issue 9's review says it is the execution's own price. ``price_mode``
  picks the reading: ``"execution"`` (default) or ``"average"`` (the document's).
- ``qty``: not described in streaming.md; its one example (a complete fill in one execution)
  carries ``"qty": "1790.86"`` equal to the order's ``filled_qty``, so it cannot tell the
  execution's quantity from the cumulative one. Issue 9's review says the execution's.
  ``qty_mode``: ``"execution"`` (default) or ``"cumulative"``.
- ``execution_id``, ``position_qty`` and ``timestamp`` as in the example.

The bot must record the right executions under every reading (``tests/test_alpaca_fills.py``).

Frames are binary (``binary``, True by default): streaming.md, "The ``trade_updates`` stream
coming from ``wss://paper-api.alpaca.markets/stream`` uses binary frames, which differs from the
text frames that comes from the ``wss://data.alpaca.markets/stream`` stream". False sends text.
"""

from __future__ import annotations

import asyncio
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
        self.qty_mode = "execution"
        self.paused = False  # while True, events are kept back (a dropped stream)
        self.binary = True  # the paper stream's frames (module docstring)
        self.sent: list[dict[str, Any]] = []
        self._held: list[dict[str, Any]] = []
        self._clients: set[ServerConnection] = set()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stopping: asyncio.Event | None = None
        self.port = 0
        self._thread = threading.Thread(target=self._run, name="fake-alpaca-stream", daemon=True)
        self._thread.start()
        self._ready.wait(5)
        fake.stream = self

    @property
    def url(self) -> str:
        """The trading API origin whose ``/stream`` this is (``LiveStreams(trading_url=...)``)."""
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def main() -> None:
            self._stopping = asyncio.Event()
            async with serve(self._handler, "127.0.0.1", 0) as server:
                self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
                self._ready.set()
                await self._stopping.wait()
                for ws in list(self._clients):
                    await ws.close()

        self._loop.run_until_complete(main())
        self._loop.close()

    def _frame(self, message: dict[str, Any]) -> str | bytes:
        text = json.dumps(message)
        return text.encode() if self.binary else text

    async def _handler(self, ws: ServerConnection) -> None:
        auth = json.loads(await ws.recv())
        if (
            auth.get("action") != "authenticate"
            or (auth["data"]["key_id"], auth["data"]["secret_key"]) != self.fake.keys
        ):
            await ws.send(
                self._frame(
                    {"stream": "authorization", "data": {"status": "unauthorized", "action": "authenticate"}}
                )
            )
            return
        await ws.send(
            self._frame(
                {"stream": "authorization", "data": {"status": "authorized", "action": "authenticate"}}
            )
        )
        listen = json.loads(await ws.recv())
        await ws.send(self._frame({"stream": "listening", "data": {"streams": listen["data"]["streams"]}}))
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
                qty=num(order.filled_qty if self.qty_mode == "cumulative" else qty),
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
        frame = self._frame(message)
        for ws in list(self._clients):
            asyncio.run_coroutine_threadsafe(ws.send(frame), self._loop)

    @property
    def connected(self) -> int:
        return len(self._clients)

    def stop(self) -> None:
        if self._stopping is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stopping.set)
            self._thread.join(10)
