"""A fake of Alpaca's trading API, market-data API and trading stream, as strict as Alpaca's documents.

``FakeAlpaca`` (``server``) is the entry point; ``FakeTradingStream`` (``stream``) adds the
``trade_updates`` websocket, ``FakeDataStream`` (``datastream``) the market data streams. Each module's docstring lists the rules it models and the document,
source file or public issue thread each comes from.
"""

from tests.fakes.alpaca.datastream import FakeDataStream
from tests.fakes.alpaca.server import FakeAlpaca, FakeOrder, FakePosition, Recorded
from tests.fakes.alpaca.stream import FakeTradingStream

__all__ = ["FakeAlpaca", "FakeDataStream", "FakeOrder", "FakePosition", "FakeTradingStream", "Recorded"]
