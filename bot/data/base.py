"""The bar source interface. Sources fetch closed bars for many symbols in one call."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol, runtime_checkable

from bot.bars import Bars, Timeframe


class DataError(Exception):
    """A source could not deliver: outage, bad answer, unknown symbol. Never a reason to
    substitute synthetic data: the engine skips the symbol and raises an alert."""


@runtime_checkable
class BarSource(Protocol):
    name: str

    def fetch(
        self, symbols: list[str], timeframe: Timeframe, start: datetime, end: datetime
    ) -> dict[str, Bars]:
        """Bars with ``start <= bar start < end``, oldest first, per symbol.

        Only closed bars are wanted: callers pass ``end`` at the start of the bar still forming.
        A symbol missing from the result has no data in the window. Raises ``DataError`` when
        the source fails as a whole.
        """
        ...
