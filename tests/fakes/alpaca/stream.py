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

import json
import uuid
from datetime import datetime
from typing import Any

from websockets.asyncio.server import ServerConnection

from tests.fakes.alpaca.orders import FakeOrder, iso, num
from tests.fakes.alpaca.wsserver import WebsocketServer


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
        self._server = WebsocketServer(self._handler, lambda: list(self._clients), "fake-alpaca-stream")
        fake.stream = self

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def url(self) -> str:
        """The trading API origin whose ``/stream`` this is (``LiveStreams(trading_url=...)``)."""
        return f"http://127.0.0.1:{self._server.port}"

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
            self._server.send(ws, frame)

    @property
    def connected(self) -> int:
        return len(self._clients)

    def stop(self) -> None:
        self._server.stop()
